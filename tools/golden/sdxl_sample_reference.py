"""Golden SDXL text-to-image sampling on the tiny fixture of sdxl_reference.py (its UNet, both text
encoders and VAE decoder in float64 from the fixture's float32 weights), written the way A1111's
SDXL path runs it (modules/sd_hijack_clip.py, sd_models_xl.py over sgm's GeneralConditioner):

  - each prompt chunk goes through both encoders: CLIP ViT-L with its chunk padded by EOS, OpenCLIP
    bigG with everything after the first EOS replaced by "!" (id 0); each encoder's penultimate
    states are weighted on their own (A1111's "Original" emphasis: z·w, then z·mean(z)/mean(z·w)),
    the chunks are joined along the tokens, and the two encoders side by side on the channels;
  - the pooled output is bigG's of the first chunk, unweighted;
  - vector = cat(pooled, sinusoidal of original size, crop top-left, target size) = (h, w, 0, 0, h, w);
  - classifier-free guidance over uncond and cond in one UNet batch, each sampler of
    sd_samplers_reference.py from the same noise; then the VAE decoder (latents / 0.13025).

The chunks are given as ids (the fixture's encoders have 8 positions: BOS, 6 tokens, EOS), so this
checks the arithmetic of A1111's conditioning, not its tokenizer (prompt.test.ts covers that).

Run by hand (Debian: apt-get install python3-torch libopenblas0-pthread):
    /usr/bin/python3 tools/golden/sdxl_sample_reference.py
Writes packages/trainer-ort/src/models/sd/__fixtures__/sdxl-sample.json; sdxl-model.safetensors is
read, not written (the weights sdxl_reference.py draws are checked against it).
"""
import json, os, struct, sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import sdxl_reference as xl  # noqa: E402  (draws the fixture's weights; its main() does not run)
import sd_samplers_reference as smp  # noqa: E402

ref = xl.ref
OUT = os.path.join(ref.OUT, "sdxl-sample.json")
STEPS, CFG = 4, 6.0
# Not square, so the size ids' order (height before width) shows.
LATENT_H, LATENT_W = 8, 12
BOS, EOS, PAD2 = 48, 49, 0

# Chunks of (ids, weights): the prompt has two, the negative prompt one, padded with the empty chunk
# (A1111's empty_chunk: BOS, then EOS) as the shorter prompt is before one UNet batch.
COND = [([BOS, 3, 17, 9, 22, 5, 31, EOS], [1, 1, 1.21, 1.21, 1, 0.9, 1, 1]),
        ([BOS, 40, 2, 11, EOS, EOS, EOS, EOS], [1, 1.1, 1, 1, 1, 1, 1, 1])]
UNCOND = [([BOS, 14, 6, EOS, EOS, EOS, EOS, EOS], [1, 1, 1.3, 1, 1, 1, 1, 1]),
          ([BOS] + [EOS] * 7, [1] * 8)]

D = torch.float64


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = torch.int64 if info["dtype"] == "I64" else torch.float32
        out[name] = torch.frombuffer(bytearray(raw[8 + n + begin:8 + n + end]), dtype=dtype).reshape(info["shape"])
    return out


def check_fixture():
    """The weights drawn on import are the committed fixture's, tensor by tensor."""
    stored = read_safetensors(os.path.join(ref.OUT, "sdxl-model.safetensors"))
    drawn = {"model.diffusion_model." + xl.ldm_unet_name(k): v for k, v in xl.Wu.items()}
    drawn.update({"conditioner.embedders.0.transformer." + k: v for k, v in xl.Wc1.items()})
    drawn.update({xl.OPENCLIP_PREFIX + k: v for k, v in xl.Wc2.items()})
    for k, v in {**xl.Wv, **xl.Wd}.items():
        name, t = ref.ldm_vae_name(k, v)
        drawn["first_stage_model." + name] = t
    for name, t in drawn.items():
        assert torch.equal(stored[name], t.to(stored[name].dtype)), name


