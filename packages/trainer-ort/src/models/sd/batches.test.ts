/**
 * The SD batch source: a micro-batch is a pure function of (seed, epoch, index) — captions
 * augmented per epoch, timesteps and noise — so resuming anywhere reproduces it; and the noise
 * and min-SNR arithmetic.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkDataset, type ImageBatch, ImageDataset } from '@lora/dataset';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SdBatchSource } from './batches.ts';
import type { LatentSource } from './latents.ts';
import { scaledLinearAlphasCumprod } from './loss.ts';
import { ClipTokenizer } from './model-files.ts';
import { drawNoise, minSnrWeights, NUM_TRAIN_TIMESTEPS } from './noise.ts';
import { writeShapeImages, writeTinySdModel } from './tiny.ts';

let root: string;
let source: (seed: number, noiseOffset?: number) => SdBatchSource;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sd-batches-'));
  const { checkpoint } = await writeTinySdModel(join(root, 'model'));
  await writeShapeImages(join(root, 'data'), { count: 8 });
  const { images } = await checkDataset({ dirs: [join(root, 'data')] });
  const tokenizer = await ClipTokenizer.forModel(checkpoint, 77);
  // Latents that tell the images apart without a VAE: the first pixel of each.
  const latents: LatentSource = {
    latents: async (batch: ImageBatch) =>
      Float32Array.from(
        { length: batch.paths.length * 4 * 64 },
        (_, i) => batch.pixels[Math.floor(i / 256) * 3 * 64 * 64]!,
      ),
    dispose: async () => {},
  };
  source = (seed, noiseOffset = 0) =>
    new SdBatchSource(
      new ImageDataset(images, {
        resolution: 64,
        enableBucket: false,
        batchSize: 2,
        seed,
        caption: { shuffle: true, keepTokens: 1, tagDropout: 0.3 },
      }),
      { latents, tokenizer, latentShape: () => [4, 8, 8] },
      { seed, noiseOffset },
    );
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('SdBatchSource', () => {
  it('gives the same micro-batch for the same (epoch, index), from a fresh source too', async () => {
    const a = await source(7).batch(2, 3);
    const b = await source(7).batch(2, 3);
    expect(b).toEqual(a);
    expect(a.size).toBe(2);
    expect(a.inputIds).toHaveLength(2 * 77);
  });

  it('augments captions per epoch: markup stripped, the core tag first, the rest shuffled', async () => {
    const src = source(7);
    const epochs = await Promise.all([0, 1, 2, 3].map(async (e) => (await src.batch(e, 0)).captions));
    for (const captions of epochs) {
      for (const caption of captions) {
        expect(caption).not.toMatch(/\*/);
        expect(caption.startsWith('flat shape style')).toBe(true);
      }
    }
    expect(new Set(epochs.map((c) => c.join('|'))).size).toBeGreaterThan(1);
  });

  it.each([
    ['another epoch', 7, 1, 0],
    ['another index', 7, 0, 1],
    ['another seed', 8, 0, 0],
  ])('draws other timesteps and noise for %s', async (_, seed, epoch, index) => {
    const [base, other] = await Promise.all([source(7).batch(0, 0), source(seed).batch(epoch, index)]);
    expect(other.noise).not.toEqual(base.noise);
    expect(other.timesteps).not.toEqual(base.timesteps);
  });

  it('counts images for throughput', async () => {
    const src = source(7);
    expect(src.count(await src.batch(0, 0))).toEqual({ examples: 2, images: 2 });
    expect(src.microBatchesPerEpoch).toBe(4);
  });
});

describe('drawNoise', () => {
  it('draws timesteps in [0, 1000) and standard normal noise', () => {
    const { timesteps, noise } = drawNoise({ seed: 1, noiseOffset: 0 }, 0, 0, [64, 4, 8, 8]);
    expect(timesteps.every((t) => t >= 0n && t < BigInt(NUM_TRAIN_TIMESTEPS))).toBe(true);
    expect(new Set(timesteps).size).toBeGreaterThan(50);
    const mean = noise.reduce((a, b) => a + b, 0) / noise.length;
    const variance = noise.reduce((a, b) => a + (b - mean) ** 2, 0) / noise.length;
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(variance - 1)).toBeLessThan(0.05);
  });

  it('adds one offset per example and channel with noise_offset', () => {
    const shape = [2, 4, 8, 8] as const;
    const plain = drawNoise({ seed: 1, noiseOffset: 0 }, 3, 4, shape).noise;
    const offset = drawNoise({ seed: 1, noiseOffset: 0.1 }, 3, 4, shape).noise;
    for (let channel = 0; channel < 8; channel++) {
      const shifts = Array.from(
        { length: 64 },
        (_, i) => offset[channel * 64 + i]! - plain[channel * 64 + i]!,
      );
      expect(Math.max(...shifts) - Math.min(...shifts)).toBeLessThan(1e-5);
      expect(Math.abs(shifts[0]!)).toBeGreaterThan(0);
    }
  });
});

describe('minSnrWeights', () => {
  const alphas = scaledLinearAlphasCumprod();
  const snr = (t: number) => alphas[t]! / (1 - alphas[t]!);
  it.each([
    ['epsilon, low noise (SNR > γ)', 10, 'epsilon', 5, 5 / snr(10)],
    ['epsilon, high noise (SNR < γ)', 900, 'epsilon', 5, 1],
    ['v, low noise', 10, 'v_prediction', 5, 5 / (snr(10) + 1)],
    ['v, high noise', 900, 'v_prediction', 5, snr(900) / (snr(900) + 1)],
    ['no gamma', 10, 'epsilon', undefined, 1],
  ] as const)('%s', (_, t, prediction, gamma, expected) => {
    const [weight] = minSnrWeights(BigInt64Array.of(BigInt(t)), alphas, prediction, gamma);
    expect(weight).toBeCloseTo(expected, 6);
  });
});
