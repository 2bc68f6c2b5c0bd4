"""Golden values for @lora/trainer-ort's Stable Diffusion 2.x graphs, from a plain PyTorch
implementation at tiny sizes: the UNet with SD 2.x's linear proj_in / proj_out and a fixed number of
channels per attention head, and OpenCLIP's text tower as ldm's FrozenOpenCLIPEmbedder runs it
(layer "penultimate": every resblock but the last, then ln_final), written in OpenCLIP's own form
(fused q/k/v in_proj, GELU MLP, causal mask). Shared modules (ResNet, attention, VAE, schedule,
fixture writing) come from sd_reference.py, whose SD 1.5 fixture this script leaves alone.

Run by hand (Debian: apt-get install python3-torch libopenblas0-pthread):
    /usr/bin/python3 tools/golden/sd2_reference.py
It writes packages/trainer-ort/src/models/sd/__fixtures__/:
  sd2-model.safetensors  random F32 weights in the SD 2.x single-file layout (model.diffusion_model.,
                         cond_stage_model.model. in OpenCLIP's names with all its resblocks and its
                         contrastive head, first_stage_model.)
  sd2-golden.json        the diffusers-style configs, inputs, text states, UNet output, epsilon- and
                         v-prediction losses, LoRA start values and gradients, in float64.
LoRA on the text encoder is kohya's: one pair per transformers module (q_proj, k_proj, v_proj,
out_proj, fc1, fc2), q/k/v adding to the thirds of the fused in_proj output, as A1111 applies them
(torch.vstack of the three updates onto in_proj_weight).
"""
import json, math, os
import torch
import torch.nn.functional as F

import sd_reference as ref

UNET = {**ref.UNET, "attention_head_dim": [2, 4], "use_linear_projection": True}
HEAD_CHANNELS = 4  # SD 2.x: 64 (num_head_channels); here 8 / 2 and 16 / 4
CLIP = {"architectures": ["CLIPTextModel"], "vocab_size": 50, "hidden_size": 16, "intermediate_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 8,
        "hidden_act": "gelu", "layer_norm_eps": 1e-5}
OPENCLIP_BLOCKS = CLIP["num_hidden_layers"] + 1  # the file holds the last block too; SD 2.x skips it
EMBED_DIM = 12

ref.g = torch.Generator().manual_seed(2121)  # sd_reference's weight helpers draw from ref.g
randn = lambda *s, std=1.0: ref.randn(*s, std=std)


# ── weights ────────────────────────────────────────────────────────────────

def transformer_w(W, p, c, ctx):
    ref.norm_w(W, p + "norm", c)
    ref.linear_w(W, p + "proj_in", c, c)
    b = p + "transformer_blocks.0."
    for n in ("norm1", "norm2", "norm3"):
        ref.norm_w(W, b + n, c)
    for attn, kv in (("attn1", c), ("attn2", ctx)):
        ref.linear_w(W, b + attn + ".to_q", c, c, bias=False)
        ref.linear_w(W, b + attn + ".to_k", c, kv, bias=False)
        ref.linear_w(W, b + attn + ".to_v", c, kv, bias=False)
        ref.linear_w(W, b + attn + ".to_out.0", c, c)
    ref.linear_w(W, b + "ff.net.0.proj", 8 * c, c)
    ref.linear_w(W, b + "ff.net.2", c, 4 * c)
    ref.linear_w(W, p + "proj_out", c, c)


def unet_weights():
    W = {}
    ch, L, ctx = UNET["block_out_channels"], UNET["layers_per_block"], UNET["cross_attention_dim"]
    temb = 4 * ch[0]
    ref.linear_w(W, "time_embedding.linear_1", temb, ch[0])
    ref.linear_w(W, "time_embedding.linear_2", temb, temb)
    ref.conv_w(W, "conv_in", ch[0], UNET["in_channels"], 3)
    skips, c = [ch[0]], ch[0]
    for i, kind in enumerate(UNET["down_block_types"]):
        for j in range(L):
            ref.resnet_w(W, f"down_blocks.{i}.resnets.{j}.", c, ch[i], temb)
            c = ch[i]
            if kind.startswith("CrossAttn"):
                transformer_w(W, f"down_blocks.{i}.attentions.{j}.", c, ctx)
            skips.append(c)
        if i < len(ch) - 1:
            ref.conv_w(W, f"down_blocks.{i}.downsamplers.0.conv", c, c, 3)
            skips.append(c)
    ref.resnet_w(W, "mid_block.resnets.0.", c, c, temb)
    transformer_w(W, "mid_block.attentions.0.", c, ctx)
    ref.resnet_w(W, "mid_block.resnets.1.", c, c, temb)
    for i, kind in enumerate(UNET["up_block_types"]):
        out = ch[len(ch) - 1 - i]
        for j in range(L + 1):
            ref.resnet_w(W, f"up_blocks.{i}.resnets.{j}.", c + skips.pop(), out, temb)
            c = out
            if kind.startswith("CrossAttn"):
                transformer_w(W, f"up_blocks.{i}.attentions.{j}.", c, ctx)
        if i < len(ch) - 1:
            ref.conv_w(W, f"up_blocks.{i}.upsamplers.0.conv", c, c, 3)
    ref.norm_w(W, "conv_norm_out", c)
    ref.conv_w(W, "conv_out", UNET["out_channels"], c, 3)
    return W


