import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkDataset, type DatasetImage } from './check.ts';
import { ImageDataset, type ImageDatasetOptions } from './image-dataset.ts';
import { patternPixel, tempDir, writeImage, writeText } from './test-fixtures.ts';

let images: DatasetImage[];
let root: string;
const base: ImageDatasetOptions = {
  resolution: 64,
  minBucketReso: 32,
  maxBucketReso: 128,
  bucketResoSteps: 16,
  batchSize: 2,
  seed: 1234,
};

beforeAll(async () => {
  root = join(await tempDir(), 'set');
  // 3 square (64x64 bucket), 2 wide (80x48 bucket, resized to 96x48), 1 tall (48x80).
  for (let i = 0; i < 3; i++)
    await writeImage(join(root, `3_sq/s${i}.png`), { width: 64, height: 64, seed: i });
  for (let i = 0; i < 2; i++)
    await writeImage(join(root, `1_wide/w${i}.png`), { width: 192, height: 96, seed: 10 + i });
  await writeImage(join(root, '1_wide/t.png'), { width: 40, height: 80, seed: 20 });
  for (const name of ['s0', 's1', 's2'])
    await writeText(join(root, `3_sq/${name}.txt`), `**caption** ${name}`);
  images = (await checkDataset({ dirs: [root] })).images;
});

describe('ImageDataset buckets and plan', () => {
  it('assigns kohya buckets and counts steps per bucket', () => {
    const dataset = new ImageDataset(images, base);
    expect(dataset.buckets).toEqual([
      { bucket: [48, 80], images: 1, samples: 1 },
      { bucket: [64, 64], images: 3, samples: 9 },
      { bucket: [80, 48], images: 2, samples: 2 },
    ]);
    expect(dataset.stepsPerEpoch).toBe(1 + 5 + 1);
  });

  it('refuses more samples per epoch than MAX_EPOCH_SAMPLES up front, with the number', () => {
    const many = images.map((image) => ({ ...image, repeats: 10_000 }));
    const huge = Array.from({ length: 900 }, () => many).flat();
    expect(() => new ImageDataset(huge, base)).toThrow(
      expect.objectContaining({
        code: 'E_LIMIT_EXCEEDED',
        message: expect.stringMatching(
          /5400 images × their repeats make 54000000 samples per epoch, above MAX_EPOCH_SAMPLES \(50000000\)/,
        ),
      }),
    );
  });

  it('puts every sample in exactly once per epoch, one bucket per batch', () => {
    const dataset = new ImageDataset(images, base);
    const plan = dataset.epochPlan(0);
    expect(plan).toHaveLength(7);
    const counts = new Map<string, number>();
    for (const batch of plan) {
      for (const item of batch.items) {
        const image = images[item]!;
        expect(dataset.buckets.find((b) => b.bucket === batch.bucket)).toBeDefined();
        counts.set(image.path, (counts.get(image.path) ?? 0) + 1);
      }
    }
    for (const image of images) expect(counts.get(image.path)).toBe(image.repeats);
  });

  it('derives the order from (seed, epoch) alone', () => {
    const a = new ImageDataset(images, base);
    const b = new ImageDataset(images, base);
    b.epochPlan(5); // visiting other epochs first changes nothing
    expect(b.epochPlan(2)).toEqual(a.epochPlan(2));
    expect(a.epochPlan(3)).not.toEqual(a.epochPlan(2));
    expect(new ImageDataset(images, { ...base, seed: 99 }).epochPlan(2)).not.toEqual(a.epochPlan(2));
  });

  it.each([
    [{ batchSize: 0 }, 'E_INVALID_OPTIONS'],
    [{ seed: 0.5 }, 'E_INVALID_OPTIONS'],
    [{ resolution: 64, maxBucketReso: 32 }, 'E_INVALID_OPTIONS'],
    [{ concurrency: 0 }, 'E_INVALID_OPTIONS'],
  ])('rejects %j', (patch, code) => {
    expect(() => new ImageDataset(images, { ...base, ...patch })).toThrow(expect.objectContaining({ code }));
  });

  it('refuses an empty image list with EMPTY_DATASET', () => {
    expect(() => new ImageDataset([], base)).toThrow(expect.objectContaining({ code: 'E_EMPTY_DATASET' }));
  });
});

