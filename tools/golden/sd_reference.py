"""Golden values for @lora/trainer-ort's Stable Diffusion graphs (UNet, CLIP text encoder, VAE
encoder, training loss), from a plain PyTorch implementation of the diffusers / transformers
modules (UNet2DConditionModel, CLIPTextModel, AutoencoderKL's Encoder and Decoder) at tiny sizes.

Run by hand (Debian: apt-get install python3-torch libopenblas0-pthread):
    /usr/bin/python3 tools/golden/sd_reference.py
It writes packages/trainer-ort/src/models/sd/__fixtures__/:
  model.safetensors  random F32 weights in the original LDM single-file layout
                     (model.diffusion_model., cond_stage_model.transformer., first_stage_model.,
                     the VAE decoder included), plus keys a loader must skip: EMA copies,
                     position_ids (I64)
  golden.json        the three diffusers-style config.json dicts, inputs, forward outputs, the
                     epsilon- and v-prediction losses for fixed noise and timesteps, LoRA start
                     values and gradients, all computed in float64 from the float32 weights
                     (the script prints how far a float32 run lands from them).
The modules are written with diffusers parameter names; `ldm_name` converts them the way kohya's
convert_unet_state_dict_to_sd / convert_vae_state_dict do, independently of the TypeScript loader
(which maps the other way). LoRA: y = x W^T (+ b) + (alpha / r) * (x A^T) B^T (1x1 convs alike),
B starts non-zero so every gradient is non-trivial.
"""
import json, math, os, struct
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float32)
OUT = os.path.join(os.path.dirname(__file__), "../../packages/trainer-ort/src/models/sd/__fixtures__")

UNET = {"_class_name": "UNet2DConditionModel", "in_channels": 4, "out_channels": 4,
        "block_out_channels": [8, 16], "layers_per_block": 2,
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        "attention_head_dim": 2, "cross_attention_dim": 16, "norm_num_groups": 2, "norm_eps": 1e-5,
        "flip_sin_to_cos": True, "freq_shift": 0, "act_fn": "silu", "sample_size": 8}
CLIP = {"architectures": ["CLIPTextModel"], "vocab_size": 50, "hidden_size": 16, "intermediate_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 8,
        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
VAE = {"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3, "block_out_channels": [8, 16],
       "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"], "layers_per_block": 2,
       "latent_channels": 4, "norm_num_groups": 2, "scaling_factor": 0.18215, "sample_size": 16}
RANK, ALPHA = 2, 4
SCALE = ALPHA / RANK

g = torch.Generator().manual_seed(1234)
randn = lambda *s, std=1.0: torch.randn(*s, generator=g) * std


# ── weights (diffusers names) ──────────────────────────────────────────────

def linear_w(W, name, out, inp, bias=True):
    W[name + ".weight"] = randn(out, inp, std=1 / math.sqrt(inp))
    if bias:
        W[name + ".bias"] = randn(out, std=0.1)


def conv_w(W, name, out, inp, k):
    W[name + ".weight"] = randn(out, inp, k, k, std=1 / math.sqrt(inp * k * k))
    W[name + ".bias"] = randn(out, std=0.1)


def norm_w(W, name, c):
    W[name + ".weight"] = 1 + randn(c, std=0.1)
    W[name + ".bias"] = randn(c, std=0.1)


def resnet_w(W, p, inp, out, temb):
    norm_w(W, p + "norm1", inp)
    conv_w(W, p + "conv1", out, inp, 3)
    if temb:
        linear_w(W, p + "time_emb_proj", out, temb)
    norm_w(W, p + "norm2", out)
    conv_w(W, p + "conv2", out, out, 3)
    if inp != out:
        conv_w(W, p + "conv_shortcut", out, inp, 1)


def transformer_w(W, p, c, ctx):
    norm_w(W, p + "norm", c)
    conv_w(W, p + "proj_in", c, c, 1)
    b = p + "transformer_blocks.0."
    for n in ("norm1", "norm2", "norm3"):
        norm_w(W, b + n, c)
    for attn, kv in (("attn1", c), ("attn2", ctx)):
        linear_w(W, b + attn + ".to_q", c, c, bias=False)
        linear_w(W, b + attn + ".to_k", c, kv, bias=False)
        linear_w(W, b + attn + ".to_v", c, kv, bias=False)
        linear_w(W, b + attn + ".to_out.0", c, c)
    linear_w(W, b + "ff.net.0.proj", 8 * c, c)
    linear_w(W, b + "ff.net.2", c, 4 * c)
    conv_w(W, p + "proj_out", c, c, 1)


