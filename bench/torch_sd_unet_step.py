"""PyTorch side of the SD rows of bench/train-step.mjs: one LoRA training step of the tiny Stable
Diffusion that @lora/trainer-ort's `writeTinySdModel` writes (UNet2DConditionModel with blocks
[32, 64], one layer per block, cross-attention in the first; a 2-layer CLIP text encoder), read
from that very checkpoint, in plain eager PyTorch. The modules are those of
tools/golden/sd_reference.py (the golden the ORT graphs are tested against), trimmed to the
training path: frozen CLIP forward, DDPM add_noise, UNet forward, epsilon MSE, backward to the
LoRA tensors, AdamW. LoRA rank 8 / alpha 8 on to_q and to_v of every attention (kohya names).
fp32, 2 threads, batch 4, 8x8 latents (64 px images), 77 tokens.

Usage: /usr/bin/python3 bench/torch_sd_unet_step.py <tiny-sd folder>, then JSON requests on stdin
(see bench/worker.py): {"cmd": "info"} and {"cmd": "run", "steps": N}."""
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

from safetensors_read import read_safetensors
from worker import serve

THREADS = 2
BATCH, LATENT = 4, 8
RANK, ALPHA = 8, 8
SCALE = ALPHA / RANK
TARGETS = ("to_q", "to_v")

torch.set_num_threads(THREADS)
torch.set_num_interop_threads(1)
torch.manual_seed(0)

FOLDER = sys.argv[1]
with open(os.path.join(FOLDER, "unet", "config.json")) as f:
    UNET = json.load(f)
with open(os.path.join(FOLDER, "text_encoder", "config.json")) as f:
    CLIP = json.load(f)
CH, L = UNET["block_out_channels"], UNET["layers_per_block"]
GROUPS, EPS = UNET["norm_num_groups"], UNET["norm_eps"]
HEADS = UNET["attention_head_dim"]  # SD 1.x's misnomer: heads per block
CROSS = [kind.startswith("CrossAttn") for kind in UNET["down_block_types"]]
TOKENS = CLIP["max_position_embeddings"]
FILE = read_safetensors(os.path.join(FOLDER, "tiny-sd.safetensors"))

RESNET_LDM = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
              "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def ldm_unet_name(key):
    """diffusers → original LDM name (kohya's convert_unet_state_dict_to_sd), as sd_reference.py."""
    top = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
           "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    for d, ldm in top.items():
        if key.startswith(d + "."):
            return ldm + key[len(d):]
    parts = key.split(".")
    resnet = lambda rest: ".".join([RESNET_LDM[rest[0]]] + rest[1:])
    if parts[0] == "down_blocks":
        i = int(parts[1])
        if parts[2] == "downsamplers":
            return f"input_blocks.{(L + 1) * (i + 1)}.0.op." + ".".join(parts[5:])
        n = (L + 1) * i + int(parts[3]) + 1
        return f"input_blocks.{n}.1." + ".".join(parts[4:]) if parts[2] == "attentions" \
            else f"input_blocks.{n}.0." + resnet(parts[4:])
    if parts[0] == "mid_block":
        if parts[1] == "attentions":
            return "middle_block.1." + ".".join(parts[3:])
        return f"middle_block.{2 * int(parts[2])}." + resnet(parts[3:])
    i = int(parts[1])
    if parts[2] == "upsamplers":
        attn = UNET["up_block_types"][i].startswith("CrossAttn")
        return f"output_blocks.{(L + 1) * i + L}.{2 if attn else 1}.conv." + ".".join(parts[5:])
    n = (L + 1) * i + int(parts[3])
    return f"output_blocks.{n}.1." + ".".join(parts[4:]) if parts[2] == "attentions" \
        else f"output_blocks.{n}.0." + resnet(parts[4:])


class Weights(dict):
    """diffusers-named UNet weights read from the LDM checkpoint; counts what it reads, so every
    tensor of the file's UNet must be used by this architecture (checked in `info`)."""

    def __missing__(self, key):
        value = FILE["model.diffusion_model." + ldm_unet_name(key)]
        self[key] = value
        return value

    def __contains__(self, key):
        try:
            self[key]
            return True
        except KeyError:
            return False