describe('ImageDataset batches', () => {
  it('decodes centred crops exactly and mirrors flipped samples', async () => {
    const dataset = new ImageDataset(images, { ...base, flipAug: true, batchSize: 1 });
    let sawFlip = false;
    let sawPlain = false;
    for await (const batch of dataset.batches(0)) {
      if (batch.bucket[0] !== 64) continue;
      const image = images.find((i) => i.path === batch.paths[0])!;
      const seed = Number(image.path.match(/s(\d)\.png$/)![1]);
      const flip = batch.flipped[0]!;
      if (flip) sawFlip = true;
      else sawPlain = true;
      expect(batch.pixels).toHaveLength(3 * 64 * 64);
      for (const [x, y] of [
        [0, 0],
        [63, 5],
        [17, 40],
      ] as const) {
        const [r] = patternPixel(flip ? 63 - x : x, y, seed);
        expect(batch.pixels[y * 64 + x]).toBeCloseTo(r / 127.5 - 1, 6);
      }
      expect(batch.captions[0]).toBe(`caption s${seed}`); // markup stripped for the tokenizer
    }
    expect(sawFlip && sawPlain).toBe(true);
  });

  it('gives the captions every batch trains with when they are not augmented, and none when they are', async () => {
    const dataset = new ImageDataset(images, { ...base, batchSize: 1 });
    const fixed = dataset.fixedCaptions()!;
    expect(fixed).toHaveLength(images.length);
    for (let step = 0; step < dataset.stepsPerEpoch; step++) {
      for (const epoch of [0, 3]) {
        const batch = await dataset.loadBatch(epoch, step);
        const at = images.findIndex((i) => i.path === batch.paths[0]);
        expect(batch.captions[0]).toBe(fixed[at]);
      }
    }
    expect(fixed).toContain('caption s1');
    const augmented = { shuffle: true, keepTokens: 0, tagDropout: 0, captionDropout: 0 };
    expect(new ImageDataset(images, { ...base, caption: augmented }).fixedCaptions()).toBeUndefined();
  });

  it('resumes at any step with identical batches, including random crops', async () => {
    const dataset = new ImageDataset(images, { ...base, randomCrop: true, flipAug: true });
    const full = [];
    for await (const batch of dataset.batches(1)) full.push(batch);
    expect(full).toHaveLength(dataset.stepsPerEpoch);
    const fresh = new ImageDataset(images, { ...base, randomCrop: true, flipAug: true });
    const resumed = [];
    for await (const batch of fresh.batches(1, 4)) resumed.push(batch);
    expect(resumed).toEqual(full.slice(4));
    expect(resumed[0]!.step).toBe(4);
  });

  it.each([1, 3, 16])(
    'prefetching with %i decodes in flight yields what loadBatch gives, in order',
    async (concurrency) => {
      const options = { ...base, batchSize: 1, randomCrop: true, flipAug: true, concurrency };
      const streamed = [];
      for await (const batch of new ImageDataset(images, options).batches(2, 1)) streamed.push(batch);
      const single = new ImageDataset(images, options);
      const expected = [];
      for (let step = 1; step < single.stepsPerEpoch; step++) expected.push(await single.loadBatch(2, step));
      expect(streamed).toEqual(expected);
    },
  );

  it('random crop picks different windows across epochs', async () => {
    const dataset = new ImageDataset(images, { ...base, randomCrop: true, batchSize: 1 });
    const wide = async (epoch: number) => {
      const found = [];
      for await (const batch of dataset.batches(epoch)) if (batch.bucket[0] === 80) found.push(batch.pixels);
      return found;
    };
    const crops = await Promise.all([0, 1, 2, 3].map(wide));
    const distinct = new Set(crops.flat().map((pixels) => pixels.slice(0, 8).join()));
    expect(distinct.size).toBeGreaterThan(2);
  });

  it('serves later epochs from the cache without decoding the source', async () => {
    const cacheDir = join(await tempDir(), 'cache');
    const own = join(await tempDir(), 'own');
    await writeImage(join(own, 'a.png'), { width: 64, height: 64, seed: 3 });
    const ownImages = (await checkDataset({ dirs: [own] })).images;
    const dataset = new ImageDataset(ownImages, { ...base, cacheDir });
    const first = await dataset.loadBatch(0, 0);
    expect((await readdir(cacheDir, { recursive: true })).filter((f) => f.endsWith('.rgb'))).toHaveLength(1);
    await rm(join(own, 'a.png'));
    const again = await new ImageDataset(ownImages, { ...base, cacheDir }).loadBatch(0, 0);
    expect(again.pixels).toEqual(first.pixels);
  });

  it.each([
    [0, 99],
    [0, -1],
    [-1, 0],
  ])('refuses epoch %i step %i with OUT_OF_RANGE', async (epoch, step) => {
    const dataset = new ImageDataset(images, base);
    await expect(dataset.loadBatch(epoch, step)).rejects.toMatchObject({ code: 'E_OUT_OF_RANGE' });
  });
});
