"""Golden values for @lora/trainer-ort's LLaMA / Qwen2 / Mistral graphs, from a plain PyTorch
implementation of the transformers formulas (modeling_llama / qwen2 / mistral).

Run by hand (Debian: apt-get install python3-torch libopenblas0-pthread):
    /usr/bin/python3 tools/golden/llm_reference.py
For each fixture it writes packages/trainer-ort/src/models/__fixtures__/<name>/:
  config.json        a Hugging Face config (the legacy or the rope_parameters shape)
  model.safetensors  random F32 weights with the real tensor names (written by hand below)
  golden.json        input ids, labels, LoRA A/B start values, logits, loss, LoRA gradients,
                     and the LoRA weights after 3 AdamW steps on the same batch.
LoRA: y = x W^T (+ b) + (alpha / r) * (x A^T) B^T, no dropout; B starts non-zero so that every
gradient is non-trivial.
"""
import json, math, os, struct
import torch

torch.set_default_dtype(torch.float32)
ROOT = os.path.join(os.path.dirname(__file__), "../../packages/trainer-ort/src/models/__fixtures__")


def save_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):  # all F32: the writer orders by name
        data = tensors[name].contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def rope_inv_freq(cfg, head_dim):
    params = cfg.get("rope_parameters") or {"rope_theta": cfg.get("rope_theta", 10000.0), **(cfg.get("rope_scaling") or {})}
    base = params["rope_theta"]
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "linear":
        inv = inv / params["factor"]
    elif kind == "llama3":
        factor, low, high = params["factor"], params["low_freq_factor"], params["high_freq_factor"]
        old = params["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / low, old / high
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        is_mid = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        inv = torch.where(is_mid, smoothed, scaled)
    return inv


def rms_norm(x, w, eps):
    dtype = x.dtype
    x = x.to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return w * x.to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def forward(cfg, W, lora, scaling, ids, mask):
    B, T = ids.shape
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or cfg["hidden_size"] // H
    eps = cfg["rms_norm_eps"]
    window = cfg.get("sliding_window") if cfg["architectures"][0] == "MistralForCausalLM" else None

    def linear(x, name):
        y = x @ W[name + ".weight"].T
        if name + ".bias" in W:
            y = y + W[name + ".bias"]
        if name in lora:
            a, b = lora[name]
            y = y + scaling * ((x @ a.T) @ b.T)
        return y

    x = W["model.embed_tokens.weight"][ids]
    pos = torch.arange(T).float()
    freqs = torch.outer(pos, rope_inv_freq(cfg, D))
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    allowed = j <= i
    if window is not None:
        allowed = allowed & (i - j < window)
    allowed = allowed[None, None] & mask[:, None, None, :].bool()
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q = linear(h, p + "self_attn.q_proj").view(B, T, H, D).transpose(1, 2)
        k = linear(h, p + "self_attn.k_proj").view(B, T, KV, D).transpose(1, 2)
        v = linear(h, p + "self_attn.v_proj").view(B, T, KV, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        scores = (q @ k.transpose(-1, -2)) * D ** -0.5
        scores = scores.masked_fill(~allowed, torch.finfo(torch.float32).min)
        attn = torch.softmax(scores, dim=-1) @ v
        x = x + linear(attn.transpose(1, 2).reshape(B, T, H * D), p + "self_attn.o_proj")
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        mlp = torch.nn.functional.silu(linear(h, p + "mlp.gate_proj")) * linear(h, p + "mlp.up_proj")
        x = x + linear(mlp, p + "mlp.down_proj")
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    return x @ head.T


def causal_lm_loss(logits, labels):
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)


FIXTURES = {
    "llama": {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
              "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 64, "rms_norm_eps": 1e-5,
              "max_position_embeddings": 64, "tie_word_embeddings": True, "torch_dtype": "float32",
              "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                  "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 16},
              "_targets": ["q_proj", "v_proj"]},
    "qwen2": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 32,
              "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 64, "rms_norm_eps": 1e-6,
              "max_position_embeddings": 64, "tie_word_embeddings": False, "rope_theta": 1000000.0,
              "use_sliding_window": False, "sliding_window": 4096, "torch_dtype": "float32",
              "_targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
    "mistral": {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 32,
                "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 1, "head_dim": 16, "vocab_size": 64, "rms_norm_eps": 1e-5,
                "max_position_embeddings": 64, "tie_word_embeddings": False, "rope_theta": 10000.0,
                "rope_scaling": {"type": "linear", "factor": 2.0},
                "sliding_window": 4, "torch_dtype": "float32", "_targets": ["q_proj", "v_proj"]},
}

