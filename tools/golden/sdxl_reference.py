"""Golden values for @lora/trainer-ort's SDXL graphs, from a plain PyTorch implementation at tiny
sizes of what sgm's sd_xl_base.yaml builds:
  - the UNet (openaimodel.UNetModel, written with diffusers names): levels without attention,
    several transformer blocks per Transformer2D (transformer_depth), linear proj_in / proj_out,
    heads of a fixed width, and `label_emb` (Linear, SiLU, Linear) on the vector condition added
    to the timestep embedding;
  - the conditioner (GeneralConditioner, its embedders in order): 0 = CLIP ViT-L (transformers'
    CLIPTextModel, QuickGELU), hidden states of the penultimate layer without the final layer norm;
    1 = OpenCLIP bigG in its own form (fused q/k/v in_proj, GELU): penultimate states, and the
    pooled output ln_final(last layer)[argmax(ids)] @ text_projection; 2-4 = original size, crop
    top-left, target size, each value through a sinusoidal embedding (cos first, no shift).
    crossattn = concat(CLIP-L, bigG) on channels; vector = concat(pooled, size embeddings).
Shared modules (ResNet, attention, VAE, schedule, fixture writing) come from sd_reference.py,
whose fixtures this script leaves alone.

Run by hand (Debian: apt-get install python3-torch libopenblas0-pthread):
    /usr/bin/python3 tools/golden/sdxl_reference.py
It writes packages/trainer-ort/src/models/sd/__fixtures__/:
  sdxl-model.safetensors  random F32 weights in the SDXL single-file layout (model.diffusion_model.,
                          conditioner.embedders.0.transformer., conditioner.embedders.1.model. with
                          logit_scale and text_projection, first_stage_model.)
  sdxl-golden.json        diffusers-style configs, inputs, text states, pooled output, UNet output,
                          epsilon- and v-prediction losses, LoRA start values and gradients (float64).
LoRA on text encoder 2 is kohya's: one pair per transformers module, q/k/v adding to the thirds of
the fused in_proj output.
"""
import json, math, os
import torch
import torch.nn.functional as F

import sd_reference as ref

