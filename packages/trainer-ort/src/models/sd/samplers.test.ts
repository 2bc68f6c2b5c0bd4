/**
 * The samplers against tools/golden/sd_samplers_reference.py: k-diffusion's and diffusers'
 * formulas in float32 torch, driven by the same synthetic noise predictor and the same noise.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { relativeError } from '../../testing.ts';
import { scaledLinearAlphasCumprod } from './loss.ts';
import { DiscreteSchedule, SAMPLERS, sample } from './samplers.ts';

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
});