W = Weights()
WC = {k[len("cond_stage_model.transformer."):]: v for k, v in FILE.items()
      if k.startswith("cond_stage_model.transformer.")}
LORA = {}


def lora_for(name, weight):
    if name not in LORA:
        # PEFT's initialisation: A Kaiming-uniform, B zero.
        a = torch.empty(RANK, weight.shape[1])
        torch.nn.init.kaiming_uniform_(a, a=5 ** 0.5)
        LORA[name] = (a.requires_grad_(), torch.zeros(weight.shape[0], RANK, requires_grad=True))
    return LORA[name]


def linear(Wd, x, name, lora=False):
    w = Wd[name + ".weight"]
    y = x @ w.T
    if name + ".bias" in Wd:
        y = y + Wd[name + ".bias"]
    if lora:
        a, b = lora_for(name, w)
        y = y + SCALE * ((x @ a.T) @ b.T)
    return y


def conv(x, name, stride=1, padding=None):
    w = W[name + ".weight"]
    return F.conv2d(x, w, W[name + ".bias"], stride=stride, padding=w.shape[-1] // 2 if padding is None else padding)


def group_norm(x, name, eps=EPS):
    return F.group_norm(x, GROUPS, W[name + ".weight"], W[name + ".bias"], eps)


def layer_norm(Wd, x, name, eps):
    return F.layer_norm(x, (x.shape[-1],), Wd[name + ".weight"], Wd[name + ".bias"], eps)


def resnet(x, temb, p):
    h = conv(F.silu(group_norm(x, p + "norm1")), p + "conv1")
    h = h + linear(W, F.silu(temb), p + "time_emb_proj")[:, :, None, None]
    h = conv(F.silu(group_norm(h, p + "norm2")), p + "conv2")
    if p + "conv_shortcut.weight" in W:
        x = conv(x, p + "conv_shortcut")
    return x + h


def attention(x, ctx, p, heads):
    lin = lambda t, n: linear(W, t, p + n, lora=n in TARGETS)
    q, k, v = lin(x, "to_q"), lin(ctx, "to_k"), lin(ctx, "to_v")
    B, _, C = q.shape
    split = lambda t: t.view(B, -1, heads, C // heads).transpose(1, 2)
    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(C // heads)
    return lin((scores.softmax(-1) @ split(v)).transpose(1, 2).reshape(B, -1, C), "to_out.0")


def transformer(x, ctx, p, heads):
    B, C, H, Wd = x.shape
    h = conv(group_norm(x, p + "norm", 1e-6), p + "proj_in").permute(0, 2, 3, 1).reshape(B, H * Wd, C)
    b = p + "transformer_blocks.0."
    n = layer_norm(W, h, b + "norm1", 1e-5)
    h = attention(n, n, b + "attn1.", heads) + h
    h = attention(layer_norm(W, h, b + "norm2", 1e-5), ctx, b + "attn2.", heads) + h
    hidden, gate = linear(W, layer_norm(W, h, b + "norm3", 1e-5), b + "ff.net.0.proj").chunk(2, dim=-1)
    h = linear(W, hidden * F.gelu(gate), b + "ff.net.2") + h
    return conv(h.reshape(B, H, Wd, C).permute(0, 3, 1, 2), p + "proj_out") + x


def timestep_embedding(t, dim):
    half = dim // 2
    emb = t[:, None].float() * torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    return torch.cat([torch.cos(emb), torch.sin(emb)], dim=-1)  # flip_sin_to_cos, freq_shift 0


def unet_forward(x, t, ctx):
    temb = linear(W, F.silu(linear(W, timestep_embedding(t, CH[0]), "time_embedding.linear_1")),
                  "time_embedding.linear_2")
    h = conv(x, "conv_in")
    skips = [h]
    for i in range(len(CH)):
        for j in range(L):
            h = resnet(h, temb, f"down_blocks.{i}.resnets.{j}.")
            if CROSS[i]:
                h = transformer(h, ctx, f"down_blocks.{i}.attentions.{j}.", HEADS[i])
            skips.append(h)
        if i < len(CH) - 1:
            h = conv(h, f"down_blocks.{i}.downsamplers.0.conv", stride=2, padding=1)
            skips.append(h)
    h = resnet(h, temb, "mid_block.resnets.0.")
    h = transformer(h, ctx, "mid_block.attentions.0.", HEADS[-1])
    h = resnet(h, temb, "mid_block.resnets.1.")
    for i in range(len(CH)):
        for j in range(L + 1):
            h = resnet(torch.cat([h, skips.pop()], dim=1), temb, f"up_blocks.{i}.resnets.{j}.")
            if CROSS[len(CH) - 1 - i]:
                h = transformer(h, ctx, f"up_blocks.{i}.attentions.{j}.", HEADS[len(CH) - 1 - i])
        if i < len(CH) - 1:
            h = conv(F.interpolate(h, scale_factor=2.0, mode="nearest"), f"up_blocks.{i}.upsamplers.0.conv")
    return conv(F.silu(group_norm(h, "conv_norm_out")), "conv_out")


def clip_forward(ids):
    B, T = ids.shape
    D, H, eps = CLIP["hidden_size"], CLIP["num_attention_heads"], CLIP["layer_norm_eps"]
    x = WC["text_model.embeddings.token_embedding.weight"][ids] + \
        WC["text_model.embeddings.position_embedding.weight"][:T]
    mask = torch.full((T, T), torch.finfo(x.dtype).min).triu(1)
    split = lambda t: t.view(B, T, H, D // H).transpose(1, 2)
    for layer in range(CLIP["num_hidden_layers"]):
        p = f"text_model.encoder.layers.{layer}."
        h = layer_norm(WC, x, p + "layer_norm1", eps)
        q = split(linear(WC, h, p + "self_attn.q_proj") * (D // H) ** -0.5)
        k, v = split(linear(WC, h, p + "self_attn.k_proj")), split(linear(WC, h, p + "self_attn.v_proj"))
        attn = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1) @ v
        x = x + linear(WC, attn.transpose(1, 2).reshape(B, T, D), p + "self_attn.out_proj")
        h = linear(WC, layer_norm(WC, x, p + "layer_norm2", eps), p + "mlp.fc1")
        x = x + linear(WC, h * torch.sigmoid(1.702 * h), p + "mlp.fc2")
    return layer_norm(WC, x, "text_model.final_layer_norm", eps)


ALPHAS_CUMPROD = torch.cumprod(1.0 - torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2, dim=0)


def loss_of(latents, ids):
    """kohya's step: fresh noise and timesteps, frozen text encoder, epsilon-prediction MSE."""
    noise = torch.randn_like(latents)
    t = torch.randint(0, 1000, (latents.shape[0],))
    ac = ALPHAS_CUMPROD[t][:, None, None, None]
    with torch.no_grad():
        states = clip_forward(ids)
    pred = unet_forward(ac.sqrt() * latents + (1 - ac).sqrt() * noise, t, states)
    return F.mse_loss(pred, noise)


LATENTS = torch.randn(BATCH, UNET["in_channels"], LATENT, LATENT)
IDS = torch.randint(0, CLIP["vocab_size"], (BATCH, TOKENS))
loss_of(LATENTS, IDS)  # builds W and LORA on first use
PARAMS = [t for pair in LORA.values() for t in pair]
OPTIMIZER = torch.optim.AdamW(PARAMS, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)


def step():
    loss = loss_of(LATENTS, IDS)
    loss.backward()
    OPTIMIZER.step()
    OPTIMIZER.zero_grad(set_to_none=True)
    return loss.item()


def info(_request):
    unet_keys = {k for k in FILE if k.startswith("model.diffusion_model.")}
    used = {"model.diffusion_model." + ldm_unet_name(k) for k in W}
    if used != unet_keys:
        raise ValueError(f"UNet tensors the architecture does not use: {sorted(unet_keys - used)[:5]}")
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return {"params": sum(t.numel() for t in W.values()) + sum(t.numel() for t in WC.values()),
            "trainable": sum(t.numel() for t in PARAMS), "lora_modules": len(LORA),
            "threads": torch.get_num_threads(), "rss_before_first_step": rss}


def run(request):
    started = time.perf_counter()
    for _ in range(request["steps"]):
        loss = step()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"seconds": seconds, "images": BATCH * request["steps"], "loss": loss, "peak_rss": peak}


serve({"info": info, "run": run})
