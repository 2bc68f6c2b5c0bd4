import { DatasetError } from './errors.ts';
import type { Rng } from './rng.ts';

/** [width, height] in pixels. */
export type Size = readonly [width: number, height: number];

export interface BucketOptions {
  /** Training resolution: one side (square) or [width, height]. Max bucket area = width × height. */
  resolution: number | Size;
  /** false: every image is resized to cover `resolution` and cropped to it (one bucket). */
  enableBucket?: boolean;
  /** Shortest bucket side (kohya `min_bucket_reso`, default 256). */
  minBucketReso?: number;
  /** Longest bucket side (kohya `max_bucket_reso`, default 1024). */
  maxBucketReso?: number;
  /** Bucket sides are multiples of this (kohya `bucket_reso_steps`, default 64). */
  bucketResoSteps?: number;
  /** Never enlarge an image: buckets come from each image's own size (kohya `bucket_no_upscale`). */
  bucketNoUpscale?: boolean;
}

export interface BucketAssignment {
  /** The bucket: the final [width, height] of the training image. */
  readonly bucket: Size;
  /** The size the image is resized to before cropping to `bucket` (covers it on both axes). */
  readonly resized: Size;
  /** Bucket aspect ratio minus image aspect ratio. */
  readonly aspectError: number;
}

export interface BucketSelector {
  /** The predefined buckets (empty with `bucketNoUpscale`, where buckets follow the images). */
  readonly resolutions: readonly Size[];
  select(width: number, height: number): BucketAssignment;
}

/** Python's `int(x + 0.5)` for the non-negative values used here. */
const roundHalfUp = (x: number): number => Math.floor(x + 0.5);

const compareSizes = (a: Size, b: Size): number => a[0] - b[0] || a[1] - b[1];

/**
 * kohya sd-scripts `make_bucket_resolutions`: the square bucket, then for every width from
 * `minSize` to `maxSize` in `divisible` steps the tallest height (multiple of `divisible`, at most
 * `maxSize`) that keeps width × height within the max area, with its transpose; sorted.
 */
export function makeBucketResolutions(maxReso: Size, minSize = 256, maxSize = 1024, divisible = 64): Size[] {
  const maxArea = maxReso[0] * maxReso[1];
  const found = new Map<string, Size>();
  const add = (size: Size): void => {
    found.set(`${size[0]}x${size[1]}`, size);
  };
  const square = Math.floor(Math.sqrt(maxArea) / divisible) * divisible;
  add([square, square]);
  for (let width = minSize; width <= maxSize; width += divisible) {
    const height = Math.min(maxSize, Math.floor(Math.floor(maxArea / width) / divisible) * divisible);
    if (height >= minSize) {
      add([width, height]);
      add([height, width]);
    }
  }
  return [...found.values()].sort(compareSizes);
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value <= 0) {
    throw new DatasetError('E_INVALID_OPTIONS', `${name} must be a positive integer, got ${value}.`);
  }
  return value;
}

/** Resolves `resolution` to [width, height], checked. */
export function resolutionSize(resolution: number | Size): Size {
  const size: Size = typeof resolution === 'number' ? [resolution, resolution] : resolution;
  return [positiveInteger(size[0], 'resolution width'), positiveInteger(size[1], 'resolution height')];
}

/**
 * kohya's `BucketManager.select_bucket`, same arithmetic and tie-breaking:
 * - upscaling allowed: an image whose exact size is a bucket keeps it; otherwise the bucket with
 *   the nearest aspect ratio (first one on ties, in sorted order); the image is scaled so it covers
 *   the bucket (`int(side × scale + 0.5)`) and the excess is cropped.
 * - `bucketNoUpscale`: images larger than the max area shrink to it keeping their aspect ratio
 *   (width or height rounded to the step, whichever distorts the ratio less); the bucket is the
 *   resized size rounded down to the step, so images are cropped, never padded or enlarged.
 */
