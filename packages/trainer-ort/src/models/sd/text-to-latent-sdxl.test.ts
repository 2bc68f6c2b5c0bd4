/**
 * SDXL text to image on the tiny fixture against tools/golden/sdxl_sample_reference.py (sgm's
 * conditioner, UNet and VAE of sdxl_reference.py in float64, A1111's per-chunk weighting, the
 * samplers of sd_samplers_reference.py): the conditions of given chunks (each encoder's weighted
 * penultimate states side by side, the first chunk's pooled output, the negative padded with the
 * empty chunk), every sampler's latents with guidance and `label_emb` size ids from the same noise,
 * and the VAE decoder's image with SDXL's scaling factor.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relativeError } from '../../testing.ts';
import { type OpenedSdCheckpoint, openSdCheckpoint } from './checkpoint.ts';
import { a1111TimeIds, chunkConditions, withSecondEncoderRows } from './conditioning.ts';
import { FIXTURES, readGolden } from './golden-fixture.ts';
import { decodeLatents } from './sample-image.ts';
import { SAMPLERS } from './samplers.ts';
import { SdTextToLatent, type TextCondition } from './text-to-latent.ts';

interface Chunk {
  ids: number[];
  weights: number[];
}

const golden = JSON.parse(readFileSync(join(FIXTURES, 'sdxl-sample.json'), 'utf8')) as {
  steps: number;
  cfg_scale: number;
  time_ids: number[];
  latent_shape: [number, number, number];
  cond_chunks: Chunk[];
  uncond_chunks: Chunk[];
  cond_states: number[];
  cond_pooled: number[];
  uncond_states: number[];
  uncond_pooled: number[];
  noise: number[][];
  latents: Record<string, number[]>;
  decoded_euler: number[];
};
// Heads of 4 channels (SDXL: 64) cannot be read off shapes: the sizes come from the reference.
const { config } = await readGolden('sdxl-golden.json');
const [BOS, EOS] = [48, 49];
const chunked = (chunks: readonly Chunk[]) =>
  withSecondEncoderRows({ ids: chunks.map((c) => c.ids), weights: chunks.map((c) => c.weights) }, EOS, 0);

let opened: OpenedSdCheckpoint;
let model: SdTextToLatent;
let cond: TextCondition;
let uncond: TextCondition;
let folder: string;
beforeAll(async () => {
  opened = await openSdCheckpoint(join(FIXTURES, 'sdxl-model.safetensors'), config);
  const [, height, width] = golden.latent_shape;
  model = await SdTextToLatent.open(opened.checkpoint, [height, width]);
  // The negative prompt's one chunk, padded here with the empty chunk (the reference's second).
  const empty = golden.uncond_chunks[1]!;
  expect(empty.ids).toEqual([BOS, ...Array(7).fill(EOS)]);
  [cond, uncond] = (await chunkConditions(
    model,
    [chunked(golden.cond_chunks), chunked(golden.uncond_chunks.slice(0, 1))],
    chunked([empty]),
  )) as [TextCondition, TextCondition];
  folder = await mkdtemp(join(tmpdir(), 'sdxl-decode-'));
});
afterAll(async () => {
  await model?.dispose();
  await opened?.close();
  await rm(folder, { recursive: true, force: true });
});

describe('SDXL sampling on the tiny fixture', () => {
  it("conditions as A1111: both encoders' weighted states side by side, the first chunk's pooled output (1e-5)", () => {
    expect(cond.states).toHaveLength(golden.cond_states.length);
    expect(relativeError(cond.states, golden.cond_states)).toBeLessThan(1e-5);
    expect(relativeError(uncond.states, golden.uncond_states)).toBeLessThan(1e-5);
    expect(relativeError(cond.pooled!, golden.cond_pooled)).toBeLessThan(1e-5);
    expect(relativeError(uncond.pooled!, golden.uncond_pooled)).toBeLessThan(1e-5);
  });

  it("takes A1111's size ids for the image (16 high, 24 wide): original = target = (h, w), crop (0, 0)", () => {
    expect(a1111TimeIds(24, 16)).toEqual(golden.time_ids);
  });

  it.each(SAMPLERS)('%s with guidance and size ids ends at the PyTorch latents (1e-4)', async (sampler) => {
    const latents = await model.latents(cond, uncond, {
      sampler,
      steps: golden.steps,
      cfgScale: golden.cfg_scale,
      timeIds: golden.time_ids,
      noise: (step) => Float32Array.from(golden.noise.at(step)!),
    });
    expect(relativeError(latents, golden.latents[sampler]!)).toBeLessThan(1e-4);
  });

  it("decodes with SDXL's VAE scaling factor 0.13025 to the PyTorch image (1e-4)", async () => {
    expect(opened.checkpoint.config.vae.scalingFactor).toBe(0.13025);
    const [, height, width] = golden.latent_shape;
    const image = await decodeLatents(
      opened.checkpoint,
      Float32Array.from(golden.latents['euler']!),
      [height, width],
      folder,
    );
    expect(relativeError(image, golden.decoded_euler)).toBeLessThan(1e-4);
  });

  it('refuses an SDXL condition without its pooled embedding or size ids, and clip skip 2', async () => {
    const request = {
      sampler: 'euler',
      steps: 1,
      cfgScale: 1,
      noise: () => new Float32Array(4 * 96),
    } as const;
    await expect(model.latents(cond, uncond, request)).rejects.toThrow(
      /an SDXL UNet needs each prompt's pooled text embedding \(20 values\) and 6 size ids/,
    );
    await expect(
      model.latents({ states: cond.states }, uncond, { ...request, timeIds: golden.time_ids }),
    ).rejects.toThrow(/pooled text embedding/);
    await expect(SdTextToLatent.open(opened.checkpoint, [8, 8], { clipSkip: 2 })).rejects.toMatchObject({
      code: 'E_MODEL_CONFIG',
      message: expect.stringContaining('SDXL conditions on the penultimate layer of both text encoders'),
    });
    await expect(model.textStates([golden.cond_chunks[0]!.ids])).rejects.toThrow(
      /SDXL's second text encoder needs its own token id rows/,
    );
  });
});
