"""PyTorch side of bench/train-step.mjs: one LoRA training step of a LLaMA-architecture model
(bench/llama-configs.json), written as plain eager PyTorch the way transformers' modeling_llama
computes it: RMSNorm, RoPE, causal softmax attention, SwiGLU MLP, untied LM head, next-token
cross-entropy. LoRA on q_proj and v_proj (y = x W^T + alpha/r * (x A^T) B^T, no dropout);
`requires_grad` only on the LoRA tensors; AdamW over them. fp32, 2 threads.

The frozen weights and the token ids are those bench/train-step.mjs wrote for both sides into
<model folder> (config.json, model.safetensors, input_ids.json); only the LoRA A start values
differ (PEFT's here, @lora's seeded ones there), and B starts at zero on both, so the first
step's loss is the same on both sides (`info` reports it).

Usage: /usr/bin/python3 bench/torch_llama_lora_step.py <config name> <model folder>, then JSON
requests on stdin (see bench/worker.py): {"cmd": "info"} and {"cmd": "run", "steps": N}."""
import json
import os
import resource
import sys
import time

import torch

from safetensors_read import read_safetensors
from worker import serve

THREADS = 2
BATCH, SEQ = 4, 256
RANK, ALPHA = 8, 16
TARGETS = ("q_proj", "v_proj")

torch.set_num_threads(THREADS)
torch.set_num_interop_threads(1)
torch.manual_seed(0)

with open(os.path.join(os.path.dirname(__file__), "llama-configs.json")) as f:
    CONFIG = json.load(f)[sys.argv[1]]
HIDDEN, INNER = CONFIG["hidden_size"], CONFIG["intermediate_size"]
LAYERS, HEADS = CONFIG["num_hidden_layers"], CONFIG["num_attention_heads"]
VOCAB, EPS = CONFIG["vocab_size"], CONFIG["rms_norm_eps"]
HEAD_DIM = HIDDEN // HEADS
SCALING = ALPHA / RANK


SHAPES = {
    "self_attn.q_proj": (HIDDEN, HIDDEN),
    "self_attn.k_proj": (HIDDEN, HIDDEN),
    "self_attn.v_proj": (HIDDEN, HIDDEN),
    "self_attn.o_proj": (HIDDEN, HIDDEN),
    "mlp.gate_proj": (INNER, HIDDEN),
    "mlp.up_proj": (INNER, HIDDEN),
    "mlp.down_proj": (HIDDEN, INNER),
}
FOLDER = sys.argv[2]
W = read_safetensors(os.path.join(FOLDER, "model.safetensors"))
LORA = {}
for layer in range(LAYERS):
    prefix = f"model.layers.{layer}."
    for module, (out_features, in_features) in SHAPES.items():
        assert W[prefix + module + ".weight"].shape == (out_features, in_features), prefix + module
        if module.split(".")[1] in TARGETS:
            # PEFT's initialisation: A Kaiming-uniform, B zero.
            a = torch.empty(RANK, in_features)
            torch.nn.init.kaiming_uniform_(a, a=5 ** 0.5)
            LORA[prefix + module] = (a.requires_grad_(), torch.zeros(out_features, RANK, requires_grad=True))

inv_freq = 1.0 / (CONFIG["rope_theta"] ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM))
angles = torch.outer(torch.arange(SEQ).float(), inv_freq)
COS, SIN = torch.cat((angles, angles), -1).cos(), torch.cat((angles, angles), -1).sin()
CAUSAL = torch.full((SEQ, SEQ), float("-inf")).triu(1)


def linear(x, name):
    y = x @ W[name + ".weight"].T
    if name in LORA:
        a, b = LORA[name]
        y = y + SCALING * ((x @ a.T) @ b.T)
    return y


def rms_norm(x, weight):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), -1)


def loss_of(ids):
    x = W["model.embed_tokens.weight"][ids]
    for layer in range(LAYERS):
        p = f"model.layers.{layer}."
        h = rms_norm(x, W[p + "input_layernorm.weight"])
        q, k, v = (linear(h, p + f"self_attn.{n}_proj").view(BATCH, SEQ, HEADS, HEAD_DIM).transpose(1, 2)
                   for n in "qkv")
        q = q * COS + rotate_half(q) * SIN
        k = k * COS + rotate_half(k) * SIN
        scores = (q @ k.transpose(-1, -2)) * HEAD_DIM ** -0.5 + CAUSAL
        attn = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(BATCH, SEQ, HIDDEN)
        x = x + linear(attn, p + "self_attn.o_proj")
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"])
        x = x + linear(torch.nn.functional.silu(linear(h, p + "mlp.gate_proj")) * linear(h, p + "mlp.up_proj"),
                       p + "mlp.down_proj")
    logits = rms_norm(x, W["model.norm.weight"]) @ W["lm_head.weight"].T
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))


PARAMS = [t for pair in LORA.values() for t in pair]
OPTIMIZER = torch.optim.AdamW(PARAMS, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
with open(os.path.join(FOLDER, "input_ids.json")) as f:
    IDS = torch.tensor(json.load(f))
assert IDS.shape == (BATCH, SEQ)


def step():
    loss = loss_of(IDS)
    loss.backward()
    OPTIMIZER.step()
    OPTIMIZER.zero_grad(set_to_none=True)
    return loss.item()


def blas():
    """The BLAS library actually loaded (Debian's torch uses the libblas.so.3 alternative)."""
    with open("/proc/self/maps") as maps:
        names = {line.split()[-1] for line in maps if "blas" in line.lower()}
    return ", ".join(sorted(os.path.basename(n) for n in names)) or "none found"


def info(_request):
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    with torch.no_grad():
        first_loss = loss_of(IDS).item()
    return {"params": sum(t.numel() for t in W.values()) + sum(t.numel() for t in PARAMS),
            "trainable": sum(t.numel() for t in PARAMS), "torch": torch.__version__, "blas": blas(),
            "threads": torch.get_num_threads(), "rss_before_first_step": rss, "first_loss": first_loss}


def run(request):
    started = time.perf_counter()
    for _ in range(request["steps"]):
        loss = step()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"seconds": seconds, "tokens": BATCH * SEQ * request["steps"], "loss": loss, "peak_rss": peak}


serve({"info": info, "run": run})
