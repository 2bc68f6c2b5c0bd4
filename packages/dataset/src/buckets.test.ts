import { describe, expect, it } from 'vitest';
import { createBucketSelector, cropOffset, makeBucketResolutions, type Size } from './buckets.ts';
import { DatasetError } from './errors.ts';
import { createRng } from './rng.ts';

// Every expected value below was produced by executing kohya sd-scripts' `make_bucket_resolutions`
// and `BucketManager.select_bucket` (library/model_util.py, library/train_util.py) with numpy.

describe('makeBucketResolutions', () => {
  it.each<[string, Size, number, number, number, number[][]]>([
    [
      '512² defaults',
      [512, 512],
      256,
      1024,
      64,
      [
        [256, 832],
        [256, 896],
        [256, 960],
        [256, 1024],
        [320, 704],
        [320, 768],
        [384, 640],
        [448, 576],
        [512, 512],
        [576, 448],
        [640, 384],
        [704, 320],
        [768, 320],
        [832, 256],
        [896, 256],
        [960, 256],
        [1024, 256],
      ],
    ],
    [
      '768², 320..1280',
      [768, 768],
      320,
      1280,
      64,
      [
        [320, 1280],
        [384, 1280],
        [448, 1216],
        [448, 1280],
        [512, 1088],
        [512, 1152],
        [576, 960],
        [576, 1024],
        [640, 896],
        [704, 832],
        [768, 768],
        [832, 704],
        [896, 640],
        [960, 576],
        [1024, 576],
        [1088, 512],
        [1152, 512],
        [1216, 448],
        [1280, 320],
        [1280, 384],
        [1280, 448],
      ],
    ],
  ])('%s matches kohya', (_name, maxReso, min, max, steps, expected) => {
    expect(makeBucketResolutions(maxReso, min, max, steps)).toEqual(expected);
  });

  it('handles a non-square resolution with 32-pixel steps like kohya', () => {
    const resos = makeBucketResolutions([512, 768], 256, 1024, 32);
    expect(resos).toHaveLength(35);
    expect(resos.slice(0, 5)).toEqual([
      [256, 1024],
      [288, 1024],
      [320, 1024],
      [352, 1024],
      [384, 960],
    ]);
    expect(resos).toContainEqual([608, 608]);
    expect(resos).toContainEqual([608, 640]);
  });
});

describe('createBucketSelector', () => {
  const upscale = createBucketSelector({ resolution: 512 });
  const noUpscale = createBucketSelector({ resolution: 512, bucketNoUpscale: true });

  it.each<[Size, Size, Size]>([
    [
      [512, 512],
      [512, 512],
      [512, 512],
    ],
    [
      [1024, 768],
      [576, 448],
      [597, 448],
    ],
    [
      [768, 1024],
      [448, 576],
      [448, 597],
    ],
    [
      [4000, 3000],
      [576, 448],
      [597, 448],
    ],
    [
      [1920, 1080],
      [640, 384],
      [683, 384],
    ],
    [
      [300, 900],
      [256, 832],
      [277, 832],
    ],
    [
      [2000, 500],
      [1024, 256],
      [1024, 256],
    ],
    [
      [513, 511],
      [512, 512],
      [514, 512],
    ],
    [
      [384, 640],
      [384, 640],
      [384, 640],
    ],
    [
      [100, 100],
      [512, 512],
      [512, 512],
    ],
    [
      [5000, 1000],
      [1024, 256],
      [1280, 256],
    ],
  ])('upscaling: %j → bucket %j, resized %j', (image, bucket, resized) => {
    const assignment = upscale.select(image[0], image[1]);
    expect(assignment.bucket).toEqual(bucket);
    expect(assignment.resized).toEqual(resized);
    expect(assignment.aspectError).toBeCloseTo(bucket[0] / bucket[1] - image[0] / image[1], 12);
  });

  it.each<[Size, Size, Size]>([
    [
      [512, 512],
      [512, 512],
      [512, 512],
    ],
    [
      [1024, 768],
      [512, 384],
      [512, 384],
    ],
    [
      [3000, 4000],
      [384, 512],
      [384, 512],
    ],
    [
      [1920, 1080],
      [640, 384],
      [683, 384],
    ],
    [
      [300, 900],
      [256, 768],
      [256, 768],
    ],
    [
      [2000, 500],
      [1024, 256],
      [1024, 256],
    ],
    [
      [513, 511],
      [512, 448],
      [513, 511],
    ],
    [
      [5000, 1000],
      [960, 192],
      [960, 192],
    ],
  ])('bucketNoUpscale: %j → bucket %j, resized %j', (image, bucket, resized) => {
    const assignment = noUpscale.select(image[0], image[1]);
    expect(assignment.bucket).toEqual(bucket);
    expect(assignment.resized).toEqual(resized);
  });

  it('without buckets resizes to cover the resolution and crops to it', () => {
    const fixed = createBucketSelector({ resolution: 512, enableBucket: false });
    expect(fixed.resolutions).toEqual([[512, 512]]);
    expect(fixed.select(1024, 768)).toMatchObject({ bucket: [512, 512], resized: [683, 512] });
    expect(fixed.select(300, 600)).toMatchObject({ bucket: [512, 512], resized: [512, 1024] });
  });

  it('bucketNoUpscale refuses an image too thin for any bucket', () => {
    expect(() => noUpscale.select(40, 400)).toThrow(/bucketResoSteps/);
  });

  it.each([
    [{ resolution: 512, bucketResoSteps: 12 }, /multiple of 8/],
    [{ resolution: 512, minBucketReso: 640 }, /minBucketReso/],
    [{ resolution: 2048 }, /maxBucketReso/],
    [{ resolution: 0 }, /positive integer/],
    [{ resolution: [512, 512.5] as Size }, /positive integer/],
  ])('rejects %j', (options, message) => {
    expect(() => createBucketSelector(options)).toThrow(message);
    expect(() => createBucketSelector(options)).toThrow(DatasetError);
  });
});

describe('cropOffset', () => {
  it('centres like kohya (trim // 2)', () => {
    expect(cropOffset([597, 448], [576, 448])).toEqual({ left: 10, top: 0 });
    expect(cropOffset([512, 1024], [512, 512])).toEqual({ left: 0, top: 256 });
  });

  it('random crop covers every offset, both ends included, and is seeded', () => {
    const rng = createRng(1);
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(cropOffset([520, 512], [512, 512], rng).left);
    expect([...seen].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const a = cropOffset([700, 900], [512, 512], createRng(9));
    expect(cropOffset([700, 900], [512, 512], createRng(9))).toEqual(a);
  });

  it('refuses a resized size smaller than the bucket', () => {
    expect(() => cropOffset([500, 512], [512, 512])).toThrow(DatasetError);
  });
});