def openclip_weights():
    """OpenCLIP's text tower in its own names (open_clip/transformer.py TextTransformer)."""
    W = {}
    D, I = CLIP["hidden_size"], CLIP["intermediate_size"]
    W["token_embedding.weight"] = randn(CLIP["vocab_size"], D, std=0.5)
    W["positional_embedding"] = randn(CLIP["max_position_embeddings"], D, std=0.2)
    for l in range(OPENCLIP_BLOCKS):
        p = f"transformer.resblocks.{l}."
        ref.norm_w(W, p + "ln_1", D)
        W[p + "attn.in_proj_weight"] = randn(3 * D, D, std=1 / math.sqrt(D))
        W[p + "attn.in_proj_bias"] = randn(3 * D, std=0.1)
        ref.linear_w(W, p + "attn.out_proj", D, D)
        ref.norm_w(W, p + "ln_2", D)
        ref.linear_w(W, p + "mlp.c_fc", I, D)
        ref.linear_w(W, p + "mlp.c_proj", D, I)
    ref.norm_w(W, "ln_final", D)
    W["text_projection"] = randn(D, EMBED_DIM, std=1 / math.sqrt(D))
    W["logit_scale"] = torch.tensor(math.log(1 / 0.07))
    return W


# ── modules ────────────────────────────────────────────────────────────────

def transformer(W, x, ctx, p, heads, groups, lora):
    """diffusers Transformer2DModel with use_linear_projection: proj_in / proj_out on the tokens."""
    B, C, H, Wd = x.shape
    h = ref.group_norm(W, x, p + "norm", groups, 1e-6).permute(0, 2, 3, 1).reshape(B, H * Wd, C)
    h = ref.linear(W, h, p + "proj_in", lora, "unet.")
    b = p + "transformer_blocks.0."
    n = ref.layer_norm(W, h, b + "norm1", 1e-5)
    h = ref.attention(W, n, n, b + "attn1.", heads, lora) + h
    h = ref.attention(W, ref.layer_norm(W, h, b + "norm2", 1e-5), ctx, b + "attn2.", heads, lora) + h
    n = ref.layer_norm(W, h, b + "norm3", 1e-5)
    hidden, gate = ref.linear(W, n, b + "ff.net.0.proj", lora, "unet.").chunk(2, dim=-1)
    h = ref.linear(W, hidden * F.gelu(gate), b + "ff.net.2", lora, "unet.") + h
    h = ref.linear(W, h, p + "proj_out", lora, "unet.")
    return h.reshape(B, H, Wd, C).permute(0, 3, 1, 2) + x