export function createBucketSelector(options: BucketOptions): BucketSelector {
  const maxReso = resolutionSize(options.resolution);
  if (options.enableBucket === false) {
    return predefinedSelector([maxReso]);
  }
  const minSize = positiveInteger(options.minBucketReso ?? 256, 'minBucketReso');
  const maxSize = positiveInteger(options.maxBucketReso ?? 1024, 'maxBucketReso');
  const steps = positiveInteger(options.bucketResoSteps ?? 64, 'bucketResoSteps');
  if (steps % 8 !== 0) {
    throw new DatasetError(
      'E_INVALID_OPTIONS',
      `bucketResoSteps must be a multiple of 8 (the VAE downsamples by 8), got ${steps}.`,
    );
  }
  if (maxSize < minSize || Math.min(...maxReso) < minSize || Math.max(...maxReso) > maxSize) {
    throw new DatasetError(
      'E_INVALID_OPTIONS',
      `Bucket limits must satisfy minBucketReso (${minSize}) ≤ resolution (${maxReso.join('x')}) ≤ maxBucketReso (${maxSize}); change one of them.`,
    );
  }
  if (!options.bucketNoUpscale) {
    return predefinedSelector(makeBucketResolutions(maxReso, minSize, maxSize, steps));
  }
  const maxArea = maxReso[0] * maxReso[1];
  const roundToSteps = (x: number): number => {
    const rounded = roundHalfUp(x);
    return rounded - (rounded % steps);
  };
  return {
    resolutions: [],
    select(width, height) {
      const aspect = width / height;
      let resized: Size = [width, height];
      if (width * height > maxArea) {
        const resizedWidth = Math.sqrt(maxArea * aspect);
        const resizedHeight = maxArea / resizedWidth;
        const widthRounded = roundToSteps(resizedWidth);
        const heightInWidthRounded = roundToSteps(widthRounded / aspect);
        const heightRounded = roundToSteps(resizedHeight);
        const widthInHeightRounded = roundToSteps(heightRounded * aspect);
        // kohya divides by these; for extreme ratios one rounds to 0 and that branch must lose.
        const errorWidthRounded =
          heightInWidthRounded > 0 ? Math.abs(widthRounded / heightInWidthRounded - aspect) : Infinity;
        const errorHeightRounded =
          heightRounded > 0 ? Math.abs(widthInHeightRounded / heightRounded - aspect) : Infinity;
        resized =
          errorWidthRounded < errorHeightRounded
            ? [widthRounded, roundHalfUp(widthRounded / aspect)]
            : [roundHalfUp(heightRounded * aspect), heightRounded];
      }
      const bucket: Size = [resized[0] - (resized[0] % steps), resized[1] - (resized[1] % steps)];
      if (bucket[0] === 0 || bucket[1] === 0) {
        throw new DatasetError(
          'E_INVALID_OPTIONS',
          `An image of ${width}x${height} is narrower than bucketResoSteps (${steps}) after resizing, so it fits no bucket; crop it or turn off bucketNoUpscale.`,
        );
      }
      return { bucket, resized, aspectError: bucket[0] / bucket[1] - aspect };
    },
  };
}

function predefinedSelector(resolutions: readonly Size[]): BucketSelector {
  const exact = new Set(resolutions.map((size) => `${size[0]}x${size[1]}`));
  const aspects = resolutions.map((size) => size[0] / size[1]);
  return {
    resolutions,
    select(width, height) {
      const aspect = width / height;
      let bucket: Size | undefined;
      if (exact.has(`${width}x${height}`)) {
        bucket = [width, height];
      } else {
        let best = 0;
        for (let i = 1; i < aspects.length; i++) {
          if (Math.abs(aspects[i]! - aspect) < Math.abs(aspects[best]! - aspect)) best = i;
        }
        bucket = resolutions[best]!;
      }
      const scale = aspect > bucket[0] / bucket[1] ? bucket[1] / height : bucket[0] / width;
      const resized: Size = [roundHalfUp(width * scale), roundHalfUp(height * scale)];
      return { bucket, resized, aspectError: bucket[0] / bucket[1] - aspect };
    },
  };
}

/**
 * Where to cut `bucket` out of the resized image: centred (`trim // 2`) or, with an rng, uniform
 * over every position like kohya's `random.randint(0, trim)`; width first, then height.
 */
export function cropOffset(resized: Size, bucket: Size, rng?: Rng): { left: number; top: number } {
  const trimX = resized[0] - bucket[0];
  const trimY = resized[1] - bucket[1];
  if (trimX < 0 || trimY < 0) {
    throw new DatasetError(
      'E_INVALID_STATE',
      `Resized size ${resized.join('x')} does not cover bucket ${bucket.join('x')}.`,
    );
  }
  const left = rng ? rng.nextInt(trimX + 1) : Math.floor(trimX / 2);
  const top = rng ? rng.nextInt(trimY + 1) : Math.floor(trimY / 2);
  return { left, top };
}
