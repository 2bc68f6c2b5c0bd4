/**
 * What the diffusion loss draws per micro-batch: a timestep per example, uniform over the 1000
 * training steps, Gaussian noise the latents' shape (plus kohya's per-channel `noise_offset`), and
 * the min-SNR loss weights of those timesteps. Every draw comes from
 * `createRng(seed, NOISE_STREAM, epoch, index)`, so a micro-batch's noise depends on where it
 * is in the run and on nothing before it: a resumed run draws exactly what an uninterrupted one
 * would have.
 */
import type { PredictionType } from '@lora/config';
import { createRng } from '@lora/dataset';

/** DDPM training steps of SD 1.x (`num_train_timesteps`). */
export const NUM_TRAIN_TIMESTEPS = 1000;

/** Stream key of the diffusion noise: `createRng(seed, NOISE_STREAM, epoch, index)`. */
const NOISE_STREAM = 0x4e6f6973; // 'Nois'

export interface NoiseDraw {
  readonly timesteps: BigInt64Array;
  /** `[batch, channels, height, width]`, row-major. */
  readonly noise: Float32Array;
}

export interface NoiseOptions {
  seed: number;
  /** kohya `noise_offset`: adds `offset · N(0, 1)` per example and channel; 0 = none. */
  noiseOffset: number;
}

/** Timesteps and noise of micro-batch `index` of `epoch` for latents `[batch, c, h, w]`. */
export function drawNoise(
  options: NoiseOptions,
  epoch: number,
  index: number,
  shape: readonly [batch: number, channels: number, height: number, width: number],
): NoiseDraw {
  const [batch, channels, height, width] = shape;
  const rng = createRng(options.seed, NOISE_STREAM, epoch, index);
  const timesteps = BigInt64Array.from({ length: batch }, () => BigInt(rng.nextInt(NUM_TRAIN_TIMESTEPS)));
  const plane = height * width;
  const noise = new Float32Array(batch * channels * plane);
  for (let i = 0; i < noise.length; i++) noise[i] = rng.normal();
  if (options.noiseOffset > 0) {
    for (let c = 0; c < batch * channels; c++) {
      const offset = options.noiseOffset * rng.normal();
      for (let i = c * plane; i < (c + 1) * plane; i++) noise[i]! += offset;
    }
  }
  return { timesteps, noise };
}

/**
 * Timesteps every validation image is scored at: the middles of five equal parts of the schedule,
 * so the validation loss weighs noise levels as training's uniform draw does, with the same
 * values at every evaluation.
 */
export const VALIDATION_TIMESTEPS = [100, 300, 500, 700, 900] as const;

/** Stream key of the validation noise: `createRng(seed, VALIDATION_NOISE_STREAM, batch, timestep)`. */
const VALIDATION_NOISE_STREAM = 0x56616c4e; // 'ValN'

/**
 * Noise for validation batch `index` scored at `timestep`: fixed by (seed, index, timestep), so
 * every evaluation sees the same noise and differs only by the LoRA.
 */
export function validationNoise(
  seed: number,
  index: number,
  timestep: number,
  shape: readonly [batch: number, channels: number, height: number, width: number],
): NoiseDraw {
  const rng = createRng(seed, VALIDATION_NOISE_STREAM, index, timestep);
  const noise = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < noise.length; i++) noise[i] = rng.normal();
  return { timesteps: new BigInt64Array(shape[0]).fill(BigInt(timestep)), noise };
}

/**
 * Per-example loss weights: 1 without `gamma`; with it, min-SNR-γ (Hang et al. 2023) as kohya's
 * `apply_snr_weight`: min(SNR_t, γ) / SNR_t for ε-prediction, min(SNR_t, γ) / (SNR_t + 1) for v,
 * where SNR_t = ᾱ_t / (1 − ᾱ_t).
 */
export function minSnrWeights(
  timesteps: BigInt64Array,
  alphasCumprod: Float32Array,
  prediction: PredictionType,
  gamma: number | undefined,
): Float32Array {
  return Float32Array.from(timesteps, (t) => {
    if (gamma === undefined) return 1;
    const alphaBar = alphasCumprod[Number(t)]!;
    const snr = alphaBar / (1 - alphaBar);
    return Math.min(snr, gamma) / (prediction === 'epsilon' ? snr : snr + 1);
  });
}
