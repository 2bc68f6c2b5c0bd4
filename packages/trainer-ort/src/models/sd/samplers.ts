/**
 * The samplers of `lora sample`, with the formulas A1111 users know them by: Euler, Euler
 * ancestral and DPM++ 2M (on Karras sigmas) as k-diffusion writes them (`sample_euler`,
 * `sample_euler_ancestral`, `sample_dpmpp_2m`, `get_sigmas_karras`, and `CompVisDenoiser` over
 * the model's discrete schedule), and DDIM as diffusers' `DDIMScheduler` in SD 1.x's
 * configuration (timestep spacing "leading", steps offset 1, ᾱ before step 0 = ᾱ₀, η = 0).
 * The model is a noise predictor; the samplers only do the arithmetic between its calls.
 */

export const SAMPLERS = ['euler', 'euler_a', 'ddim', 'dpmpp_2m'] as const;
export type SamplerName = (typeof SAMPLERS)[number];

/** The sampler names A1111 writes into a PNG's parameters. */
export const A1111_SAMPLER_NAMES: Readonly<Record<SamplerName, string>> = {
  euler: 'Euler',
  euler_a: 'Euler a',
  ddim: 'DDIM',
  dpmpp_2m: 'DPM++ 2M Karras',
};

/**
 * The model's noise prediction ε for `input` at timestep `t` (classifier-free guidance already
 * applied). The k-diffusion samplers pass `x / √(σ² + 1)` and a fractional t; DDIM passes `x` and
 * a whole t.
 */
export type NoisePredictor = (input: Float32Array, t: number) => Promise<Float32Array>;

/**
 * ε from a v-prediction (SD 2.x 768-v) for the DDPM-scaled `input` x_t at noise level σ:
 * with ᾱ = 1 / (1 + σ²), x_t = √ᾱ·x₀ + √(1 − ᾱ)·ε and v = √ᾱ·ε − √(1 − ᾱ)·x₀ give
 * ε = √ᾱ·v + √(1 − ᾱ)·x_t. Every sampler then runs as for ε (k-diffusion's CompVisVDenoiser is the same map).
 */
export function epsilonFromV(v: Float32Array, input: Float32Array, sigma: number): Float32Array {
  const signal = 1 / Math.sqrt(1 + sigma * sigma);
  const noise = sigma * signal;
  return v.map((value, i) => signal * value + noise * input[i]!);
}

/** The σ of each training timestep, σ_t = √((1 − ᾱ_t) / ᾱ_t), and conversions between σ and t. */
export class DiscreteSchedule {
  readonly sigmas: Float64Array;
  private readonly logSigmas: Float64Array;

  constructor(readonly alphasCumprod: ArrayLike<number>) {
    this.sigmas = Float64Array.from(alphasCumprod, (a) => Math.sqrt((1 - a) / a));
    this.logSigmas = this.sigmas.map(Math.log);
  }

  get sigmaMin(): number {
    return this.sigmas[0]!;
  }

  get sigmaMax(): number {
    return this.sigmas[this.sigmas.length - 1]!;
  }

  /** log σ interpolated linearly between the two timesteps around `t`. */
  tToSigma(t: number): number {
    const low = Math.floor(t);
    const high = Math.ceil(t);
    const w = t - low;
    return Math.exp((1 - w) * this.logSigmas[low]! + w * this.logSigmas[high]!);
  }

  /** The inverse of `tToSigma`, clamped to the schedule's range. */
  sigmaToT(sigma: number): number {
    const log = Math.log(sigma);
    const last = this.logSigmas.length - 1;
    let low = 0;
    for (let i = 0; i < this.logSigmas.length; i++) if (log >= this.logSigmas[i]!) low = i;
    low = Math.min(low, last - 1);
    const [a, b] = [this.logSigmas[low]!, this.logSigmas[low + 1]!];
    const w = Math.min(1, Math.max(0, (a - log) / (a - b)));
    return (1 - w) * low + w * (low + 1);
  }

  /** `steps` σ at t = linspace(T − 1, 0, steps), then 0 (k-diffusion's `get_sigmas`). */
  uniformSigmas(steps: number): number[] {
    const last = this.sigmas.length - 1;
    const t = (i: number) => (steps === 1 ? last : last - (last * i) / (steps - 1));
    return [...Array.from({ length: steps }, (_, i) => this.tToSigma(t(i))), 0];
  }

