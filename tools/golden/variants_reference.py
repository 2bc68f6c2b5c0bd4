"""Golden values for @lora/adapters' LoRA variants (LoRA, rsLoRA, DoRA per output row and per
input column, LoHa, LoKr; linear and 3×3 conv), from PyTorch.

Run by hand (Debian: apt-get install python3-torch):
    /usr/bin/python3 tools/golden/variants_reference.py
Writes packages/adapters/src/variants/__fixtures__/variants.json.

Written independently of the TypeScript graphs: every variant is applied as PyTorch's own
F.linear / F.conv2d with the *merged* weight W' (DoRA: W' = m · V / ‖V‖, V = W + s·up@down, the
norm detached as the DoRA paper's §4.3 and PEFT do), while the graphs scale activations instead.
The loss is Σ y ⊙ R for a fixed random R; gradients are taken toward down, up and the magnitude.
The merge cases give W + μ · (W' − W), the formula A1111 and ComfyUI apply.
"""
import json, math, os
import torch
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(__file__), "../../packages/adapters/src/variants/__fixtures__/variants.json")


def flat(t):
    return [float(v) for v in t.detach().reshape(-1)]


def norm(v, axis):
    """‖V‖ per output row ([out, 1, …]) or per input column ([1, in, 1, …])."""
    if axis == "output":
        return v.reshape(v.shape[0], -1).norm(dim=1).reshape(v.shape[0], *[1] * (v.dim() - 1))
    n = v.transpose(0, 1).reshape(v.shape[1], -1).norm(dim=1)
    return n.reshape(1, v.shape[1], *[1] * (v.dim() - 2))


def delta(down, up):
    out, rank = up.shape[0], up.shape[1]
    return (up.reshape(out, rank) @ down.reshape(rank, -1)).reshape(out, *down.shape[1:])


def factorization(dimension):
    """LyCORIS's factorization(dimension, factor=-1): the divisor pair with the smallest sum."""
    m, n = 1, dimension
    while m < n:
        new_m = m + 1
        while dimension % new_m != 0:
            new_m += 1
        new_n = dimension // new_m
        if new_m + new_n > m + n:
            break
        m, n = new_m, new_n
    return (n, m) if m > n else (m, n)


def case(name, kind, variant, axis=None, rslora=False, rank=3, alpha=6.0, w_shape=None):
    if kind == "linear":
        w_shape = w_shape or (4, 5)
        x_shape = (2, w_shape[1])
    else:
        w_shape = w_shape or (4, 3, 3, 3)
        x_shape = (1, w_shape[1], 5, 5)
    out, inp = w_shape[0], w_shape[1]
    kernel = list(w_shape[2:])
    x = torch.randn(x_shape)
    w = torch.randn(w_shape)
    b = torch.randn(out)
    scale = alpha / (math.sqrt(rank) if rslora else rank)
    if variant == "lokr":
        # LyCORIS LoKr: w1 [out_l, in_m] full, w2 [out_k, in_n(, k, k)] full or w2a @ w2b; ΔW = w1 ⊗ w2.
        (out_l, out_k), (in_m, in_n) = factorization(out), factorization(inp)
        params = {"lokr_w1": torch.randn(out_l, in_m, requires_grad=True)}
        if rank >= max(out_k, in_n) / 2:
            params["lokr_w2"] = torch.randn(out_k, in_n, *kernel, requires_grad=True)
            w2 = params["lokr_w2"]
            scale = 1.0  # both factors full: alpha is ignored
        else:
            params["lokr_w2_a"] = torch.randn(out_k, rank, requires_grad=True)
            params["lokr_w2_b"] = torch.randn(rank, in_n * math.prod(kernel), requires_grad=True)
            w2 = (params["lokr_w2_a"] @ params["lokr_w2_b"]).reshape(out_k, in_n, *kernel)
        w1 = params["lokr_w1"].reshape(out_l, in_m, *[1] * len(kernel))
        v = w + scale * torch.kron(w1, w2)
    elif variant == "loha":
        # LyCORIS LoHa without Tucker factors: (w1a @ w1b) * (w2a @ w2b), the kernel flattened into w*b.
        inner = inp * math.prod(kernel)
        params = {
            "hada_w1_a": torch.randn(out, rank, requires_grad=True),
            "hada_w1_b": torch.randn(rank, inner, requires_grad=True),
            "hada_w2_a": torch.randn(out, rank, requires_grad=True),
            "hada_w2_b": torch.randn(rank, inner, requires_grad=True),
        }
        hadamard = (params["hada_w1_a"] @ params["hada_w1_b"]) * (params["hada_w2_a"] @ params["hada_w2_b"])
        v = w + scale * hadamard.reshape(w_shape)
    else:
        down = torch.randn(rank, inp, *kernel, requires_grad=True)
        up = torch.randn(out, rank, *[1] * len(kernel), requires_grad=True)
        v = w + scale * delta(down, up)
        params = {"down": down, "up": up}
    if variant == "dora":
        # A trained magnitude: the base norm, perturbed.
        magnitude = (norm(w, axis) * (1 + 0.1 * torch.randn(norm(w, axis).shape))).detach().requires_grad_(True)
        params["magnitude"] = magnitude
        adapted = v * (magnitude / norm(v, axis).detach())
    else:
        adapted = v
    y = F.linear(x, adapted, b) if kind == "linear" else F.conv2d(x, adapted, b, padding=1)
    r = torch.randn(y.shape)
    loss = (y * r).sum()
    loss.backward()
    multiplier = 0.7
    with torch.no_grad():
        merged = w + multiplier * (adapted - w)
        base_norm = norm(w, axis) if variant == "dora" else None
    result = {
        "name": name,
        "kind": kind,
        "variant": variant,
        "rank": rank,
        "alpha": alpha,
        "rslora": rslora,
        "x": {"shape": list(x_shape), "data": flat(x)},
        "weight": {"shape": list(w_shape), "data": flat(w)},
        "bias": {"shape": [out], "data": flat(b)},
        "r": {"shape": list(y.shape), "data": flat(r)},
        "parameters": {k: {"shape": list(p.shape), "data": flat(p)} for k, p in params.items()},
        "y": flat(y),
        "loss": float(loss),
        "grads": {k: flat(p.grad) for k, p in params.items()},
        "multiplier": multiplier,
        "merged": flat(merged),
    }
    if axis:
        result["axis"] = axis
        result["baseNorm"] = flat(base_norm)
    return result


cases = [
    case("lora linear", "linear", "lora"),
    case("rslora linear", "linear", "lora", rslora=True),
    case("lora conv", "conv", "lora"),
    case("dora linear per output row", "linear", "dora", axis="output"),
    case("dora linear per input column", "linear", "dora", axis="input"),
    case("dora conv per output channel", "conv", "dora", axis="output"),
    case("dora conv per input channel", "conv", "dora", axis="input"),
    case("dora rslora linear per output row", "linear", "dora", axis="output", rslora=True),
    case("loha linear", "linear", "loha"),
    case("loha conv", "conv", "loha"),
    case("lokr linear, w2 a low-rank pair", "linear", "lokr", rank=1, w_shape=(6, 8)),
    case("lokr linear, both factors full (scale 1)", "linear", "lokr", rank=3, w_shape=(6, 8)),
    case("lokr conv, w2 a low-rank pair", "conv", "lokr", rank=1, w_shape=(4, 6, 3, 3)),
]
with open(OUT, "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f)
print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")
