"""Golden latents of text-to-image sampling on the tiny SD fixture of sd_reference.py (its UNet and
CLIP text encoder, float64 from the fixture's float32 weights) with classifier-free guidance, for
each sampler of sd_samplers_reference.py, from the same start noise.

Run by hand (Debian: apt-get install python3-torch libopenblas0-pthread):
    /usr/bin/python3 tools/golden/sd_sample_reference.py
Writes packages/trainer-ort/src/models/sd/__fixtures__/sample.json.
"""
import json, os, sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import sd_reference as ref  # noqa: E402
import sd_samplers_reference as smp  # noqa: E402

OUT = os.path.join(ref.OUT, "sample.json")
STEPS, CFG = 4, 7.5
COND = [48, 3, 17, 9, 49, 49, 49, 49]  # sd_reference's first prompt
UNCOND = [48, 49, 49, 49, 49, 49, 49, 49]  # the empty prompt: BOS, then EOS as padding

D = torch.float64
Wu = {k: v.to(D) for k, v in ref.Wu.items()}
Wc = {k: v.to(D) for k, v in ref.Wc.items()}
with torch.no_grad():
    context = ref.clip_forward(Wc, torch.tensor([UNCOND, COND])).to(D)
    shape = (ref.UNET["in_channels"], ref.S, ref.S)

    def eps(x, t):
        """ε of uncond and cond in one UNet batch, then uncond + CFG·(cond − uncond)."""
        batch = x.to(D).reshape(1, *shape).expand(2, *shape)
        t2 = torch.as_tensor(t, dtype=D).reshape(1).expand(2)
        uncond, cond = ref.unet_forward(Wu, batch, t2, context)
        return (uncond + CFG * (cond - uncond)).reshape(-1).to(x.dtype)

    g = torch.Generator().manual_seed(11)
    size = shape[0] * shape[1] * shape[2]
    noises = [torch.randn(size, generator=g, dtype=torch.float32).to(D) for _ in range(STEPS + 1)]
    latents, _, _ = smp.all_samplers(eps, noises[-1], noises, STEPS)

golden = {"steps": STEPS, "cfg_scale": CFG, "cond_ids": COND, "uncond_ids": UNCOND, "latent_shape": list(shape),
          "noise": [n.tolist() for n in noises], "latents": {k: v.tolist() for k, v in latents.items()}}
with open(OUT, "w") as f:
    json.dump(golden, f)
    f.write("\n")
print({k: v[:3].tolist() for k, v in latents.items()})
