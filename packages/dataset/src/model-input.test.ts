import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { CLIP_IMAGE_MEAN, CLIP_IMAGE_STD, prepareClipImage, prepareTaggerImage } from './model-input.ts';
import { patternPixel, tempDir, writeImage, writeText } from './test-fixtures.ts';

/** Pixel (x, y) of an HWC image `size` wide, as [c0, c1, c2]. */
const hwc = (data: Float32Array, size: number, x: number, y: number) =>
  Array.from(data.subarray((y * size + x) * 3, (y * size + x) * 3 + 3));

const WHITE = [255, 255, 255];

async function solid(path: string, width: number, height: number, rgb: [number, number, number]) {
  const [r, g, b] = rgb;
  await writeText(
    path,
    await sharp({ create: { width, height, channels: 3, background: { r, g, b } } })
      .png()
      .toBuffer(),
  );
  return path;
}

describe('prepareTaggerImage', () => {
  it('keeps 0–255 values in BGR order, HWC', async () => {
    const path = await writeImage(join(await tempDir(), 'p.png'), { width: 16, height: 16, seed: 2 });
    const data = await prepareTaggerImage(path, 16);
    expect(data).toHaveLength(16 * 16 * 3);
    for (const [x, y] of [
      [0, 0],
      [5, 3],
      [15, 15],
    ] as const) {
      expect(hwc(data, 16, x, y)).toEqual(patternPixel(x, y, 2).reverse());
    }
  });

  it('pads a wide image to a centred square with white', async () => {
    const path = await solid(join(await tempDir(), 'wide.png'), 32, 8, [0, 0, 0]);
    const data = await prepareTaggerImage(path, 32);
    expect(hwc(data, 32, 16, 0)).toEqual(WHITE);
    expect(hwc(data, 32, 16, 11)).toEqual(WHITE);
    expect(hwc(data, 32, 16, 16)).toEqual([0, 0, 0]);
    expect(hwc(data, 32, 16, 31)).toEqual(WHITE);
  });

  it('flattens transparency onto white', async () => {
    const path = await writeImage(join(await tempDir(), 'a.png'), { width: 16, height: 16, alpha: true });
    const data = await prepareTaggerImage(path, 16);
    expect(hwc(data, 16, 0, 8)).toEqual(WHITE);
    expect(hwc(data, 16, 12, 8)).toEqual(patternPixel(12, 8, 0).reverse());
  });

  it('applies EXIF orientation before padding', async () => {
    // Stored 40x20 with orientation 6: upright it is 20 wide, so the padding is left and right.
    const path = await writeImage(join(await tempDir(), 'r.jpg'), {
      width: 40,
      height: 20,
      format: 'jpeg',
      orientation: 6,
      seed: 9,
    });
    const data = await prepareTaggerImage(path, 40);
    expect(hwc(data, 40, 3, 20)).toEqual(WHITE);
    expect(hwc(data, 40, 36, 20)).toEqual(WHITE);
    expect(hwc(data, 40, 20, 3)).not.toEqual(WHITE);
  });

  it.each([
    [0, 'E_INVALID_OPTIONS'],
    [448.5, 'E_INVALID_OPTIONS'],
    [100_000, 'E_INVALID_OPTIONS'],
  ])('rejects size %d with %s', async (size, code) => {
    const path = await solid(join(await tempDir(), 's.png'), 4, 4, [1, 2, 3]);
    await expect(prepareTaggerImage(path, size)).rejects.toMatchObject({ code });
  });

  it.each([
    ['a missing file', 'E_NOT_FOUND', async (dir: string) => join(dir, 'nope.png')],
    ['a file that is not an image', 'E_IMAGE_DECODE', (dir: string) => writeText(join(dir, 'x.png'), 'text')],
  ])('fails on %s with %s naming it', async (_name, code, make) => {
    const path = await make(await tempDir());
    await expect(prepareTaggerImage(path)).rejects.toMatchObject({ code, path });
  });
});

describe('prepareClipImage', () => {
  const normalised = ([r, g, b]: readonly number[]) =>
    [r!, g!, b!].map((v, c) => Math.fround((v / 255 - CLIP_IMAGE_MEAN[c]!) / CLIP_IMAGE_STD[c]!));

  it('centre-crops the shortest side, CHW, normalised with the CLIP mean and std', async () => {
    // 30x10: the shortest side is already 10, so the crop is columns 10–19, pixel for pixel.
    const path = await writeImage(join(await tempDir(), 'p.png'), { width: 30, height: 10, seed: 4 });
    const data = await prepareClipImage(path, { size: 10 });
    expect(data).toHaveLength(3 * 10 * 10);
    for (const [x, y] of [
      [0, 0],
      [7, 4],
    ] as const) {
      const i = y * 10 + x;
      const got = [data[i]!, data[100 + i]!, data[200 + i]!];
      const want = normalised(patternPixel(x + 10, y, 4));
      for (const [c, value] of got.entries()) expect(value).toBeCloseTo(want[c]!, 5);
    }
  });

  it('resizes the shortest side to the size and takes other mean and std', async () => {
    const path = await solid(join(await tempDir(), 's.png'), 64, 32, [255, 0, 255]);
    const data = await prepareClipImage(path, { size: 8, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    expect(data).toHaveLength(3 * 8 * 8);
    expect([data[0], data[64], data[128], data[191]]).toEqual([1, -1, 1, 1]);
  });
});
