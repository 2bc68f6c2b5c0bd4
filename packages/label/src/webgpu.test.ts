/**
 * The labellers through their public loaders with `device: 'webgpu'` against `device: 'cpu'`:
 * the tiny WD14 tagger's confidence for every tag, and the tiny CLIP ranker's score for every
 * phrase, on the same images.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeOnWebGpu, HOOK_TIMEOUT, relativeError, report } from '@lora/trainer-ort/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ClipRanker, type ClipResult } from './clip.ts';
import { isLabelFailure } from './common.ts';
import { writeBmp } from './test-images.ts';
import { writeTinyClip, writeTinyTagger } from './tiny-models.ts';
import { type TaggerResult, Wd14Tagger } from './wd14.ts';

let dir: string;
let images: string[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webgpu-labels-'));
  images = [
    await writeBmp(join(dir, 'red.bmp'), [255, 0, 0]),
    await writeBmp(join(dir, 'cyan.bmp'), [0, 255, 255], 12, 6),
    await writeBmp(join(dir, 'grey.bmp'), [90, 120, 200], 7, 9),
  ];
}, HOOK_TIMEOUT);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
}, HOOK_TIMEOUT);

/** Every tag's confidence, image by image, in a fixed order. */
function confidences(results: readonly TaggerResult[]): number[] {
  return results.flatMap((result) => {
    if (isLabelFailure(result)) throw new Error(result.error);
    return [...result.tags, ...(result.rating ? [result.rating] : [])]
      .toSorted((a, b) => a.tag.localeCompare(b.tag))
      .map((t) => t.confidence);
  });
}

/** Every phrase's score, image by image and category by category, in a fixed order. */
function scores(results: readonly ClipResult[]): number[] {
  return results.flatMap((result) => {
    if (isLabelFailure(result)) throw new Error(result.error);
    return Object.keys(result.categories)
      .toSorted()
      .flatMap((category) =>
        result.categories[category]!.toSorted((a, b) => a.phrase.localeCompare(b.phrase)).map((p) => p.score),
      );
  });
}

describeOnWebGpu('labellers on WebGPU vs the CPU provider', () => {
  it('WD14 tagger: every tag confidence within 2e-5', async () => {
    const { modelPath, tagsPath } = await writeTinyTagger(join(dir, 'tagger'));
    const tag = async (device: 'cpu' | 'webgpu') => {
      // Thresholds 0: every tag comes back with its confidence.
      const tagger = await Wd14Tagger.load(modelPath, tagsPath, {
        device,
        generalThreshold: 0,
        characterThreshold: 0,
        batchSize: 2,
      });
      try {
        return confidences(await tagger.tag(images));
      } finally {
        await tagger.dispose();
      }
    };
    const cpu = await tag('cpu');
    const webgpu = await tag('webgpu');
    // 9 general and character tags, and the most likely of the 4 ratings.
    expect(cpu).toHaveLength(images.length * 10);
    const error = relativeError(webgpu, cpu);
    report('WD14 tagger confidences', error, `${cpu.length} scores`);
    // A mean over 448×448 pixels, then a sigmoid: fp32 reduction order only (measured 1.5e-6);
    // pixels fed in the wrong channel order or scale move a score by O(0.1).
    expect(error).toBeLessThan(2e-5);
  });

  it('CLIP ranker: every phrase score within 1e-5', async () => {
    const folder = await writeTinyClip(join(dir, 'clip'));
    const vocabulary = {
      lighting: ['warm light', 'cool light', 'bright daylight', 'dim lighting'],
      colour: ['red', 'green', 'blue', 'golden moonlight'],
    };
    const rank = async (device: 'cpu' | 'webgpu') => {
      const ranker = await ClipRanker.load(folder, { device, batchSize: 2 });
      try {
        return scores(await ranker.rank(images, vocabulary, { topK: 4 }));
      } finally {
        await ranker.dispose();
      }
    };
    const cpu = await rank('cpu');
    const webgpu = await rank('webgpu');
    expect(cpu).toHaveLength(images.length * 8);
    const error = relativeError(webgpu, cpu);
    report('CLIP ranker scores', error, `${cpu.length} scores`);
    // Cosine similarities of mean-pooled embeddings: fp32 reduction order only (measured 1.9e-7).
    expect(error).toBeLessThan(1e-5);
  });
});