def emphasis(z, weights):
    """A1111's EmphasisOriginal on one chunk: scale by the weights, then restore the mean."""
    w = torch.tensor(weights, dtype=z.dtype)[None, :, None]
    weighted = z * w
    return weighted * (z.mean() / weighted.mean())


def bigg_ids(ids):
    """A1111's process_tokens for bigG: id_pad (0) after the first EOS."""
    first = ids.index(EOS)
    return ids[: first + 1] + [PAD2] * (len(ids) - first - 1)


def condition(Wc1, Wc2, chunks):
    """crossattn [1, 8·chunks, 16 + 24] and the pooled output of the first chunk."""
    states_l, states_g, pooled = [], [], None
    for ids, weights in chunks:
        z_l = xl.clip_l_forward(Wc1, torch.tensor([ids]))
        z_g, p = xl.bigg_forward(Wc2, torch.tensor([bigg_ids(ids)]))
        states_l.append(emphasis(z_l, weights))
        states_g.append(emphasis(z_g, weights))
        pooled = p if pooled is None else pooled
    return torch.cat([torch.cat(states_l, dim=1), torch.cat(states_g, dim=1)], dim=-1), pooled


def main():
    check_fixture()
    to = lambda W: {k: v.to(D) for k, v in W.items()}
    Wu, Wc1, Wc2, Wd = to(xl.Wu), to(xl.Wc1), to(xl.Wc2), to(xl.Wd)
    factor = 2 ** (len(xl.VAE["block_out_channels"]) - 1)
    height, width = LATENT_H * factor, LATENT_W * factor
    time_ids = [height, width, 0, 0, height, width]
    shape = (xl.UNET["in_channels"], LATENT_H, LATENT_W)
    with torch.no_grad():
        cond, cond_pooled = condition(Wc1, Wc2, COND)
        uncond, uncond_pooled = condition(Wc1, Wc2, UNCOND)
        context = torch.cat([uncond, cond])
        sizes = xl.sinusoidal(torch.tensor([time_ids, time_ids]), xl.TIME_DIM).to(D)
        vector = torch.cat([torch.cat([uncond_pooled, cond_pooled]), sizes], dim=-1)

        def eps(x, t):
            """ε of uncond and cond in one UNet batch, then uncond + CFG·(cond − uncond)."""
            batch = x.to(D).reshape(1, *shape).expand(2, *shape)
            t2 = torch.as_tensor(t, dtype=D).reshape(1).expand(2)
            u, c = xl.unet_forward(Wu, batch, t2, context, vector)
            return (u + CFG * (c - u)).reshape(-1).to(x.dtype)

        g = torch.Generator().manual_seed(23)
        size = shape[0] * shape[1] * shape[2]
        noises = [torch.randn(size, generator=g, dtype=torch.float32).to(D) for _ in range(STEPS + 1)]
        latents, _, _ = smp.all_samplers(eps, noises[-1], noises, STEPS)
        decoded = ref.vae_decode(Wd, latents["euler"].reshape(1, *shape).to(D))

    flat = ref.flat
    golden = {"steps": STEPS, "cfg_scale": CFG, "time_ids": time_ids, "latent_shape": list(shape),
              "cond_chunks": [{"ids": i, "weights": w} for i, w in COND],
              "uncond_chunks": [{"ids": i, "weights": w} for i, w in UNCOND],
              "cond_states": flat(cond), "cond_pooled": flat(cond_pooled),
              "uncond_states": flat(uncond), "uncond_pooled": flat(uncond_pooled),
              "noise": [n.tolist() for n in noises], "latents": {k: flat(v) for k, v in latents.items()},
              "decoded_euler": flat(decoded)}
    with open(OUT, "w") as f:
        json.dump(golden, f)
        f.write("\n")
    print({k: v[:3].tolist() for k, v in latents.items()}, "decoded", decoded.flatten()[:3].tolist())


if __name__ == "__main__":
    main()