def unet_weights():
    W = {}
    ch = UNET["block_out_channels"]
    L = UNET["layers_per_block"]
    temb = 4 * ch[0]
    ctx = UNET["cross_attention_dim"]
    linear_w(W, "time_embedding.linear_1", temb, ch[0])
    linear_w(W, "time_embedding.linear_2", temb, temb)
    conv_w(W, "conv_in", ch[0], UNET["in_channels"], 3)
    skips = [ch[0]]
    c = ch[0]
    for i, kind in enumerate(UNET["down_block_types"]):
        for j in range(L):
            resnet_w(W, f"down_blocks.{i}.resnets.{j}.", c, ch[i], temb)
            c = ch[i]
            if kind.startswith("CrossAttn"):
                transformer_w(W, f"down_blocks.{i}.attentions.{j}.", c, ctx)
            skips.append(c)
        if i < len(ch) - 1:
            conv_w(W, f"down_blocks.{i}.downsamplers.0.conv", c, c, 3)
            skips.append(c)
    resnet_w(W, "mid_block.resnets.0.", c, c, temb)
    transformer_w(W, "mid_block.attentions.0.", c, ctx)
    resnet_w(W, "mid_block.resnets.1.", c, c, temb)
    for i, kind in enumerate(UNET["up_block_types"]):
        out = ch[len(ch) - 1 - i]
        for j in range(L + 1):
            resnet_w(W, f"up_blocks.{i}.resnets.{j}.", c + skips.pop(), out, temb)
            c = out
            if kind.startswith("CrossAttn"):
                transformer_w(W, f"up_blocks.{i}.attentions.{j}.", c, ctx)
        if i < len(ch) - 1:
            conv_w(W, f"up_blocks.{i}.upsamplers.0.conv", c, c, 3)
    norm_w(W, "conv_norm_out", c)
    conv_w(W, "conv_out", UNET["out_channels"], c, 3)
    return W


def clip_weights():
    W = {}
    D, I = CLIP["hidden_size"], CLIP["intermediate_size"]
    W["text_model.embeddings.token_embedding.weight"] = randn(CLIP["vocab_size"], D, std=0.5)
    W["text_model.embeddings.position_embedding.weight"] = randn(CLIP["max_position_embeddings"], D, std=0.2)
    for l in range(CLIP["num_hidden_layers"]):
        p = f"text_model.encoder.layers.{l}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            linear_w(W, p + "self_attn." + n, D, D)
        norm_w(W, p + "layer_norm1", D)
        linear_w(W, p + "mlp.fc1", I, D)
        linear_w(W, p + "mlp.fc2", D, I)
        norm_w(W, p + "layer_norm2", D)
    norm_w(W, "text_model.final_layer_norm", D)
    return W


def vae_encoder_weights():
    W = {}
    ch = VAE["block_out_channels"]
    conv_w(W, "encoder.conv_in", ch[0], VAE["in_channels"], 3)
    c = ch[0]
    for i in range(len(ch)):
        for j in range(VAE["layers_per_block"]):
            resnet_w(W, f"encoder.down_blocks.{i}.resnets.{j}.", c, ch[i], None)
            c = ch[i]
        if i < len(ch) - 1:
            conv_w(W, f"encoder.down_blocks.{i}.downsamplers.0.conv", c, c, 3)
    resnet_w(W, "encoder.mid_block.resnets.0.", c, c, None)
    a = "encoder.mid_block.attentions.0."
    norm_w(W, a + "group_norm", c)
    for n in ("to_q", "to_k", "to_v", "to_out.0"):
        linear_w(W, a + n, c, c)
    resnet_w(W, "encoder.mid_block.resnets.1.", c, c, None)
    norm_w(W, "encoder.conv_norm_out", c)
    z = VAE["latent_channels"]
    conv_w(W, "encoder.conv_out", 2 * z, c, 3)
    conv_w(W, "quant_conv", 2 * z, 2 * z, 1)
    return W