# 3 levels as SDXL: none, then attention; transformer_depth per level (SDXL: 0, 2, 10), the middle
# block takes the last; heads of HEAD_CHANNELS channels (SDXL: 64).
CLIP1 = {"architectures": ["CLIPTextModel"], "vocab_size": 50, "hidden_size": 16, "intermediate_size": 32,
         "num_hidden_layers": 3, "num_attention_heads": 2, "max_position_embeddings": 8,
         "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
CLIP2 = {"architectures": ["CLIPTextModelWithProjection"], "vocab_size": 50, "hidden_size": 24,
         "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 3, "max_position_embeddings": 8,
         "hidden_act": "gelu", "layer_norm_eps": 1e-5, "projection_dim": 20}
TIME_DIM = 8  # addition_time_embed_dim (SDXL: 256)
UNET = {"_class_name": "UNet2DConditionModel", "in_channels": 4, "out_channels": 4,
        "block_out_channels": [8, 16, 16], "layers_per_block": 2,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "transformer_layers_per_block": [1, 1, 2], "attention_head_dim": [2, 4, 4],
        "cross_attention_dim": CLIP1["hidden_size"] + CLIP2["hidden_size"], "norm_num_groups": 2,
        "norm_eps": 1e-5, "use_linear_projection": True, "addition_embed_type": "text_time",
        "addition_time_embed_dim": TIME_DIM,
        "projection_class_embeddings_input_dim": CLIP2["projection_dim"] + 6 * TIME_DIM,
        "flip_sin_to_cos": True, "freq_shift": 0, "act_fn": "silu", "sample_size": 8}
HEAD_CHANNELS = 4
VAE = {**ref.VAE, "scaling_factor": 0.13025}
OPENCLIP_PREFIX = "conditioner.embedders.1.model."

# sd_reference's weight helpers draw from ref.g. Float32 PyTorch lands 5e-6 to 2.5e-5 (relative, the
# worst LoRA gradient) from float64 over seeds 5000-5015 at these sizes; this seed's 4.8e-6 leaves
# the tests' 1e-5 room for ONNX Runtime's own float32 rounding.
ref.g = torch.Generator().manual_seed(5013)
ref.UNET = UNET  # its ldm_unet_name numbers blocks by these layers_per_block / up_block_types
ref.VAE = VAE
randn = lambda *s, std=1.0: ref.randn(*s, std=std)
depth = lambda level: UNET["transformer_layers_per_block"][level]


# ── weights ────────────────────────────────────────────────────────────────

def transformer_w(W, p, c, ctx, blocks):
    ref.norm_w(W, p + "norm", c)
    ref.linear_w(W, p + "proj_in", c, c)
    for i in range(blocks):
        b = p + f"transformer_blocks.{i}."
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
    ref.linear_w(W, "add_embedding.linear_1", temb, UNET["projection_class_embeddings_input_dim"])
    ref.linear_w(W, "add_embedding.linear_2", temb, temb)
    ref.conv_w(W, "conv_in", ch[0], UNET["in_channels"], 3)
    skips, c = [ch[0]], ch[0]
    for i, kind in enumerate(UNET["down_block_types"]):
        for j in range(L):
            ref.resnet_w(W, f"down_blocks.{i}.resnets.{j}.", c, ch[i], temb)
            c = ch[i]
            if kind.startswith("CrossAttn"):
                transformer_w(W, f"down_blocks.{i}.attentions.{j}.", c, ctx, depth(i))
            skips.append(c)
        if i < len(ch) - 1:
            ref.conv_w(W, f"down_blocks.{i}.downsamplers.0.conv", c, c, 3)
            skips.append(c)
    ref.resnet_w(W, "mid_block.resnets.0.", c, c, temb)
    transformer_w(W, "mid_block.attentions.0.", c, ctx, depth(-1))
    ref.resnet_w(W, "mid_block.resnets.1.", c, c, temb)
    for i, kind in enumerate(UNET["up_block_types"]):
        level = len(ch) - 1 - i
        for j in range(L + 1):
            ref.resnet_w(W, f"up_blocks.{i}.resnets.{j}.", c + skips.pop(), ch[level], temb)
            c = ch[level]
            if kind.startswith("CrossAttn"):
                transformer_w(W, f"up_blocks.{i}.attentions.{j}.", c, ctx, depth(level))
        if i < len(ch) - 1:
            ref.conv_w(W, f"up_blocks.{i}.upsamplers.0.conv", c, c, 3)
    ref.norm_w(W, "conv_norm_out", c)
    ref.conv_w(W, "conv_out", UNET["out_channels"], c, 3)
    return W


def clip_weights():
    W = {}
    D, I = CLIP1["hidden_size"], CLIP1["intermediate_size"]
    W["text_model.embeddings.token_embedding.weight"] = randn(CLIP1["vocab_size"], D, std=0.5)
    W["text_model.embeddings.position_embedding.weight"] = randn(CLIP1["max_position_embeddings"], D, std=0.2)
    for l in range(CLIP1["num_hidden_layers"]):
        p = f"text_model.encoder.layers.{l}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            ref.linear_w(W, p + "self_attn." + n, D, D)
        ref.norm_w(W, p + "layer_norm1", D)
        ref.linear_w(W, p + "mlp.fc1", I, D)
        ref.linear_w(W, p + "mlp.fc2", D, I)
        ref.norm_w(W, p + "layer_norm2", D)
    ref.norm_w(W, "text_model.final_layer_norm", D)
    return W


def openclip_weights():
    """OpenCLIP's text tower in its own names (open_clip/transformer.py TextTransformer)."""
    W = {}
    D, I = CLIP2["hidden_size"], CLIP2["intermediate_size"]
    W["token_embedding.weight"] = randn(CLIP2["vocab_size"], D, std=0.5)
    W["positional_embedding"] = randn(CLIP2["max_position_embeddings"], D, std=0.2)
    for l in range(CLIP2["num_hidden_layers"]):
        p = f"transformer.resblocks.{l}."
        ref.norm_w(W, p + "ln_1", D)
        W[p + "attn.in_proj_weight"] = randn(3 * D, D, std=1 / math.sqrt(D))
        W[p + "attn.in_proj_bias"] = randn(3 * D, std=0.1)
        ref.linear_w(W, p + "attn.out_proj", D, D)
        ref.norm_w(W, p + "ln_2", D)
        ref.linear_w(W, p + "mlp.c_fc", I, D)
        ref.linear_w(W, p + "mlp.c_proj", D, I)
    ref.norm_w(W, "ln_final", D)
    # [width, embed_dim]: OpenCLIP multiplies x @ text_projection (diffusers stores its transpose).
    W["text_projection"] = randn(D, CLIP2["projection_dim"], std=1 / math.sqrt(D))
    W["logit_scale"] = torch.tensor(math.log(1 / 0.07))
    return W


# ── modules ────────────────────────────────────────────────────────────────

def transformer(W, x, ctx, p, heads, groups, blocks, lora):
    """Transformer2DModel with use_linear_projection and `blocks` BasicTransformerBlocks."""
    B, C, H, Wd = x.shape
    h = ref.group_norm(W, x, p + "norm", groups, 1e-6).permute(0, 2, 3, 1).reshape(B, H * Wd, C)
    h = ref.linear(W, h, p + "proj_in", lora, "unet.")
    for i in range(blocks):
        b = p + f"transformer_blocks.{i}."
        n = ref.layer_norm(W, h, b + "norm1", 1e-5)
        h = ref.attention(W, n, n, b + "attn1.", heads, lora) + h
        h = ref.attention(W, ref.layer_norm(W, h, b + "norm2", 1e-5), ctx, b + "attn2.", heads, lora) + h
        n = ref.layer_norm(W, h, b + "norm3", 1e-5)
        hidden, gate = ref.linear(W, n, b + "ff.net.0.proj", lora, "unet.").chunk(2, dim=-1)
        h = ref.linear(W, hidden * F.gelu(gate), b + "ff.net.2", lora, "unet.") + h
    h = ref.linear(W, h, p + "proj_out", lora, "unet.")
    return h.reshape(B, H, Wd, C).permute(0, 3, 1, 2) + x


def sinusoidal(values, dim):
    """sgm timestep_embedding: [cos(v·f), sin(v·f)], f = exp(-ln(10000)·i / (dim/2)), per value."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(0, half, dtype=torch.float32) / half)
    args = values.flatten()[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1).reshape(values.shape[0], -1)


def unet_forward(W, x, t, ctx, vector, lora=None):
    ch, L = UNET["block_out_channels"], UNET["layers_per_block"]
    groups, eps = UNET["norm_num_groups"], UNET["norm_eps"]
    heads = [c // HEAD_CHANNELS for c in ch]
    assert heads == UNET["attention_head_dim"]
    emb = ref.timestep_embedding(t, ch[0]).to(x.dtype)
    emb = ref.linear(W, F.silu(ref.linear(W, emb, "time_embedding.linear_1")), "time_embedding.linear_2")
    emb = emb + ref.linear(W, F.silu(ref.linear(W, vector, "add_embedding.linear_1")), "add_embedding.linear_2")
    h = ref.conv(W, x, "conv_in")
    skips = [h]
    for i, kind in enumerate(UNET["down_block_types"]):
        for j in range(L):
            h = ref.resnet(W, h, emb, f"down_blocks.{i}.resnets.{j}.", groups, eps)
            if kind.startswith("CrossAttn"):
                h = transformer(W, h, ctx, f"down_blocks.{i}.attentions.{j}.", heads[i], groups, depth(i), lora)
            skips.append(h)
        if i < len(ch) - 1:
            h = ref.conv(W, h, f"down_blocks.{i}.downsamplers.0.conv", stride=2, padding=1)
            skips.append(h)
    h = ref.resnet(W, h, emb, "mid_block.resnets.0.", groups, eps)
    h = transformer(W, h, ctx, "mid_block.attentions.0.", heads[-1], groups, depth(-1), lora)
    h = ref.resnet(W, h, emb, "mid_block.resnets.1.", groups, eps)
    for i, kind in enumerate(UNET["up_block_types"]):
        level = len(ch) - 1 - i
        for j in range(L + 1):
            h = ref.resnet(W, torch.cat([h, skips.pop()], dim=1), emb, f"up_blocks.{i}.resnets.{j}.", groups, eps)
            if kind.startswith("CrossAttn"):
                h = transformer(W, h, ctx, f"up_blocks.{i}.attentions.{j}.", heads[level], groups, depth(level), lora)
        if i < len(ch) - 1:
            h = ref.conv(W, F.interpolate(h, scale_factor=2.0, mode="nearest"), f"up_blocks.{i}.upsamplers.0.conv")
    h = F.silu(ref.group_norm(W, h, "conv_norm_out", groups, eps))
    return ref.conv(W, h, "conv_out")


def lora_delta(lora, name, x):
    if lora is None or name not in lora.pairs:
        return 0
    a, b = lora.pairs[name]
    return ref.SCALE * ((x @ a.T) @ b.T)


def clip_l_forward(W, ids, lora=None):
    """FrozenCLIPEmbedder(layer="hidden", layer_idx=-2 of 13 hidden states): the layers but the
    last, no final_layer_norm."""
    B, T = ids.shape
    D, H, eps = CLIP1["hidden_size"], CLIP1["num_attention_heads"], CLIP1["layer_norm_eps"]
    x = W["text_model.embeddings.token_embedding.weight"][ids] + W["text_model.embeddings.position_embedding.weight"][:T]
    mask = torch.full((T, T), torch.finfo(x.dtype).min, dtype=x.dtype).triu(1)
    lin = lambda t, n: ref.linear(W, t, n, lora, "text_encoder.")
    for l in range(CLIP1["num_hidden_layers"] - 1):
        p = f"text_model.encoder.layers.{l}."
        h = ref.layer_norm(W, x, p + "layer_norm1", eps)
        split = lambda t: t.view(B, T, H, D // H).transpose(1, 2)
        q = split(lin(h, p + "self_attn.q_proj") * (D // H) ** -0.5)
        k, v = split(lin(h, p + "self_attn.k_proj")), split(lin(h, p + "self_attn.v_proj"))
        attn = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1) @ v
        x = x + lin(attn.transpose(1, 2).reshape(B, T, D), p + "self_attn.out_proj")
        h = lin(ref.layer_norm(W, x, p + "layer_norm2", eps), p + "mlp.fc1")
        x = x + lin(h * torch.sigmoid(1.702 * h), p + "mlp.fc2")
    return x


def bigg_forward(W, ids, lora=None):
    """FrozenOpenCLIPEmbedder2(layer="penultimate", always_return_pooled=True, legacy=False):
    the penultimate layer's states (no ln_final) and ln_final(last layer)[argmax ids] @ text_projection."""
    B, T = ids.shape
    D, H = CLIP2["hidden_size"], CLIP2["num_attention_heads"]
    x = W["token_embedding.weight"][ids] + W["positional_embedding"][:T]
    mask = torch.full((T, T), float("-inf"), dtype=x.dtype).triu(1)
    te = lambda l, name: f"text_encoder_2.text_model.encoder.layers.{l}.{name}"
    hidden = []
    for l in range(CLIP2["num_hidden_layers"]):
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
        hidden.append(x)
    final = F.layer_norm(x, (D,), W["ln_final.weight"], W["ln_final.bias"], 1e-5)
    pooled = final[torch.arange(B), ids.argmax(dim=-1)] @ W["text_projection"]
    return hidden[-2], pooled


def condition(Wc1, Wc2, ids1, ids2, sizes, lora=None):
    """GeneralConditioner: crossattn = cat(CLIP-L, bigG) on channels; vector = cat(pooled, sizes)."""
    states2, pooled = bigg_forward(Wc2, ids2, lora)
    context = torch.cat([clip_l_forward(Wc1, ids1, lora), states2], dim=-1)
    vector = torch.cat([pooled, sinusoidal(sizes, TIME_DIM).to(pooled.dtype)], dim=-1)
    return context, pooled, vector


def training_loss(Wu, Wc1, Wc2, latents, t, noise, ids1, ids2, sizes, weights, lora, prediction):
    ac = ref.alphas_cumprod()[t].to(latents.dtype)
    sa = (ac ** 0.5)[:, None, None, None]
    so = ((1 - ac) ** 0.5)[:, None, None, None]
    context, _, vector = condition(Wc1, Wc2, ids1, ids2, sizes, lora)
    pred = unet_forward(Wu, sa * latents + so * noise, t, context, vector, lora)
    target = noise if prediction == "epsilon" else sa * noise - so * latents
    return (F.mse_loss(pred, target, reduction="none").mean([1, 2, 3]) * weights).mean()


def ldm_unet_name(key):
    """kohya's convert_unet_state_dict_to_sd for SDXL: label_emb for the add_embedding, the rest as SD."""
    for diffusers, ldm in (("add_embedding.linear_1.", "label_emb.0.0."), ("add_embedding.linear_2.", "label_emb.0.2.")):
        if key.startswith(diffusers):
            return ldm + key[len(diffusers):]
    return ref.ldm_unet_name(key)


# ── fixture ────────────────────────────────────────────────────────────────

Wu, Wc1, Wc2 = unet_weights(), clip_weights(), openclip_weights()
Wv, Wd = ref.vae_encoder_weights(), ref.vae_decoder_weights()
lora = ref.Lora()
for key in [k[: -len(".weight")] for k in Wu if k.endswith(".weight")]:
    last = key.split(".")
    if "attentions" in last and (last[-1] in ("to_q", "to_k", "to_v", "proj_in", "proj_out")
                                 or key.endswith("to_out.0") or ".ff." in key):
        w = Wu[key + ".weight"]
        lora.add("unet." + key, w.shape[0], w.shape[1], False)
TE_MODULES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")
for prefix, cfg, layers in (("text_encoder", CLIP1, CLIP1["num_hidden_layers"] - 1),  # its last layer never runs
                            ("text_encoder_2", CLIP2, CLIP2["num_hidden_layers"])):  # its last feeds the pooled output
    D, I = cfg["hidden_size"], cfg["intermediate_size"]
    for l in range(layers):
        for name in TE_MODULES:
            out, inp = (I, D) if name == "mlp.fc1" else (D, I) if name == "mlp.fc2" else (D, D)
            lora.add(f"{prefix}.text_model.encoder.layers.{l}.{name}", out, inp, False)

B, S = 2, UNET["sample_size"]
# CLIP-L pads with EOS (49), OpenCLIP bigG with "!" (0), as kohya's and sgm's tokenizers do.
ids1 = torch.tensor([[48, 3, 17, 9, 49, 49, 49, 49], [48, 21, 5, 33, 12, 40, 2, 49]])
ids2 = torch.tensor([[48, 3, 17, 9, 49, 0, 0, 0], [48, 21, 5, 33, 12, 40, 2, 49]])
# Per example: original (h, w), crop (top, left), target (h, w).
sizes = torch.tensor([[96, 64, 0, 16, 64, 64], [40, 48, 4, 0, 64, 48]])
latents = randn(B, UNET["in_channels"], S, S)
noise = randn(B, UNET["in_channels"], S, S)
timesteps = torch.tensor([123, 861])
weights = torch.tensor([0.6, 1.0])
image = randn(B, VAE["in_channels"], VAE["sample_size"], VAE["sample_size"]).clamp(-1, 1)


def run_all(dtype):
    to = lambda D: {k: v.to(dtype) for k, v in D.items()}
    wu, wc1, wc2, wv = to(Wu), to(Wc1), to(Wc2), to(Wv)
    pairs = ref.Lora()
    pairs.pairs = {k: (a.detach().to(dtype).requires_grad_(), b.detach().to(dtype).requires_grad_())
                   for k, (a, b) in lora.pairs.items()}
    x0, eps, w, img = (t.to(dtype) for t in (latents, noise, weights, image))
    with torch.no_grad():
        context, pooled, vector = condition(wc1, wc2, ids1, ids2, sizes)
        out = {"text_states": context, "pooled": pooled, "vector": vector,
               "unet_output": unet_forward(wu, x0, timesteps, context, vector),
               "vae_latents_mean": ref.vae_encode(wv, img),
               "loss_v_prediction": training_loss(wu, wc1, wc2, x0, timesteps, eps, ids1, ids2, sizes, w, pairs,
                                                  "v_prediction")}
    loss = training_loss(wu, wc1, wc2, x0, timesteps, eps, ids1, ids2, sizes, w, pairs, "epsilon")
    loss.backward()
    out["loss_epsilon"] = loss
    out["grads"] = {k: (a.grad, b.grad) for k, (a, b) in pairs.pairs.items()}
    return out


def main():
    exact, single = run_all(torch.float64), run_all(torch.float32)
    print("float32 vs float64, worst relative error:", ref.worst_error(single, exact))

    checkpoint = {}
    for k, v in Wu.items():
        checkpoint["model.diffusion_model." + ldm_unet_name(k)] = v
    for k, v in Wc1.items():
        checkpoint["conditioner.embedders.0.transformer." + k] = v
    checkpoint["conditioner.embedders.0.transformer.text_model.embeddings.position_ids"] = \
        torch.arange(CLIP1["max_position_embeddings"])[None]
    for k, v in Wc2.items():
        checkpoint[OPENCLIP_PREFIX + k] = v
    for k, v in {**Wv, **Wd}.items():
        name, t = ref.ldm_vae_name(k, v)
        checkpoint["first_stage_model." + name] = t
    ref.save_safetensors(os.path.join(ref.OUT, "sdxl-model.safetensors"), checkpoint)
    flat = ref.flat
    golden = {
        "unet_config": UNET, "text_encoder_config": CLIP1, "text_encoder_2_config": CLIP2, "vae_config": VAE,
        "rank": ref.RANK, "alpha": ref.ALPHA, "input_ids": ids1.tolist(), "input_ids_2": ids2.tolist(),
        "time_ids": sizes.tolist(), "timesteps": timesteps.tolist(), "loss_weights": weights.tolist(),
        "latents": flat(latents), "noise": flat(noise), "image": flat(image),
        **{k: flat(exact[k]) for k in ("text_states", "pooled", "vector", "unet_output", "vae_latents_mean")},
        "loss_epsilon": exact["loss_epsilon"].item(), "loss_v_prediction": exact["loss_v_prediction"].item(),
        "lora": {k: {"A_shape": list(a.shape), "B_shape": list(b.shape), "A": flat(a), "B": flat(b),
                     "A_grad": flat(exact["grads"][k][0]), "B_grad": flat(exact["grads"][k][1])}
                 for k, (a, b) in lora.pairs.items()},
    }
    with open(os.path.join(ref.OUT, "sdxl-golden.json"), "w") as f:
        json.dump(golden, f)
    print("tensors", len(checkpoint), "lora modules", len(lora.pairs),
          "loss", golden["loss_epsilon"], "loss_v", golden["loss_v_prediction"])


if __name__ == "__main__":
    main()
