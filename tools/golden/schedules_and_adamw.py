"""Golden values for @lora/trainer-ort's LR schedules and AdamW, from PyTorch.

Run by hand (Debian: apt-get install python3-torch):
    /usr/bin/python3 tools/golden/schedules_and_adamw.py
Writes packages/trainer-ort/src/train/__fixtures__/{schedules,adamw}.json.
The lambdas are transformers' get_*_schedule_with_warmup (optimization.py), driven by
torch.optim.lr_scheduler.LambdaLR exactly as the HF Trainer and diffusers scripts drive them.
"""
import json, math, os
import torch

OUT = os.path.join(os.path.dirname(__file__), "../../packages/trainer-ort/src/train/__fixtures__")


def constant(_):
    return lambda s: 1.0


def constant_with_warmup(w):
    return lambda s: s / max(1.0, w) if s < w else 1.0


def linear(w, total):
    def f(s):
        if s < w:
            return float(s) / float(max(1, w))
        return max(0.0, float(total - s) / float(max(1, total - w)))
    return f


def cosine(w, total, cycles=0.5):
    def f(s):
        if s < w:
            return float(s) / float(max(1, w))
        p = float(s - w) / float(max(1, total - w))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(cycles) * 2.0 * p)))
    return f


def cosine_with_restarts(w, total, cycles=1):
    def f(s):
        if s < w:
            return float(s) / float(max(1, w))
        p = float(s - w) / float(max(1, total - w))
        if p >= 1.0:
            return 0.0
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(cycles) * p) % 1.0))))
    return f


def run_schedule(lam, total, base_lr=1e-3):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])  # the lr the optimizer step uses
        opt.step()
        sched.step()
    return lrs


cases = []
for total, warmup in [(10, 0), (10, 3), (25, 5)]:
    for name, lam, extra in [
        ("constant", constant(warmup), {}),
        ("constant_with_warmup", constant_with_warmup(warmup), {}),
        ("linear", linear(warmup, total), {}),
        ("cosine", cosine(warmup, total), {}),
        ("cosine_with_restarts", cosine_with_restarts(warmup, total, 1), {"num_cycles": 1}),
        ("cosine_with_restarts", cosine_with_restarts(warmup, total, 3), {"num_cycles": 3}),
    ]:
        cases.append({"scheduler": name, "total_steps": total, "warmup_steps": warmup, **extra,
                      "base_lr": 1e-3, "lrs": run_schedule(lam, total)})

with open(os.path.join(OUT, "schedules.json"), "w") as f:
    json.dump(cases, f, indent=1)

# AdamW: 5 steps on fixed params with fixed gradients per step, float32.
g = torch.Generator().manual_seed(0)
adamw = []
for wd, betas, eps in [(0.01, (0.9, 0.999), 1e-8), (0.0, (0.8, 0.99), 1e-6)]:
    p0 = torch.randn(2, 3, generator=g)
    grads = [torch.randn(2, 3, generator=g) for _ in range(5)]
    lrs = [1e-2, 2e-2, 1.5e-2, 1e-2, 5e-3]
    p = torch.nn.Parameter(p0.clone())
    opt = torch.optim.AdamW([p], lr=lrs[0], betas=betas, eps=eps, weight_decay=wd)
    after = []
    for lr, gr in zip(lrs, grads):
        opt.param_groups[0]["lr"] = lr
        p.grad = gr.clone()
        opt.step()
        after.append(p.detach().flatten().tolist())
    adamw.append({"weight_decay": wd, "betas": list(betas), "eps": eps, "lrs": lrs,
                  "param": p0.flatten().tolist(), "shape": [2, 3],
                  "grads": [x.flatten().tolist() for x in grads], "params_after_each_step": after,
                  "exp_avg": opt.state[p]["exp_avg"].flatten().tolist(),
                  "exp_avg_sq": opt.state[p]["exp_avg_sq"].flatten().tolist()})

with open(os.path.join(OUT, "adamw.json"), "w") as f:
    json.dump(adamw, f, indent=1)
print("wrote", OUT)
