import { type BucketOptions, createBucketSelector, cropOffset, type Size } from './buckets.ts';
import { type CaptionOptions, checkCaptionOptions, processCaption } from './captions.ts';
import type { DatasetImage } from './check.ts';
import { DatasetError } from './errors.ts';
import { ImageCache } from './image-cache.ts';
import { decodeResized, readImageFile, toChw } from './image-io.ts';
import { createLimiter } from './pool.ts';
import { createRng } from './rng.ts';

/** Sub-stream keys of `createRng(seed, …)`: epoch order and per-sample augmentation never share draws. */
const EPOCH_ORDER_STREAM = 1;
const SAMPLE_STREAM = 2;

/**
 * sharp runs each pipeline on a libuv pool thread (UV_THREADPOOL_SIZE, 4 by default), and
 * libvips spreads each one over its own threads: more decodes in flight than the pool has
 * threads only wait in its queue.
 */
const defaultConcurrency = (): number => Number(process.env.UV_THREADPOOL_SIZE) || 4;

export interface ImageDatasetOptions extends BucketOptions {
  batchSize: number;
  seed: number;
  /** Random instead of centred crops (kohya `random_crop`). */
  randomCrop?: boolean;
  /** Mirror each sample with probability 1/2 (kohya `flip_aug`). */
  flipAug?: boolean;
  /** Caption augmentation per sample: shuffle, keep, dropout, prefix/suffix. */
  caption?: CaptionOptions;
  /** Folder for decoded, resized pixels; without it every epoch decodes again. */
  cacheDir?: string;
  /**
   * Images decoded at once, across the batch being loaded and those `batches()` prefetches
   * (default: libuv's thread pool size, `UV_THREADPOOL_SIZE` or 4).
   */
  concurrency?: number;
}

/** One bucket's share of an epoch: which images (indices into `images`) make which batch. */
export interface PlannedBatch {
  readonly bucket: Size;
  readonly items: readonly number[];
}

export interface ImageBatch {
  readonly epoch: number;
  /** 0-based step within the epoch. */
  readonly step: number;
  readonly bucket: Size;
  /** float32 [batch, 3, height, width] in [-1, 1]. */
  readonly pixels: Float32Array;
  /** Augmented captions, markup stripped: what the text encoder sees. */
  readonly captions: string[];
  readonly paths: string[];
  readonly flipped: boolean[];
  /** Each image's `[width, height]` as read, before resizing (SDXL conditions on it). */
  readonly originalSizes: Size[];
}

export interface BucketInfo {
  readonly bucket: Size;
  /** Distinct images. */
  readonly images: number;
  /** Images × repeats: samples per epoch. */
  readonly samples: number;
}

interface Placed {
  readonly bucket: Size;
  readonly resized: Size;
}

/**
 * Images in aspect buckets, batched the way kohya does it, but derivable: epoch e's order comes
 * from `createRng(seed, order, e)` alone, so training can resume at any (epoch, step) without
 * replaying earlier epochs. Each epoch: every image is repeated `repeats` times in its bucket,
 * each bucket is shuffled and cut into batches (the last one may be short), and the list of
 * batches is shuffled across buckets. Pixels are decoded per batch, never held for the dataset.
 */
/**
 * Most samples one epoch may hold: each is an entry of the epoch's shuffled sample list (about
 * 8 bytes), so 50 million is 400 MB; kohya-sized datasets are thousands.
 */
export const MAX_EPOCH_SAMPLES = 50_000_000;

export class ImageDataset {
  readonly images: readonly DatasetImage[];
  readonly buckets: readonly BucketInfo[];
  readonly stepsPerEpoch: number;
  private readonly options: ImageDatasetOptions;
  private readonly placed: readonly Placed[];
  private readonly members: readonly (readonly number[])[];
  private readonly cache: ImageCache | undefined;
  private planned: { epoch: number; plan: readonly PlannedBatch[] } | undefined;
  private readonly concurrency: number;
  /** Every decode of this dataset goes through it, first come first served across batches. */
  private readonly decodeSlot: <R>(task: () => Promise<R>) => Promise<R>;