def unet_forward(W, x, t, ctx, lora=None):
    ch, L = UNET["block_out_channels"], UNET["layers_per_block"]
    groups, eps = UNET["norm_num_groups"], UNET["norm_eps"]
    heads = [c // HEAD_CHANNELS for c in ch]
    assert heads == UNET["attention_head_dim"]
    temb = ref.timestep_embedding(t, ch[0]).to(x.dtype)
    temb = ref.linear(W, F.silu(ref.linear(W, temb, "time_embedding.linear_1")), "time_embedding.linear_2")
    h = ref.conv(W, x, "conv_in")
    skips = [h]
    for i, kind in enumerate(UNET["down_block_types"]):
        for j in range(L):
            h = ref.resnet(W, h, temb, f"down_blocks.{i}.resnets.{j}.", groups, eps)
            if kind.startswith("CrossAttn"):
                h = transformer(W, h, ctx, f"down_blocks.{i}.attentions.{j}.", heads[i], groups, lora)
            skips.append(h)
        if i < len(ch) - 1:
            h = ref.conv(W, h, f"down_blocks.{i}.downsamplers.0.conv", stride=2, padding=1)
            skips.append(h)
    h = ref.resnet(W, h, temb, "mid_block.resnets.0.", groups, eps)
    h = transformer(W, h, ctx, "mid_block.attentions.0.", heads[-1], groups, lora)
    h = ref.resnet(W, h, temb, "mid_block.resnets.1.", groups, eps)
    for i, kind in enumerate(UNET["up_block_types"]):
        level = len(ch) - 1 - i
        for j in range(L + 1):
            h = ref.resnet(W, torch.cat([h, skips.pop()], dim=1), temb, f"up_blocks.{i}.resnets.{j}.", groups, eps)
            if kind.startswith("CrossAttn"):
                h = transformer(W, h, ctx, f"up_blocks.{i}.attentions.{j}.", heads[level], groups, lora)
        if i < len(ch) - 1:
            h = ref.conv(W, F.interpolate(h, scale_factor=2.0, mode="nearest"), f"up_blocks.{i}.upsamplers.0.conv")
    h = F.silu(ref.group_norm(W, h, "conv_norm_out", groups, eps))
    return ref.conv(W, h, "conv_out")


def lora_delta(lora, name, x):
    if lora is None or name not in lora.pairs:
        return 0
    a, b = lora.pairs[name]
    return ref.SCALE * ((x @ a.T) @ b.T)


def openclip_forward(W, ids, lora=None, clip_skip=1):
    """FrozenOpenCLIPEmbedder(layer="penultimate").encode_with_transformer: the resblocks but the
    last, then ln_final. kohya's clip_skip counts back from there (its 23-layer CLIPTextModel)."""
    B, T = ids.shape
    D, H = CLIP["hidden_size"], CLIP["num_attention_heads"]
    x = W["token_embedding.weight"][ids] + W["positional_embedding"][:T]
    mask = torch.full((T, T), float("-inf"), dtype=x.dtype).triu(1)
    te = lambda l, name: f"text_encoder.text_model.encoder.layers.{l}.{name}"
    for l in range(OPENCLIP_BLOCKS - 1 - (clip_skip - 1)):
        p = f"transformer.resblocks.{l}."
        h = F.layer_norm(x, (D,), W[p + "ln_1.weight"], W[p + "ln_1.bias"], 1e-5)
        qkv = h @ W[p + "attn.in_proj_weight"].T + W[p + "attn.in_proj_bias"]
        qkv = qkv + torch.cat([lora_delta(lora, te(l, f"self_attn.{n}_proj"), h) + torch.zeros_like(h)
                               for n in "qkv"], dim=-1)
        q, k, v = (t.view(B, T, H, D // H).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // H) + mask, dim=-1) @ v
        attn = attn.transpose(1, 2).reshape(B, T, D)
        x = x + attn @ W[p + "attn.out_proj.weight"].T + W[p + "attn.out_proj.bias"] \
            + lora_delta(lora, te(l, "self_attn.out_proj"), attn)
        h = F.layer_norm(x, (D,), W[p + "ln_2.weight"], W[p + "ln_2.bias"], 1e-5)
        u = F.gelu(h @ W[p + "mlp.c_fc.weight"].T + W[p + "mlp.c_fc.bias"] + lora_delta(lora, te(l, "mlp.fc1"), h))
        x = x + u @ W[p + "mlp.c_proj.weight"].T + W[p + "mlp.c_proj.bias"] + lora_delta(lora, te(l, "mlp.fc2"), u)
    return F.layer_norm(x, (D,), W["ln_final.weight"], W["ln_final.bias"], 1e-5)


def training_loss(Wu, Wc, latents, t, noise, ids, weights, lora, prediction):
    ac = ref.alphas_cumprod()[t].to(latents.dtype)
    sa = (ac ** 0.5)[:, None, None, None]
    so = ((1 - ac) ** 0.5)[:, None, None, None]
    pred = unet_forward(Wu, sa * latents + so * noise, t, openclip_forward(Wc, ids, lora), lora)
    target = noise if prediction == "epsilon" else sa * noise - so * latents
    return (F.mse_loss(pred, target, reduction="none").mean([1, 2, 3]) * weights).mean()


# ── fixture ────────────────────────────────────────────────────────────────

Wu, Wc, Wv, Wd = unet_weights(), openclip_weights(), ref.vae_encoder_weights(), ref.vae_decoder_weights()
lora = ref.Lora()
for key in [k[: -len(".weight")] for k in Wu if k.endswith(".weight")]:
    last = key.split(".")
    if "attentions" in last and (last[-1] in ("to_q", "to_k", "to_v", "proj_in", "proj_out")
                                 or key.endswith("to_out.0") or ".ff." in key):
        w = Wu[key + ".weight"]
        lora.add("unet." + key, w.shape[0], w.shape[1], w.dim() == 4)
D, I = CLIP["hidden_size"], CLIP["intermediate_size"]
for l in range(CLIP["num_hidden_layers"]):
    for name, out, inp in (("self_attn.q_proj", D, D), ("self_attn.k_proj", D, D), ("self_attn.v_proj", D, D),
                           ("self_attn.out_proj", D, D), ("mlp.fc1", I, D), ("mlp.fc2", D, I)):
        lora.add(f"text_encoder.text_model.encoder.layers.{l}.{name}", out, inp, False)

B, S = 2, UNET["sample_size"]
ids = torch.tensor([[48, 3, 17, 9, 49, 0, 0, 0], [48, 21, 5, 33, 12, 40, 2, 49]])  # OpenCLIP pads with 0
latents = randn(B, UNET["in_channels"], S, S)
noise = randn(B, UNET["in_channels"], S, S)
timesteps = torch.tensor([31, 911])
weights = torch.tensor([0.7, 1.0])


def run_all(dtype):
    to = lambda D: {k: v.to(dtype) for k, v in D.items()}
    wu, wc = to(Wu), to(Wc)
    pairs = ref.Lora()
    pairs.pairs = {k: (a.detach().to(dtype).requires_grad_(), b.detach().to(dtype).requires_grad_())
                   for k, (a, b) in lora.pairs.items()}
    x0, eps, w = (t.to(dtype) for t in (latents, noise, weights))
    with torch.no_grad():
        states = openclip_forward(wc, ids)
        out = {"text_states": states, "text_states_clip_skip_2": openclip_forward(wc, ids, clip_skip=2),
               "unet_output": unet_forward(wu, x0, timesteps, states),
               "loss_v_prediction": training_loss(wu, wc, x0, timesteps, eps, ids, w, pairs, "v_prediction")}
    loss = training_loss(wu, wc, x0, timesteps, eps, ids, w, pairs, "epsilon")
    loss.backward()
    out["loss_epsilon"] = loss
    out["grads"] = {k: (a.grad, b.grad) for k, (a, b) in pairs.pairs.items()}
    return out


def main():
    exact, single = run_all(torch.float64), run_all(torch.float32)
    print("float32 vs float64, worst relative error:", ref.worst_error(single, exact))

    checkpoint = {}
    for k, v in Wu.items():
        checkpoint["model.diffusion_model." + ref.ldm_unet_name(k)] = v
    for k, v in Wc.items():
        checkpoint["cond_stage_model.model." + k] = v
    for k, v in {**Wv, **Wd}.items():
        name, t = ref.ldm_vae_name(k, v)
        checkpoint["first_stage_model." + name] = t
    os.makedirs(ref.OUT, exist_ok=True)
    ref.save_safetensors(os.path.join(ref.OUT, "sd2-model.safetensors"), checkpoint)
    flat = ref.flat
    golden = {
        "unet_config": UNET, "text_encoder_config": CLIP, "vae_config": ref.VAE, "rank": ref.RANK,
        "alpha": ref.ALPHA, "input_ids": ids.tolist(), "timesteps": timesteps.tolist(),
        "loss_weights": weights.tolist(), "latents": flat(latents), "noise": flat(noise),
        **{k: flat(exact[k]) for k in ("text_states", "text_states_clip_skip_2", "unet_output")},
        "loss_epsilon": exact["loss_epsilon"].item(), "loss_v_prediction": exact["loss_v_prediction"].item(),
        "lora": {k: {"A_shape": list(a.shape), "B_shape": list(b.shape), "A": flat(a), "B": flat(b),
                     "A_grad": flat(exact["grads"][k][0]), "B_grad": flat(exact["grads"][k][1])}
                 for k, (a, b) in lora.pairs.items()},
    }
    with open(os.path.join(ref.OUT, "sd2-golden.json"), "w") as f:
        json.dump(golden, f)
    print("tensors", len(checkpoint), "lora modules", len(lora.pairs),
          "loss", golden["loss_epsilon"], "loss_v", golden["loss_v_prediction"])


if __name__ == "__main__":
    main()
