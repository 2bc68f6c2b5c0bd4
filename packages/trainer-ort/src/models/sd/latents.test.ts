import { mkdir, mkdtemp, open as openFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type BucketOptions,
  checkDataset,
  type DatasetImage,
  type ImageBatch,
  ImageDataset,
} from '@lora/dataset';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSdCheckpoint } from './checkpoint.ts';
import { LatentCache, type VaeEncoder, vaeFingerprint } from './latents.ts';
import { singleFileConfig } from './model-files.ts';
import { encodePng } from './png.ts';
import { writeTinySdModel } from './tiny.ts';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sd-latents-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const image = { path: '/d/a.png', width: 96, height: 64, contentHash: 'abc', repeats: 1 } as DatasetImage;
const buckets = { resolution: 64, enableBucket: true, minBucketReso: 64, maxBucketReso: 128 } as const;
const cache = (vae = 'vae-1', options: BucketOptions = buckets) =>
  // fileOf never touches the encoder.
  new LatentCache(join(root, 'cache'), [image], {} as VaeEncoder, vae, options);

describe('LatentCache keys', () => {
  it('is stable for the same image, preprocessing and VAE', () => {
    expect(cache().fileOf(image)).toBe(cache().fileOf(image));
    expect(cache().fileOf(image)).toMatch(/cache\/[0-9a-f]{64}\.f32$/);
  });

  it.each([
    ['the image content', () => cache().fileOf({ ...image, contentHash: 'abd' })],
    ['the flip', () => cache().fileOf(image, true)],
    ['the VAE', () => cache('vae-2').fileOf(image)],
    ['the bucket settings', () => cache('vae-1', { resolution: 128, enableBucket: false }).fileOf(image)],
  ])('changes with %s', (_, other) => {
    expect(other()).not.toBe(cache().fileOf(image));
  });
});

describe('vaeFingerprint', () => {
  it('follows the VAE encoder bytes only', async () => {
    const { checkpoint: path } = await writeTinySdModel(join(root, 'model'));
    const fingerprint = async () => {
      const opened = await openSdCheckpoint(path, await singleFileConfig(path));
      try {
        return { hash: await vaeFingerprint(opened.checkpoint), checkpoint: opened.checkpoint };
      } finally {
        await opened.close();
      }
    };
    const poke = async (start: number) => {
      const handle = await openFile(path, 'r+');
      await handle.write(Uint8Array.of(0x7f), 0, 1, start);
      await handle.close();
    };
    const before = await fingerprint();
    const [unet] = before.checkpoint.storedRanges('unet');
    await poke(unet!.start);
    expect((await fingerprint()).hash).toBe(before.hash);
    const encoder = before.checkpoint.storedRanges('vae', (k) => k.startsWith('encoder.conv_in'))[0]!;
    await poke(encoder.start);
    expect((await fingerprint()).hash).not.toBe(before.hash);
  });
});

describe('LatentCache with flipAug', () => {
  it('caches the mirror image too, and serves each slot the latents of the pixels the dataset made', async () => {
    // A 96x64 image whose pixels all differ, centre-cropped to the 64x64 bucket.
    const folder = join(root, 'flip-images');
    await mkdir(folder, { recursive: true });
    const rgb = Uint8Array.from({ length: 96 * 64 * 3 }, (_, i) => (i * 37) % 251);
    await writeFile(join(folder, 'a.png'), encodePng(96, 64, rgb));
    const { images } = await checkDataset({ dirs: [folder], resolution: 64 });
    // An identity "VAE": latents are the pixels, so the cache must hold exactly the training pixels.
    const identity = {
      latentShape: ([width, height]: readonly [number, number]) => [3, height, width],
      encode: async (pixels: Float32Array) => pixels.slice(),
      dispose: async () => {},
    } as unknown as VaeEncoder;
    const settings = { ...buckets, flipAug: true };
    const flipCache = () => new LatentCache(join(root, 'flip-cache'), images, identity, 'vae', settings);
    expect(await flipCache().fill()).toEqual({ encoded: 2, reused: 0 });
    expect(await flipCache().fill()).toEqual({ encoded: 0, reused: 2 });

    const dataset = new ImageDataset(images, { ...settings, batchSize: 1, seed: 3 });
    const seen = new Set<boolean>();
    for (let epoch = 0; seen.size < 2 && epoch < 20; epoch++) {
      const batch: ImageBatch = await dataset.loadBatch(epoch, 0);
      seen.add(batch.flipped[0]!);
      expect(await flipCache().latents(batch)).toEqual(batch.pixels);
    }
    expect(seen).toEqual(new Set([false, true]));
  });
});
