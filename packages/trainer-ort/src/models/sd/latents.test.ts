import { mkdtemp, open as openFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BucketOptions, DatasetImage } from '@lora/dataset';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSdCheckpoint } from './checkpoint.ts';
import { LatentCache, type VaeEncoder, vaeFingerprint } from './latents.ts';
import { singleFileConfig } from './model-files.ts';
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
