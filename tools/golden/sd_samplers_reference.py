"""Golden latents for @lora/trainer-ort's SD samplers (src/models/sd/samplers.ts), written the way
k-diffusion (sampling.py, external.py) and diffusers (DDIMScheduler) write them, in float32 torch,
driven by a fixed synthetic noise predictor instead of a UNet so that only the sampler arithmetic
is compared:  eps(input, t)_j = tanh(0.8 * input_j + 0.002 * t - 0.5 + 0.01 * j).

Run by hand (Debian: apt-get install python3-torch libopenblas0-pthread):
    /usr/bin/python3 tools/golden/sd_samplers_reference.py
Writes packages/trainer-ort/src/models/sd/__fixtures__/samplers.json.
"""
import json, os

import torch

torch.set_default_dtype(torch.float32)
OUT = os.path.join(os.path.dirname(__file__), "../../packages/trainer-ort/src/models/sd/__fixtures__/samplers.json")
STEPS, SIZE = 6, 64

betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2
alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
sigmas_all = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
log_sigmas = sigmas_all.log()


def eps_model(x, t):
    j = torch.arange(x.shape[0], dtype=torch.float32)
    return torch.tanh(0.8 * x + 0.002 * float(t) - 0.5 + 0.01 * j)


# k-diffusion DiscreteSchedule
def sigma_to_t(sigma):
    log_sigma = torch.log(torch.as_tensor(sigma, dtype=torch.float32))
    dists = log_sigma - log_sigmas[:, None]
    low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=log_sigmas.shape[0] - 2)
    high_idx = low_idx + 1
    low, high = log_sigmas[low_idx], log_sigmas[high_idx]
    w = ((low - log_sigma) / (low - high)).clamp(0, 1)
    return ((1 - w) * low_idx + w * high_idx).reshape(())


def t_to_sigma(t):
    t = t.float()
    low_idx, high_idx, w = t.floor().long(), t.ceil().long(), t.frac()
    return ((1 - w) * log_sigmas[low_idx] + w * log_sigmas[high_idx]).exp()


def append_zero(x):
    return torch.cat([x, x.new_zeros([1])])


def get_sigmas(n):
    return append_zero(t_to_sigma(torch.linspace(len(sigmas_all) - 1, 0, n)))


def get_sigmas_karras(n, sigma_min, sigma_max, rho=7.0):
    ramp = torch.linspace(0, 1, n)
    min_inv_rho, max_inv_rho = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def compvis_denoiser(eps):  # k-diffusion CompVisDenoiser over a noise predictor eps(input, t)
    def denoiser(x, sigma):
        c_out, c_in = -sigma, 1 / (sigma ** 2 + 1) ** 0.5
        return x + eps(x * c_in, sigma_to_t(sigma)) * c_out
    return denoiser


def to_d(x, sigma, denoised):
    return (x - denoised) / sigma


def sample_euler(denoiser, x, sigmas):
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i])
        x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
    return x


def get_ancestral_step(sigma_from, sigma_to, eta=1.0):
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    return (sigma_to ** 2 - sigma_up ** 2) ** 0.5, sigma_up


def sample_euler_ancestral(denoiser, x, sigmas, noises):
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i])
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1])
        x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noises[i] * sigma_up
    return x


def sample_dpmpp_2m(denoiser, x, sigmas):
    sigma_fn = lambda t: t.neg().exp()
    t_fn = lambda sigma: sigma.log().neg()
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i])
        t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised
        else:
            h_last = t - t_fn(sigmas[i - 1])
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


def sample_ddim(eps_model, x, steps):  # diffusers DDIMScheduler: leading spacing, steps_offset 1, set_alpha_to_one False, eta 0
    step_ratio = 1000 // steps
    timesteps = (torch.arange(0, steps) * step_ratio).round().flip(0) + 1
    for t in timesteps.tolist():
        eps = eps_model(x, t)
        prev_t = t - step_ratio
        alpha_prod_t = alphas_cumprod[t]
        alpha_prod_t_prev = alphas_cumprod[prev_t] if prev_t >= 0 else alphas_cumprod[0]
        pred_original = (x - (1 - alpha_prod_t) ** 0.5 * eps) / alpha_prod_t ** 0.5
        x = alpha_prod_t_prev ** 0.5 * pred_original + (1 - alpha_prod_t_prev) ** 0.5 * eps
    return x


def all_samplers(eps, start, noises, steps):
    """The four samplers from the same start noise (standard normal) and ancestral noises."""
    uniform = get_sigmas(steps)
    karras = get_sigmas_karras(steps, sigmas_all[0].item(), sigmas_all[-1].item())
    denoiser = compvis_denoiser(eps)
    latents = {
        "euler": sample_euler(denoiser, start * uniform[0], uniform),
        "euler_a": sample_euler_ancestral(denoiser, start * uniform[0], uniform, noises),
        "dpmpp_2m": sample_dpmpp_2m(denoiser, start * karras[0], karras),
        "ddim": sample_ddim(eps, start.clone(), steps),
    }
    return latents, uniform, karras


def main():
    g = torch.Generator().manual_seed(7)
    noises = [torch.randn(SIZE, generator=g) for _ in range(STEPS + 1)]  # noises[-1] starts every sampler
    latents, uniform, karras = all_samplers(eps_model, noises[-1], noises, STEPS)
    golden = {
        "steps": STEPS,
        "noise": [n.tolist() for n in noises],
        "sigmas": {"uniform": uniform.tolist(), "karras": karras.tolist()},
        "sigma_to_t": [[s, sigma_to_t(s).item()] for s in [0.02, 0.0292, 0.5, 1.0, 3.3, 14.6, 20.0]],
        "latents": {k: v.tolist() for k, v in latents.items()},
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(golden, f)
        f.write("\n")
    print({k: v[:3] for k, v in golden["latents"].items()})


if __name__ == "__main__":
    main()