  constructor(images: readonly DatasetImage[], options: ImageDatasetOptions) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new DatasetError(
        'E_INVALID_OPTIONS',
        `batchSize must be a positive integer, got ${options.batchSize}.`,
      );
    }
    if (images.length === 0) {
      throw new DatasetError(
        'E_EMPTY_DATASET',
        'No usable images: every image was missing or unreadable. Run the dataset check and fix what it reports.',
      );
    }
    const concurrency = options.concurrency ?? defaultConcurrency();
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new DatasetError(
        'E_INVALID_OPTIONS',
        `concurrency must be a positive integer, got ${concurrency}.`,
      );
    }
    this.concurrency = concurrency;
    this.decodeSlot = createLimiter(concurrency);
    const samples = images.reduce((sum, image) => sum + image.repeats, 0);
    if (samples > MAX_EPOCH_SAMPLES) {
      throw new DatasetError(
        'E_LIMIT_EXCEEDED',
        `${images.length} images × their repeats make ${samples} samples per epoch, above MAX_EPOCH_SAMPLES (${MAX_EPOCH_SAMPLES}); lower the N of the N_name folders.`,
      );
    }
    // Validate the seed and caption options now rather than at the first batch.
    createRng(options.seed);
    if (options.caption) checkCaptionOptions(options.caption);
    const selector = createBucketSelector(options);
    const byKey = new Map<string, number>();
    const sizes: Size[] = [];
    const members: number[][] = [];
    this.placed = images.map((image, index) => {
      const assignment = (() => {
        try {
          return selector.select(image.width, image.height);
        } catch (error) {
          throw new DatasetError('E_INVALID_OPTIONS', `${image.path}: ${(error as Error).message}`, {
            path: image.path,
            cause: error,
          });
        }
      })();
      const key = assignment.bucket.join('x');
      let bucketIndex = byKey.get(key);
      if (bucketIndex === undefined) {
        bucketIndex = sizes.length;
        byKey.set(key, bucketIndex);
        sizes.push(assignment.bucket);
        members.push([]);
      }
      members[bucketIndex]!.push(index);
      return { bucket: assignment.bucket, resized: assignment.resized };
    });
    // Sorted like kohya's `BucketManager.sort()`, so bucket ids are stable across runs.
    const order = sizes
      .map((_, i) => i)
      .sort((a, b) => sizes[a]![0] - sizes[b]![0] || sizes[a]![1] - sizes[b]![1]);
    this.members = order.map((i) => members[i]!);
    this.buckets = order.map((i) => ({
      bucket: sizes[i]!,
      images: members[i]!.length,
      samples: members[i]!.reduce((sum, item) => sum + images[item]!.repeats, 0),
    }));
    this.stepsPerEpoch = this.buckets.reduce((sum, b) => sum + Math.ceil(b.samples / options.batchSize), 0);
    this.images = images;
    this.options = options;
    this.cache = options.cacheDir === undefined ? undefined : new ImageCache(options.cacheDir);
  }

  /** The batches of `epoch`, in training order; a pure function of (seed, epoch). */
  epochPlan(epoch: number): readonly PlannedBatch[] {
    if (!Number.isInteger(epoch) || epoch < 0) {
      throw new DatasetError('E_OUT_OF_RANGE', `epoch must be a non-negative integer, got ${epoch}.`);
    }
    if (this.planned?.epoch === epoch) return this.planned.plan;
    const rng = createRng(this.options.seed, EPOCH_ORDER_STREAM, epoch);
    const { batchSize } = this.options;
    const refs: { bucket: number; start: number }[] = [];
    const lists = this.members.map((items, bucket) => {
      const expanded: number[] = [];
      for (const item of items) for (let r = 0; r < this.images[item]!.repeats; r++) expanded.push(item);
      for (let start = 0; start < expanded.length; start += batchSize) refs.push({ bucket, start });
      return expanded;
    });
    rng.shuffle(refs);
    for (const list of lists) rng.shuffle(list);
    const plan = refs.map(({ bucket, start }) => ({
      bucket: this.buckets[bucket]!.bucket,
      items: lists[bucket]!.slice(start, start + batchSize),
    }));
    this.planned = { epoch, plan };
    return plan;
  }

  /** Decodes and augments batch `step` of `epoch`; the same call always gives the same batch. */
  /**
   * Each image's caption as every batch gives it, when captions are not augmented (no `caption`
   * options): the same in every epoch, so what depends on the caption alone (a text encoder's
   * output) can be computed once. Undefined when they change from epoch to epoch.
   */
  fixedCaptions(): string[] | undefined {
    if (this.options.caption) return undefined;
    // Without options the rng is never drawn from: the caption is only stripped of its markup.
    return this.images.map((image) => processCaption(image.caption ?? '', undefined, createRng(0)));
  }

  async loadBatch(epoch: number, step: number): Promise<ImageBatch> {
    const plan = this.epochPlan(epoch);
    const batch = plan[step];
    if (!Number.isInteger(step) || batch === undefined) {
      throw new DatasetError(
        'E_OUT_OF_RANGE',
        `step ${step} is outside epoch ${epoch}, which has ${plan.length} steps (0..${plan.length - 1}).`,
      );
    }
    const [width, height] = batch.bucket;
    const plane = 3 * width * height;
    const pixels = new Float32Array(batch.items.length * plane);
    const captions: string[] = [];
    const flipped: boolean[] = [];
    const slots = batch.items.map(async (item, slot) => {
      const image = this.images[item]!;
      const { resized } = this.placed[item]!;
      // Per-sample stream: (epoch, step, slot) alone decides crop, flip and caption.
      const rng = createRng(this.options.seed, SAMPLE_STREAM, epoch, step, slot);
      const flip = this.options.flipAug === true && rng.next() < 0.5;
      const { left, top } = cropOffset(resized, batch.bucket, this.options.randomCrop ? rng : undefined);
      captions[slot] = processCaption(image.caption ?? '', this.options.caption, rng);
      flipped[slot] = flip;
      const rgb = await this.decodeSlot(() => this.resizedPixels(image, resized));
      toChw(
        rgb,
        resized[0],
        { left, top, width, height },
        flip,
        pixels.subarray(slot * plane, (slot + 1) * plane),
      );
    });
    await Promise.all(slots);
    return {
      epoch,
      step,
      bucket: batch.bucket,
      pixels,
      captions,
      paths: batch.items.map((item) => this.images[item]!.path),
      flipped,
      originalSizes: batch.items.map((item): Size => [this.images[item]!.width, this.images[item]!.height]),
    };
  }

  /**
   * Batches of `epoch` from `startStep` (for resume), decoding ahead while one is used: enough
   * batches that every decode slot stays busy across batch boundaries.
   */
  async *batches(epoch: number, startStep = 0): AsyncGenerator<ImageBatch> {
    const steps = this.epochPlan(epoch).length;
    if (!Number.isInteger(startStep) || startStep < 0 || startStep > steps) {
      throw new DatasetError(
        'E_OUT_OF_RANGE',
        `startStep ${startStep} is outside epoch ${epoch} (0..${steps}).`,
      );
    }
    const ahead = 1 + Math.ceil(this.concurrency / this.options.batchSize);
    const loading: Promise<ImageBatch>[] = [];
    let queued = startStep;
    const fill = (): void => {
      while (queued < steps && loading.length < ahead) {
        const batch = this.loadBatch(epoch, queued++);
        // Keep a failed prefetch from surfacing as an unhandled rejection before it is awaited.
        batch.catch(() => {});
        loading.push(batch);
      }
    };
    fill();
    for (let batch = loading.shift(); batch !== undefined; batch = loading.shift()) {
      const current = await batch;
      fill();
      yield current;
    }
  }

  private async resizedPixels(image: DatasetImage, resized: Size): Promise<Uint8Array> {
    const key = ImageCache.key(image.contentHash, resized);
    const cached = await this.cache?.get(key, resized);
    if (cached) return cached;
    const rgb = await decodeResized(image.path, await readImageFile(image.path), resized);
    await this.cache?.set(key, resized, rgb);
    return rgb;
  }
}