def vae_decoder_weights():
    """diffusers Decoder: reversed channels, layers_per_block + 1 resnets per up block."""
    W = {}
    ch, z = list(reversed(VAE["block_out_channels"])), VAE["latent_channels"]
    conv_w(W, "post_quant_conv", z, z, 1)
    conv_w(W, "decoder.conv_in", ch[0], z, 3)
    c = ch[0]
    resnet_w(W, "decoder.mid_block.resnets.0.", c, c, None)
    a = "decoder.mid_block.attentions.0."
    norm_w(W, a + "group_norm", c)
    for n in ("to_q", "to_k", "to_v", "to_out.0"):
        linear_w(W, a + n, c, c)
    resnet_w(W, "decoder.mid_block.resnets.1.", c, c, None)
    for i, out in enumerate(ch):
        for j in range(VAE["layers_per_block"] + 1):
            resnet_w(W, f"decoder.up_blocks.{i}.resnets.{j}.", c, out, None)
            c = out
        if i < len(ch) - 1:
            conv_w(W, f"decoder.up_blocks.{i}.upsamplers.0.conv", c, c, 3)
    norm_w(W, "decoder.conv_norm_out", c)
    conv_w(W, "decoder.conv_out", VAE["out_channels"], c, 3)
    return W


# ── diffusers → LDM names (kohya convert_unet_state_dict_to_sd, convert_vae_state_dict) ──

RESNET_LDM = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
              "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def ldm_unet_name(key):
    L = UNET["layers_per_block"]
    top = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
           "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    parts = key.split(".")
    for d, l in top.items():
        if key.startswith(d + "."):
            return l + key[len(d):]

    def resnet(rest):
        return ".".join([RESNET_LDM[rest[0]]] + rest[1:])

    if parts[0] == "down_blocks":
        i = int(parts[1])
        if parts[2] == "downsamplers":
            return f"input_blocks.{(L + 1) * (i + 1)}.0.op." + ".".join(parts[5:])
        j = int(parts[3])
        n = (L + 1) * i + j + 1
        return f"input_blocks.{n}.1." + ".".join(parts[4:]) if parts[2] == "attentions" \
            else f"input_blocks.{n}.0." + resnet(parts[4:])
    if parts[0] == "mid_block":
        if parts[1] == "attentions":
            return "middle_block.1." + ".".join(parts[3:])
        return f"middle_block.{2 * int(parts[2])}." + resnet(parts[3:])
    if parts[0] == "up_blocks":
        i = int(parts[1])
        if parts[2] == "upsamplers":
            has_attn = UNET["up_block_types"][i].startswith("CrossAttn")
            return f"output_blocks.{(L + 1) * i + L}.{2 if has_attn else 1}.conv." + ".".join(parts[5:])
        n = (L + 1) * i + int(parts[3])
        return f"output_blocks.{n}.1." + ".".join(parts[4:]) if parts[2] == "attentions" \
            else f"output_blocks.{n}.0." + resnet(parts[4:])
    raise KeyError(key)


