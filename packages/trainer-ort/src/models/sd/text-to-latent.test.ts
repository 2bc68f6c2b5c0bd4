/**
 * Text to latents on the tiny SD fixture against tools/golden/sd_sample_reference.py (the PyTorch
 * UNet and CLIP of sd_reference.py in float64, the samplers of sd_samplers_reference.py): the same
 * prompt ids, guidance scale and noise give the reference latents for each sampler.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relativeError } from '../../testing.ts';
import { type OpenedSdCheckpoint, openSdCheckpoint } from './checkpoint.ts';
import { config, FIXTURES } from './golden-fixture.ts';
import { SAMPLERS } from './samplers.ts';
import { SdTextToLatent } from './text-to-latent.ts';

const golden = JSON.parse(readFileSync(join(FIXTURES, 'sample.json'), 'utf8')) as {
  steps: number;
  cfg_scale: number;
  cond_ids: number[];
  uncond_ids: number[];
  latent_shape: [number, number, number];
  noise: number[][];
  latents: Record<string, number[]>;
};

let opened: OpenedSdCheckpoint;
let model: SdTextToLatent;
let states: Float32Array;
beforeAll(async () => {
  opened = await openSdCheckpoint(join(FIXTURES, 'model.safetensors'), config);
  const [, height, width] = golden.latent_shape;
  model = await SdTextToLatent.open(opened.checkpoint, [height, width]);
  ({ states } = await model.textStates([golden.uncond_ids, golden.cond_ids]));
});
afterAll(async () => {
  await model?.dispose();
  await opened?.close();
});

describe('SdTextToLatent on the tiny fixture', () => {
  it.each(SAMPLERS)('%s with guidance 7.5 ends at the PyTorch latents (1e-4)', async (sampler) => {
    const half = states.length / 2;
    const latents = await model.latents(
      { states: states.subarray(half) },
      { states: states.subarray(0, half) },
      {
        sampler,
        steps: golden.steps,
        cfgScale: golden.cfg_scale,
        noise: (step) => Float32Array.from(golden.noise.at(step)!),
      },
    );
    expect(relativeError(latents, golden.latents[sampler]!)).toBeLessThan(1e-4);
  });

  it('refuses a negative prompt whose states are not as long as the prompt', async () => {
    const half = states.length / 2;
    const request = {
      sampler: 'euler',
      steps: 1,
      cfgScale: 1,
      noise: () => new Float32Array(4 * 64),
    } as const;
    await expect(
      model.latents({ states: states.subarray(half) }, { states: states.subarray(0, half - 16) }, request),
    ).rejects.toThrow(
      /the negative prompt's text states hold \d+ values, the prompt's \d+; pad both to one number of chunks/,
    );
  });
});