  /** Karras et al.'s σ: evenly spaced in σ^(1/ρ) from σ_max to σ_min, then 0. */
  karrasSigmas(steps: number, rho = 7): number[] {
    const [lo, hi] = [this.sigmaMin ** (1 / rho), this.sigmaMax ** (1 / rho)];
    const ramp = (i: number) => (steps === 1 ? 0 : i / (steps - 1));
    return [...Array.from({ length: steps }, (_, i) => (hi + ramp(i) * (lo - hi)) ** rho), 0];
  }
}

export interface SampleOptions {
  steps: number;
  /** Standard normal noise: the start (`step` −1) and each ancestral step's. */
  noise(step: number): Float32Array;
}

/** Runs `sampler` from the noise of step −1 to a denoised latent. */
export async function sample(
  sampler: SamplerName,
  schedule: DiscreteSchedule,
  predict: NoisePredictor,
  options: SampleOptions,
): Promise<Float32Array> {
  if (sampler === 'ddim') return ddim(schedule, predict, options);
  const sigmas =
    sampler === 'dpmpp_2m' ? schedule.karrasSigmas(options.steps) : schedule.uniformSigmas(options.steps);
  // CompVisDenoiser: x₀ = x − σ·ε(x / √(σ² + 1), t(σ)).
  const denoise = async (x: Float32Array, sigma: number) => {
    const scale = 1 / Math.sqrt(sigma * sigma + 1);
    const eps = await predict(
      x.map((v) => v * scale),
      schedule.sigmaToT(sigma),
    );
    return x.map((v, i) => v - sigma * eps[i]!);
  };
  let x: Float32Array = options.noise(-1).map((v) => v * sigmas[0]!);
  let previous: Float32Array | undefined;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const [sigma, next] = [sigmas[i]!, sigmas[i + 1]!];
    const denoised = await denoise(x, sigma);
    if (sampler === 'euler') {
      x = x.map((v, j) => v + ((v - denoised[j]!) / sigma) * (next - sigma));
    } else if (sampler === 'euler_a') {
      const up = Math.min(next, Math.sqrt((next * next * (sigma * sigma - next * next)) / (sigma * sigma)));
      const down = Math.sqrt(next * next - up * up);
      x = x.map((v, j) => v + ((v - denoised[j]!) / sigma) * (down - sigma));
      if (next > 0) {
        const noise = options.noise(i);
        x = x.map((v, j) => v + noise[j]! * up);
      }
    } else {
      x = dpmpp2mStep(x, denoised, previous, sigmas, i);
      previous = denoised;
    }
  }
  return x;
}

/** One DPM-Solver++(2M) step in t = −log σ: first order at the first and last steps, else second. */
function dpmpp2mStep(
  x: Float32Array,
  denoised: Float32Array,
  previous: Float32Array | undefined,
  sigmas: readonly number[],
  i: number,
): Float32Array {
  const [sigma, next] = [sigmas[i]!, sigmas[i + 1]!];
  if (next === 0) return denoised;
  const h = Math.log(sigma) - Math.log(next);
  const ratio = next / sigma;
  const decay = -Math.expm1(-h);
  if (previous === undefined) return x.map((v, j) => ratio * v + decay * denoised[j]!);
  const r = (Math.log(sigmas[i - 1]!) - Math.log(sigma)) / h;
  const [a, b] = [1 + 1 / (2 * r), 1 / (2 * r)];
  return x.map((v, j) => ratio * v + decay * (a * denoised[j]! - b * previous[j]!));
}

/** diffusers' DDIMScheduler.step with η = 0 over "leading" timesteps. */
async function ddim(
  schedule: DiscreteSchedule,
  predict: NoisePredictor,
  options: SampleOptions,
): Promise<Float32Array> {
  const ac = schedule.alphasCumprod;
  const ratio = Math.floor(ac.length / options.steps);
  const timesteps = Array.from({ length: options.steps }, (_, i) => (options.steps - 1 - i) * ratio + 1);
  let x: Float32Array = options.noise(-1);
  for (const t of timesteps) {
    const eps = await predict(x, t);
    const alpha = ac[t]!;
    const before = t - ratio >= 0 ? ac[t - ratio]! : ac[0]!;
    const [sa, sb] = [Math.sqrt(alpha), Math.sqrt(1 - alpha)];
    const [pa, pb] = [Math.sqrt(before), Math.sqrt(1 - before)];
    x = x.map((v, j) => pa * ((v - sb * eps[j]!) / sa) + pb * eps[j]!);
  }
  return x;
}