def ldm_vae_name(key, tensor):
    if key.startswith("decoder.up_blocks."):
        i = int(key.split(".")[2])
        levels = len(VAE["block_out_channels"])
        key = key.replace(f"decoder.up_blocks.{i}.", f"decoder.up.{levels - 1 - i}.", 1)
    name = key.replace("down_blocks.", "down.").replace(".resnets.", ".block.")
    name = name.replace(".upsamplers.0.conv", ".upsample.conv")
    name = name.replace(".downsamplers.0.conv", ".downsample.conv")
    name = name.replace("mid_block.block.0", "mid.block_1").replace("mid_block.block.1", "mid.block_2")
    name = name.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
    if ".mid_block.attentions.0." in name:
        name = name.replace("mid_block.attentions.0.", "mid.attn_1.")
        for d, l in (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")):
            name = name.replace(f"attn_1.{d}.", f"attn_1.{l}.")
        if tensor.dim() == 2:
            tensor = tensor[:, :, None, None]  # LDM stores these as 1x1 convs
    return name, tensor


# ── modules (diffusers / transformers formulas) ───────────────────────────

class Lora:
    """LoRA pairs by module path ("unet.<path>" / "text_encoder.<path>")."""

    def __init__(self):
        self.pairs = {}

    def add(self, name, out, inp, conv):
        a = randn(RANK, inp, *((1, 1) if conv else ()), std=0.1).requires_grad_()
        b = randn(out, RANK, *((1, 1) if conv else ()), std=0.1).requires_grad_()
        self.pairs[name] = (a, b)


def linear(W, x, name, lora=None, prefix=""):
    y = x @ W[name + ".weight"].T
    if name + ".bias" in W:
        y = y + W[name + ".bias"]
    if lora is not None and prefix + name in lora.pairs:
        a, b = lora.pairs[prefix + name]
        y = y + SCALE * ((x @ a.T) @ b.T)
    return y


def conv(W, x, name, stride=1, padding=None, lora=None, prefix=""):
    w = W[name + ".weight"]
    pad = w.shape[-1] // 2 if padding is None else padding
    y = F.conv2d(x, w, W[name + ".bias"], stride=stride, padding=pad)
    if lora is not None and prefix + name in lora.pairs:
        a, b = lora.pairs[prefix + name]
        y = y + SCALE * F.conv2d(F.conv2d(x, a, stride=stride, padding=pad), b)
    return y


def group_norm(W, x, name, groups, eps):
    return F.group_norm(x, groups, W[name + ".weight"], W[name + ".bias"], eps)


def layer_norm(W, x, name, eps):
    return F.layer_norm(x, (x.shape[-1],), W[name + ".weight"], W[name + ".bias"], eps)


def resnet(W, x, temb, p, groups, eps):
    h = F.silu(group_norm(W, x, p + "norm1", groups, eps))
    h = conv(W, h, p + "conv1")
    if temb is not None:
        h = h + linear(W, F.silu(temb), p + "time_emb_proj")[:, :, None, None]
    h = F.silu(group_norm(W, h, p + "norm2", groups, eps))
    h = conv(W, h, p + "conv2")
    if p + "conv_shortcut.weight" in W:
        x = conv(W, x, p + "conv_shortcut")
    return x + h


def attention(W, x, ctx, p, heads, lora):
    lin = lambda t, n: linear(W, t, p + n, lora, "unet.")
    q, k, v = lin(x, "to_q"), lin(ctx, "to_k"), lin(ctx, "to_v")
    B, _, C = q.shape
    split = lambda t: t.view(B, -1, heads, C // heads).transpose(1, 2)
    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(C // heads)
    out = (scores.softmax(-1) @ split(v)).transpose(1, 2).reshape(B, -1, C)
    return lin(out, "to_out.0")


def transformer(W, x, ctx, p, heads, groups, lora):
    B, C, H, Wd = x.shape
    residual = x
    h = group_norm(W, x, p + "norm", groups, 1e-6)
    h = conv(W, h, p + "proj_in", lora=lora, prefix="unet.")
    h = h.permute(0, 2, 3, 1).reshape(B, H * Wd, C)
    b = p + "transformer_blocks.0."
    n = layer_norm(W, h, b + "norm1", 1e-5)
    h = attention(W, n, n, b + "attn1.", heads, lora) + h
    h = attention(W, layer_norm(W, h, b + "norm2", 1e-5), ctx, b + "attn2.", heads, lora) + h
    n = layer_norm(W, h, b + "norm3", 1e-5)
    hidden, gate = linear(W, n, b + "ff.net.0.proj", lora, "unet.").chunk(2, dim=-1)
    h = linear(W, hidden * F.gelu(gate), b + "ff.net.2", lora, "unet.") + h
    h = h.reshape(B, H, Wd, C).permute(0, 3, 1, 2)
    return conv(W, h, p + "proj_out", lora=lora, prefix="unet.") + residual


def timestep_embedding(t, dim):
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(0, half, dtype=torch.float32) / half  # freq_shift 0
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    return torch.cat([emb[:, half:], emb[:, :half]], dim=-1)  # flip_sin_to_cos


def unet_forward(W, x, t, ctx, lora=None):
    ch, L = UNET["block_out_channels"], UNET["layers_per_block"]
    groups, eps, heads = UNET["norm_num_groups"], UNET["norm_eps"], UNET["attention_head_dim"]
    temb = timestep_embedding(t, ch[0]).to(x.dtype)  # float32 whatever the model's dtype, as diffusers
    temb = linear(W, F.silu(linear(W, temb, "time_embedding.linear_1")), "time_embedding.linear_2")
    h = conv(W, x, "conv_in")
    skips = [h]
    for i, kind in enumerate(UNET["down_block_types"]):
        for j in range(L):
            h = resnet(W, h, temb, f"down_blocks.{i}.resnets.{j}.", groups, eps)
            if kind.startswith("CrossAttn"):
                h = transformer(W, h, ctx, f"down_blocks.{i}.attentions.{j}.", heads, groups, lora)
            skips.append(h)
        if i < len(ch) - 1:
            h = conv(W, h, f"down_blocks.{i}.downsamplers.0.conv", stride=2, padding=1)
            skips.append(h)
    h = resnet(W, h, temb, "mid_block.resnets.0.", groups, eps)
    h = transformer(W, h, ctx, "mid_block.attentions.0.", heads, groups, lora)
    h = resnet(W, h, temb, "mid_block.resnets.1.", groups, eps)
    for i, kind in enumerate(UNET["up_block_types"]):
        for j in range(L + 1):
            h = resnet(W, torch.cat([h, skips.pop()], dim=1), temb, f"up_blocks.{i}.resnets.{j}.", groups, eps)
            if kind.startswith("CrossAttn"):
                h = transformer(W, h, ctx, f"up_blocks.{i}.attentions.{j}.", heads, groups, lora)
        if i < len(ch) - 1:
            h = conv(W, F.interpolate(h, scale_factor=2.0, mode="nearest"), f"up_blocks.{i}.upsamplers.0.conv")
    h = F.silu(group_norm(W, h, "conv_norm_out", groups, eps))
    return conv(W, h, "conv_out")


def clip_forward(W, ids, lora=None, clip_skip=1):
    """kohya / A1111 clip_skip: 1 = last layer, 2 = penultimate; final_layer_norm applied either way."""
    B, T = ids.shape
    D, H, eps = CLIP["hidden_size"], CLIP["num_attention_heads"], CLIP["layer_norm_eps"]
    x = W["text_model.embeddings.token_embedding.weight"][ids] + W["text_model.embeddings.position_embedding.weight"][:T]
    mask = torch.full((T, T), torch.finfo(x.dtype).min, dtype=x.dtype).triu(1)
    lin = lambda t, n: linear(W, t, n, lora, "text_encoder.")
    for l in range(CLIP["num_hidden_layers"] - (clip_skip - 1)):
        p = f"text_model.encoder.layers.{l}."
        h = layer_norm(W, x, p + "layer_norm1", eps)
        split = lambda t: t.view(B, T, H, D // H).transpose(1, 2)
        q = split(lin(h, p + "self_attn.q_proj") * (D // H) ** -0.5)
        k, v = split(lin(h, p + "self_attn.k_proj")), split(lin(h, p + "self_attn.v_proj"))
        attn = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1) @ v
        x = x + lin(attn.transpose(1, 2).reshape(B, T, D), p + "self_attn.out_proj")
        h = lin(layer_norm(W, x, p + "layer_norm2", eps), p + "mlp.fc1")
        x = x + lin(h * torch.sigmoid(1.702 * h), p + "mlp.fc2")
    return layer_norm(W, x, "text_model.final_layer_norm", eps)


def vae_encode(W, image, noise=None):
    ch, groups = VAE["block_out_channels"], VAE["norm_num_groups"]
    h = conv(W, image, "encoder.conv_in")
    for i in range(len(ch)):
        for j in range(VAE["layers_per_block"]):
            h = resnet(W, h, None, f"encoder.down_blocks.{i}.resnets.{j}.", groups, 1e-6)
        if i < len(ch) - 1:
            h = conv(W, F.pad(h, (0, 1, 0, 1)), f"encoder.down_blocks.{i}.downsamplers.0.conv", stride=2, padding=0)
    h = resnet(W, h, None, "encoder.mid_block.resnets.0.", groups, 1e-6)
    a = "encoder.mid_block.attentions.0."
    B, C, Hh, Ww = h.shape
    n = group_norm(W, h, a + "group_norm", groups, 1e-6).view(B, C, Hh * Ww).transpose(1, 2)
    q, k, v = linear(W, n, a + "to_q"), linear(W, n, a + "to_k"), linear(W, n, a + "to_v")
    attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(C), dim=-1) @ v
    h = linear(W, attn, a + "to_out.0").transpose(1, 2).reshape(B, C, Hh, Ww) + h
    h = resnet(W, h, None, "encoder.mid_block.resnets.1.", groups, 1e-6)
    h = conv(W, F.silu(group_norm(W, h, "encoder.conv_norm_out", groups, 1e-6)), "encoder.conv_out")
    moments = conv(W, h, "quant_conv")
    mean, logvar = moments.chunk(2, dim=1)
    logvar = logvar.clamp(-30.0, 20.0)
    z = mean if noise is None else mean + torch.exp(0.5 * logvar) * noise
    return z * VAE["scaling_factor"]


def vae_attention(W, h, a, groups):
    B, C, Hh, Ww = h.shape
    n = group_norm(W, h, a + "group_norm", groups, 1e-6).view(B, C, Hh * Ww).transpose(1, 2)
    q, k, v = linear(W, n, a + "to_q"), linear(W, n, a + "to_k"), linear(W, n, a + "to_v")
    attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(C), dim=-1) @ v
    return linear(W, attn, a + "to_out.0").transpose(1, 2).reshape(B, C, Hh, Ww) + h


def vae_decode(W, latents):
    """AutoencoderKL.decode(latents / scaling_factor): the image in about [-1, 1]."""
    ch, groups = VAE["block_out_channels"], VAE["norm_num_groups"]
    h = conv(W, conv(W, latents / VAE["scaling_factor"], "post_quant_conv"), "decoder.conv_in")
    h = resnet(W, h, None, "decoder.mid_block.resnets.0.", groups, 1e-6)
    h = vae_attention(W, h, "decoder.mid_block.attentions.0.", groups)
    h = resnet(W, h, None, "decoder.mid_block.resnets.1.", groups, 1e-6)
    for i in range(len(ch)):
        for j in range(VAE["layers_per_block"] + 1):
            h = resnet(W, h, None, f"decoder.up_blocks.{i}.resnets.{j}.", groups, 1e-6)
        if i < len(ch) - 1:
            h = conv(W, F.interpolate(h, scale_factor=2.0, mode="nearest"), f"decoder.up_blocks.{i}.upsamplers.0.conv")
    return conv(W, F.silu(group_norm(W, h, "decoder.conv_norm_out", groups, 1e-6)), "decoder.conv_out")


def alphas_cumprod():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def training_loss(Wu, Wc, latents, t, noise, ids, weights, lora, prediction):
    ac = alphas_cumprod()[t].to(latents.dtype)
    sa = (ac ** 0.5)[:, None, None, None]
    so = ((1 - ac) ** 0.5)[:, None, None, None]
    noisy = sa * latents + so * noise
    states = clip_forward(Wc, ids, lora)
    pred = unet_forward(Wu, noisy, t, states, lora)
    target = noise if prediction == "epsilon" else sa * noise - so * latents
    per_example = F.mse_loss(pred, target, reduction="none").mean([1, 2, 3])
    return (per_example * weights).mean()


# ── fixture ────────────────────────────────────────────────────────────────

def save_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        dtype, data = ("I64", t.numpy().astype("<i8").tobytes()) if t.dtype == torch.int64 \
            else ("F32", t.numpy().astype("<f4").tobytes())
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def flat(t):
    return [float("%.9g" % v) for v in t.detach().flatten().tolist()]


Wu, Wc, Wv = unet_weights(), clip_weights(), vae_encoder_weights()
lora = Lora()
for key in [k[: -len(".weight")] for k in Wu if k.endswith(".weight")]:
    last = key.split(".")
    if "attentions" in last and (last[-1] in ("to_q", "to_k", "to_v", "proj_in", "proj_out")
                                 or key.endswith("to_out.0") or ".ff." in key):
        w = Wu[key + ".weight"]
        lora.add("unet." + key, w.shape[0], w.shape[1], w.dim() == 4)
for key in [k[: -len(".weight")] for k in Wc if k.endswith(".weight")]:
    if key.split(".")[-1] in ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"):
        w = Wc[key + ".weight"]
        lora.add("text_encoder." + key, w.shape[0], w.shape[1], False)

B, T, S = 2, CLIP["max_position_embeddings"], UNET["sample_size"]
ids = torch.tensor([[48, 3, 17, 9, 49, 49, 49, 49], [48, 21, 5, 33, 12, 40, 2, 49]])
latents = randn(B, UNET["in_channels"], S, S)
noise = randn(B, UNET["in_channels"], S, S)
timesteps = torch.tensor([17, 803])
weights = torch.tensor([1.0, 0.4])
image = randn(B, VAE["in_channels"], VAE["sample_size"], VAE["sample_size"]).clamp(-1, 1)
vae_noise = randn(B, VAE["latent_channels"], VAE["sample_size"] // 2, VAE["sample_size"] // 2)
Wd = vae_decoder_weights()  # drawn last, so the weights and inputs above keep their values



def run_all(dtype):
    """Every golden value, computed in `dtype` from the same float32 weights and inputs."""
    to = lambda D: {k: v.to(dtype) for k, v in D.items()}
    wu, wc, wv, wd = to(Wu), to(Wc), to(Wv), to(Wd)
    pairs = Lora()
    pairs.pairs = {k: (a.detach().to(dtype).requires_grad_(), b.detach().to(dtype).requires_grad_())
                   for k, (a, b) in lora.pairs.items()}
    x0, eps, w, img, vn = (t.to(dtype) for t in (latents, noise, weights, image, vae_noise))
    with torch.no_grad():
        states = clip_forward(wc, ids)
        out = {"text_states": states, "text_states_clip_skip_2": clip_forward(wc, ids, clip_skip=2),
               "unet_output": unet_forward(wu, x0, timesteps, states),
               "vae_latents_mean": vae_encode(wv, img), "vae_latents_sample": vae_encode(wv, img, vn),
               "vae_decoded": vae_decode(wd, x0),
               "loss_v_prediction": training_loss(wu, wc, x0, timesteps, eps, ids, w, pairs, "v_prediction")}
    loss = training_loss(wu, wc, x0, timesteps, eps, ids, w, pairs, "epsilon")
    loss.backward()
    out["loss_epsilon"] = loss
    out["grads"] = {k: (a.grad, b.grad) for k, (a, b) in pairs.pairs.items()}
    return out


def worst_error(a, b):
    """max |a - b| / max |b| over every value and gradient: how far float32 lands from float64."""
    pairs = [(a[k], b[k]) for k in a if k != "grads"]
    pairs += [(x, y) for k in a["grads"] for x, y in zip(a["grads"][k], b["grads"][k])]
    return max(((x.double() - y).abs().max() / y.abs().max()).item() for x, y in pairs)


def main():
    # The golden values are float64 (the exact answer for these float32 weights); the float32 run
    # shows how much of the tests' 1e-4 tolerance float32 rounding needs on this fixture.
    exact, single = run_all(torch.float64), run_all(torch.float32)
    print("float32 vs float64, worst relative error:", worst_error(single, exact))

    checkpoint = {}
    for k, v in Wu.items():
        checkpoint["model.diffusion_model." + ldm_unet_name(k)] = v
    for k, v in Wc.items():
        checkpoint["cond_stage_model.transformer." + k] = v
    for k, v in {**Wv, **Wd}.items():
        name, t = ldm_vae_name(k, v)
        checkpoint["first_stage_model." + name] = t
    # Keys a loader must skip: EMA copies, CLIP's position_ids buffer.
    checkpoint["model_ema.diffusion_modelinput_blocks00weight"] = Wu["conv_in.weight"].clone()
    checkpoint["model_ema.num_updates"] = torch.tensor(7, dtype=torch.int64)
    checkpoint["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(T)[None]

    os.makedirs(OUT, exist_ok=True)
    save_safetensors(os.path.join(OUT, "model.safetensors"), checkpoint)
    golden = {
        "unet_config": UNET, "text_encoder_config": CLIP, "vae_config": VAE, "rank": RANK, "alpha": ALPHA,
        "alphas_cumprod": flat(alphas_cumprod()),
        "input_ids": ids.tolist(), "timesteps": timesteps.tolist(), "loss_weights": weights.tolist(),
        "latents": flat(latents), "noise": flat(noise), "image": flat(image), "vae_noise": flat(vae_noise),
        **{k: flat(exact[k]) for k in ("text_states", "text_states_clip_skip_2", "unet_output",
                                         "vae_latents_mean", "vae_latents_sample", "vae_decoded")},
        "loss_epsilon": exact["loss_epsilon"].item(), "loss_v_prediction": exact["loss_v_prediction"].item(),
        "lora": {k: {"A_shape": list(a.shape), "B_shape": list(b.shape), "A": flat(a), "B": flat(b),
                     "A_grad": flat(exact["grads"][k][0]), "B_grad": flat(exact["grads"][k][1])}
                 for k, (a, b) in lora.pairs.items()},
    }
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(golden, f)
    print("tensors", len(checkpoint), "floats", sum(t.numel() for t in checkpoint.values()),
          "lora modules", len(lora.pairs), "loss", golden["loss_epsilon"], "loss_v", golden["loss_v_prediction"])


if __name__ == "__main__":
    main()
