/**
 * The samplers against tools/golden/sd_samplers_reference.py: k-diffusion's and diffusers'
 * formulas in float32 torch, driven by the same synthetic noise predictor and the same noise.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { relativeError } from '../../testing.ts';
import { scaledLinearAlphasCumprod } from './loss.ts';
import { DiscreteSchedule, epsilonFromV, SAMPLERS, sample } from './samplers.ts';

const golden = JSON.parse(readFileSync(new URL('./__fixtures__/samplers.json', import.meta.url), 'utf8')) as {
  steps: number;
  noise: number[][];
  sigmas: { uniform: number[]; karras: number[] };
  sigma_to_t: [number, number][];
  latents: Record<string, number[]>;
};
const schedule = new DiscreteSchedule(scaledLinearAlphasCumprod());

describe('SD samplers', () => {
  it("σ schedules and σ → t equal k-diffusion's", () => {
    expect(relativeError(schedule.uniformSigmas(golden.steps), golden.sigmas.uniform)).toBeLessThan(1e-5);
    expect(relativeError(schedule.karrasSigmas(golden.steps), golden.sigmas.karras)).toBeLessThan(1e-5);
    for (const [sigma, t] of golden.sigma_to_t) expect(schedule.sigmaToT(sigma)).toBeCloseTo(t, 2);
  });

  it.each(SAMPLERS)('%s from the same noise ends at the reference latent (1e-4)', async (sampler) => {
    const predict = async (input: Float32Array, t: number) =>
      input.map((v, j) => Math.tanh(0.8 * v + 0.002 * t - 0.5 + 0.01 * j));
    const noise = (step: number) => Float32Array.from(golden.noise.at(step)!);
    const latent = await sample(sampler, schedule, predict, { steps: golden.steps, noise });
    expect(relativeError(latent, golden.latents[sampler]!)).toBeLessThan(1e-4);
  });

  it("a v-prediction turned into ε denoises as k-diffusion's CompVisVDenoiser", () => {
    // CompVisVDenoiser (σ_data 1): x₀ = x·c_skip + v·c_out with c_skip = 1/(σ² + 1),
    // c_out = −σ/√(σ² + 1), v predicted at x·c_in, c_in = 1/√(σ² + 1); our samplers take x − σ·ε.
    for (const sigma of [0.03, 1, 14.6]) {
      const x = Float32Array.from({ length: 6 }, (_, i) => Math.sin(i + sigma) * (1 + sigma));
      const v = Float32Array.from({ length: 6 }, (_, i) => Math.cos(2 * i - sigma));
      const cIn = 1 / Math.sqrt(sigma * sigma + 1);
      const eps = epsilonFromV(
        v,
        x.map((value) => value * cIn),
        sigma,
      );
      const denoised = x.map((value, i) => value - sigma * eps[i]!);
      const reference = x.map((value, i) => value / (sigma * sigma + 1) - sigma * v[i]! * cIn);
      expect(relativeError(denoised, reference)).toBeLessThan(1e-6);
    }
  });
});