RANK, ALPHA = 4, 8


def main():
    for name, cfg in FIXTURES.items():
        g = torch.Generator().manual_seed(len(name))
        targets = cfg.pop("_targets")
        Hd, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
        H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        D = cfg.get("head_dim") or Hd // H
        r = lambda *s, std=0.2: torch.randn(*s, generator=g) * std
        W = {"model.embed_tokens.weight": r(V, Hd, std=0.5), "model.norm.weight": 1 + r(Hd, std=0.1)}
        if not cfg["tie_word_embeddings"]:
            W["lm_head.weight"] = r(V, Hd)
        shapes = {"self_attn.q_proj": (H * D, Hd), "self_attn.k_proj": (KV * D, Hd), "self_attn.v_proj": (KV * D, Hd),
                  "self_attn.o_proj": (Hd, H * D), "mlp.gate_proj": (I, Hd), "mlp.up_proj": (I, Hd), "mlp.down_proj": (Hd, I)}
        for l in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{l}."
            W[p + "input_layernorm.weight"] = 1 + r(Hd, std=0.1)
            W[p + "post_attention_layernorm.weight"] = 1 + r(Hd, std=0.1)
            for mod, shape in shapes.items():
                W[p + mod + ".weight"] = r(*shape)
                if cfg["model_type"] == "qwen2" and mod in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                    W[p + mod + ".bias"] = r(shape[0], std=0.1)
        lora = {}
        for l in range(cfg["num_hidden_layers"]):
            for mod, shape in shapes.items():
                if mod.split(".")[1] in targets:
                    key = f"model.layers.{l}.{mod}"
                    lora[key] = (r(RANK, shape[1], std=0.3).requires_grad_(), r(shape[0], RANK, std=0.3).requires_grad_())
        ids = torch.randint(0, V, (2, 8), generator=g)
        mask = torch.ones(2, 8, dtype=torch.int64)
        mask[1, 6:] = 0  # right padding on the second example
        labels = ids.clone()
        labels[0, :3] = -100  # a masked prompt
        labels[1, 6:] = -100  # padding

        scaling = ALPHA / RANK
        logits = forward(cfg, W, lora, scaling, ids, mask)
        loss = causal_lm_loss(logits, labels)
        loss.backward()
        grads = {k: {"A": a.grad.flatten().tolist(), "B": b.grad.flatten().tolist()} for k, (a, b) in lora.items()}
        start = {k: {"A": a.detach().flatten().tolist(), "B": b.detach().flatten().tolist(),
                     "A_shape": list(a.shape), "B_shape": list(b.shape)} for k, (a, b) in lora.items()}

        params = [t for pair in lora.values() for t in pair]
        for t in params:
            t.grad = None
        opt = torch.optim.AdamW(params, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
        losses = []
        for _ in range(3):
            opt.zero_grad()
            step_loss = causal_lm_loss(forward(cfg, W, lora, scaling, ids, mask), labels)
            losses.append(step_loss.item())
            step_loss.backward()
            opt.step()
        after = {k: {"A": a.detach().flatten().tolist(), "B": b.detach().flatten().tolist()} for k, (a, b) in lora.items()}

        out = os.path.join(ROOT, name)
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        save_safetensors(os.path.join(out, "model.safetensors"), W)
        golden = {"rank": RANK, "alpha": ALPHA, "target_modules": targets, "input_ids": ids.tolist(),
                  "attention_mask": mask.tolist(), "labels": labels.tolist(),
                  "logits_shape": list(logits.shape), "logits": logits.detach().flatten().tolist(),
                  "loss": loss.item(), "lora_start": start, "lora_grads": grads,
                  "adamw": {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01,
                            "losses": losses, "lora_after_3_steps": after}}
        with open(os.path.join(out, "golden.json"), "w") as f:
            json.dump(golden, f)
        print(name, "loss", loss.item(), "losses", losses)


if __name__ == "__main__":
    main()
