import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { ImageCache } from './image-cache.ts';
import { decodeResized, makeThumbnail, probeImage, toChw } from './image-io.ts';
import {
  bmpBytes,
  imageBytes,
  patternPixel,
  patternRgb,
  tempDir,
  writeImage,
  writeText,
} from './test-fixtures.ts';

describe('probeImage', () => {
  it.each([
    ['png', { width: 40, height: 20, format: 'png' as const }, 40, 20],
    ['jpeg', { width: 40, height: 20, format: 'jpeg' as const }, 40, 20],
    ['webp', { width: 40, height: 20, format: 'webp' as const }, 40, 20],
    ['gif', { width: 40, height: 20, format: 'gif' as const }, 40, 20],
    ['tiff', { width: 40, height: 20, format: 'tiff' as const }, 40, 20],
    ['heif', { width: 40, height: 20, format: 'avif' as const }, 40, 20],
  ])('reads %s', async (format, spec, width, height) => {
    const probe = await probeImage(`x.${format}`, await imageBytes(spec));
    expect(probe).toMatchObject({ format, width, height, orientation: 1 });
    expect(probe.contentHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('reports EXIF orientation and the upright size', async () => {
    const bytes = await imageBytes({ width: 40, height: 20, format: 'jpeg', orientation: 6 });
    expect(await probeImage('r.jpg', bytes)).toMatchObject({ width: 20, height: 40, orientation: 6 });
  });

  it('reads BMP through the built-in decoder', async () => {
    expect(await probeImage('a.bmp', bmpBytes(9, 4))).toMatchObject({ format: 'bmp', width: 9, height: 4 });
  });

  it.each([
    ['garbage', async () => Buffer.from('this is not an image, just text')],
    ['a truncated PNG', async () => (await imageBytes({ width: 64, height: 64 })).subarray(0, 300)],
    [
      'a truncated JPEG',
      async () => {
        const jpeg = await imageBytes({ width: 256, height: 256, format: 'jpeg' });
        return jpeg.subarray(0, jpeg.length >> 1);
      },
    ],
  ])('fails on %s with IMAGE_DECODE naming the file', async (_name, make) => {
    await expect(probeImage('/data/bad.png', await make())).rejects.toMatchObject({
      code: 'E_IMAGE_DECODE',
      path: '/data/bad.png',
      message: expect.stringContaining('/data/bad.png'),
    });
  });
});

describe('makeThumbnail', () => {
  it('shrinks to the longer side, upright, as WebP, and never enlarges', async () => {
    const dir = await tempDir();
    const rotated = await writeImage(join(dir, 'r.jpg'), {
      width: 400,
      height: 200,
      format: 'jpeg',
      orientation: 6,
    });
    expect(await sharp(await makeThumbnail(rotated, 100)).metadata()).toMatchObject({
      format: 'webp',
      width: 50,
      height: 100,
    });
    const bmp = await writeText(join(dir, 'b.bmp'), bmpBytes(9, 4));
    expect(await sharp(await makeThumbnail(bmp, 100)).metadata()).toMatchObject({ width: 9, height: 4 });
  });

  it('says which file it cannot decode', async () => {
    const broken = await writeText(join(await tempDir(), 'x.png'), 'not an image');
    await expect(makeThumbnail(broken, 100)).rejects.toMatchObject({
      code: 'E_IMAGE_DECODE',
      message: expect.stringContaining('x.png: cannot decode'),
    });
  });
});

describe('decodeResized + toChw', () => {
  it('keeps pixels exact at the original size and maps 0..255 to [-1, 1]', async () => {
    const rgb = await decodeResized('p.png', await imageBytes({ width: 6, height: 4, seed: 3 }), [6, 4]);
    expect(Buffer.from(rgb)).toEqual(patternRgb(6, 4, 3));
    const chw = toChw(rgb, 6, { left: 1, top: 1, width: 4, height: 2 }, false);
    const [r, g, b] = patternPixel(1, 1, 3);
    expect([chw[0], chw[8], chw[16]]).toEqual([r, g, b].map((v) => Math.fround(v / 127.5 - 1)));
    const flipped = toChw(rgb, 6, { left: 1, top: 1, width: 4, height: 2 }, true);
    expect(flipped[3]).toBe(chw[0]); // first pixel of the row moves to its end
    expect(Math.min(...chw)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...chw)).toBeLessThanOrEqual(1);
  });

  it.each([false, true])('gives x / 127.5 − 1 for every value and position (flip %s)', (flip) => {
    const [width, height] = [37, 11];
    const rgb = Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 7) % 256);
    const crop = { left: 3, top: 2, width: 29, height: 8 };
    const chw = toChw(rgb, width, crop, flip);
    const expected = new Float32Array(chw.length);
    const plane = crop.width * crop.height;
    for (let y = 0; y < crop.height; y++)
      for (let x = 0; x < crop.width; x++)
        for (let c = 0; c < 3; c++) {
          const sourceX = crop.left + (flip ? crop.width - 1 - x : x);
          const value = rgb[((crop.top + y) * width + sourceX) * 3 + c]!;
          expected[c * plane + y * crop.width + x] = value / 127.5 - 1;
        }
    expect(chw).toEqual(expected);
  });

  it('applies EXIF rotation before resizing', async () => {
    // Stored 40x20, left half black / right half white, orientation 6 (rotate 90° clockwise).
    const raw = Buffer.alloc(40 * 20 * 3);
    for (let i = 0; i < 40 * 20; i++) raw.fill(i % 40 < 20 ? 0 : 255, i * 3, i * 3 + 3);
    const sharp = (await import('sharp')).default;
    const jpeg = await sharp(raw, { raw: { width: 40, height: 20, channels: 3 } })
      .jpeg({ quality: 100 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const rgb = await decodeResized('r.jpg', jpeg, [20, 40]);
    // After rotating clockwise the stored left (black) half becomes the top.
    expect(rgb[(5 * 20 + 10) * 3]).toBeLessThan(40);
    expect(rgb[(35 * 20 + 10) * 3]).toBeGreaterThan(215);
  });

  it('flattens alpha onto white', async () => {
    const rgb = await decodeResized(
      'a.png',
      await imageBytes({ width: 8, height: 2, alpha: true, seed: 1 }),
      [8, 2],
    );
    expect([...rgb.subarray(0, 3)]).toEqual([255, 255, 255]); // transparent left half
    expect([...rgb.subarray(7 * 3, 8 * 3)]).toEqual(patternPixel(7, 0, 1)); // opaque right half
  });
});

describe('ImageCache', () => {
  it('round-trips pixels, keys on content and size, and treats damage as a miss', async () => {
    const cache = new ImageCache(join(await tempDir(), 'cache'));
    const key = ImageCache.key('a'.repeat(64), [4, 2]);
    expect(ImageCache.key('a'.repeat(64), [4, 3])).not.toBe(key);
    expect(ImageCache.key('b'.repeat(64), [4, 2])).not.toBe(key);
    expect(await cache.get(key, [4, 2])).toBeUndefined();
    const rgb = Uint8Array.from({ length: 24 }, (_, i) => i * 10);
    await cache.set(key, [4, 2], rgb);
    expect([...((await cache.get(key, [4, 2])) ?? [])]).toEqual([...rgb]);
    expect(await cache.get(key, [2, 4])).toBeUndefined();
  });
});
