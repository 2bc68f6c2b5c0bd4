"""Golden greedy generations for @lora/trainer-ort's LlamaGenerator, from the plain PyTorch model of
llm_reference.py run on the committed fixtures (no KV cache: the whole sequence again per token).

Run by hand (Debian: apt-get install python3-torch libopenblas0-pthread):
    /usr/bin/python3 tools/golden/llm_generate_reference.py
For each fixture it writes packages/trainer-ort/src/models/__fixtures__/<name>/generate.json:
the prompt (the first 5 ids of golden.json's first example), the greedy continuation of the base
model and of the base with golden.json's LoRA start values applied at STRENGTH, and the smallest gap
between the two most likely tokens on the way (a gap near 0 would make the comparison fragile).
"""
import json, os, struct, sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from llm_reference import FIXTURES, ROOT, forward  # noqa: E402

STRENGTH, NEW_TOKENS, PROMPT_TOKENS = 0.75, 8, 5


def load_safetensors(path):
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", name
        start, end = info["data_offsets"]
        tensors[name] = torch.frombuffer(bytearray(data[start:end]), dtype=torch.float32).reshape(info["shape"])
    return tensors


def greedy(cfg, W, lora, scaling, prompt):
    ids, gaps = list(prompt), []
    for _ in range(NEW_TOKENS):
        t = torch.tensor([ids])
        logits = forward(cfg, W, lora, scaling, t, torch.ones_like(t))[0, -1]
        top = logits.topk(2).values
        gaps.append((top[0] - top[1]).item())
        ids.append(int(logits.argmax()))
    return ids[len(prompt):], min(gaps)


with torch.no_grad():
    for name in FIXTURES:
        folder = os.path.join(ROOT, name)
        with open(os.path.join(folder, "config.json")) as f:
            cfg = json.load(f)
        with open(os.path.join(folder, "golden.json")) as f:
            golden = json.load(f)
        W = load_safetensors(os.path.join(folder, "model.safetensors"))
        lora = {k: (torch.tensor(v["A"]).view(v["A_shape"]), torch.tensor(v["B"]).view(v["B_shape"]))
                for k, v in golden["lora_start"].items()}
        prompt = golden["input_ids"][0][:PROMPT_TOKENS]
        base, base_gap = greedy(cfg, W, {}, 0.0, prompt)
        adapted, adapted_gap = greedy(cfg, W, lora, golden["alpha"] / golden["rank"] * STRENGTH, prompt)
        out = {"prompt": prompt, "strength": STRENGTH, "base": base, "adapted": adapted,
               "smallest_gap": min(base_gap, adapted_gap)}
        with open(os.path.join(folder, "generate.json"), "w") as f:
            json.dump(out, f)
            f.write("\n")
        print(name, out)
