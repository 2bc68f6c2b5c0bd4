/**
 * The SD training data as the loop reads it: micro-batch `index` of `epoch` is the image
 * dataset's batch (aspect bucket, order and caption augmentation from `(seed, epoch, index)`),
 * its latents (cached or encoded now), its captions tokenized for CLIP, and the timesteps and
 * noise drawn for exactly that position. Any micro-batch can be produced without the ones
 * before it, which is what resuming mid-epoch needs.
 */
import type { ImageBatch, ImageDataset } from '@lora/dataset';
import type { BatchCount, BatchSource } from '../../train/data.ts';
import type { LatentSource } from './latents.ts';
import type { ClipTokenizer } from './model-files.ts';
import {
  drawNoise,
  type NoiseDraw,
  type NoiseOptions,
  VALIDATION_TIMESTEPS,
  validationNoise,
} from './noise.ts';
import type { CachedText, TextConditioningCache } from './text-cache.ts';

export interface SdBatch {
  readonly size: number;
  /** `[channels, height, width]` of each example's latents. */
  readonly latentShape: readonly [number, number, number];
  /** `[size, c, h, w]`, already × the VAE scaling factor. */
  readonly latents: Float32Array;
  readonly noise: Float32Array;
  readonly timesteps: BigInt64Array;
  /** `[size, tokens]` CLIP token ids. */
  readonly inputIds: BigInt64Array;
  /** The augmented captions, markup stripped: what was tokenized. */
  readonly captions: readonly string[];
  /** SDXL: `[size, tokens]` ids for the second text encoder (padded with `!`). */
  readonly inputIds2?: BigInt64Array;
  /** SDXL: `[size, 6]` original height, width, crop top, left, target height, width (`sdxlTimeIds`). */
  readonly timeIds?: BigInt64Array;
  /** The captions' cached text-encoder outputs, when the run caches them. */
  readonly text?: CachedText;
}

/** What turns a dataset batch into model inputs. */
export interface BatchInputs {
  readonly latents: LatentSource;
  readonly tokenizer: ClipTokenizer;
  readonly latentShape: (bucket: readonly [number, number]) => [number, number, number];
  /** SDXL's second tokenizer: with it, batches carry its ids and the size condition. */
  readonly tokenizer2?: ClipTokenizer;
  /** The text-encoder output cache: with it, batches carry the captions' cached conditioning. */
  readonly text?: TextConditioningCache;
}

/**
 * SDXL's size and crop condition of one image, as kohya's dataset computes it
 * (`BucketManager.get_crop_ltrb`, "according to Stability AI's preprocessing"): the original
 * `[height, width]`; the top-left offset of the image fitted inside the bucket by its aspect ratio
 * (mirrored for a flipped sample: left = bucket width − right); the bucket's `[height, width]` as
 * the target. Python's float `//` and `int()` kept.
 */
export function sdxlTimeIds(
  [width, height]: readonly [number, number],
  [bucketWidth, bucketHeight]: readonly [number, number],
  flipped: boolean,
): [number, number, number, number, number, number] {
  const imageAspect = width / height;
  const [fitWidth, fitHeight] =
    bucketWidth / bucketHeight > imageAspect
      ? [bucketHeight * imageAspect, bucketHeight]
      : [bucketWidth, bucketWidth / imageAspect];
  const left = Math.floor((bucketWidth - fitWidth) / 2);
  const top = Math.floor((bucketHeight - fitHeight) / 2);
  const cropLeft = flipped ? bucketWidth - (left + fitWidth) : left;
  return [height, width, Math.trunc(top), Math.trunc(cropLeft), bucketHeight, bucketWidth];
}

export class SdBatchSource implements BatchSource<SdBatch> {
  readonly microBatchesPerEpoch: number;

  constructor(
    private readonly dataset: ImageDataset,
    private readonly inputs: BatchInputs,
    private readonly noise: NoiseOptions,
  ) {
    this.microBatchesPerEpoch = dataset.stepsPerEpoch;
  }

  async batch(epoch: number, index: number): Promise<SdBatch> {
    const images = await this.dataset.loadBatch(epoch, index);
    return sdBatch(images, this.inputs, (shape) => drawNoise(this.noise, epoch, index, shape));
  }

  count(batch: SdBatch): BatchCount {
    return { examples: batch.size, images: batch.size };
  }
}

/**
 * The validation images as the loss evaluation reads them: each batch of the (unaugmented)
 * validation dataset once per `VALIDATION_TIMESTEPS` entry, with noise fixed per batch and
 * timestep, so the loss of two evaluations differs only by the LoRA.
 */
export class SdValidationBatches implements BatchSource<SdBatch> {
  readonly microBatchesPerEpoch: number;

  constructor(
    private readonly dataset: ImageDataset,
    private readonly inputs: BatchInputs,
    private readonly seed: number,
  ) {
    this.microBatchesPerEpoch = dataset.stepsPerEpoch * VALIDATION_TIMESTEPS.length;
  }

  async batch(_epoch: number, index: number): Promise<SdBatch> {
    const step = Math.floor(index / VALIDATION_TIMESTEPS.length);
    const timestep = VALIDATION_TIMESTEPS[index % VALIDATION_TIMESTEPS.length]!;
    const images = await this.dataset.loadBatch(0, step);
    return sdBatch(images, this.inputs, (shape) => validationNoise(this.seed, step, timestep, shape));
  }

  count(batch: SdBatch): BatchCount {
    return { examples: batch.size, images: batch.size };
  }
}

/** A dataset batch's latents and token ids, with the timesteps and noise `draw` gives for its shape. */
async function sdBatch(
  images: ImageBatch,
  { latents, tokenizer, latentShape, tokenizer2, text }: BatchInputs,
  draw: (shape: [number, number, number, number]) => NoiseDraw,
): Promise<SdBatch> {
  const size = images.paths.length;
  const shape = latentShape(images.bucket);
  const { timesteps, noise } = draw([size, ...shape]);
  return {
    size,
    latentShape: shape,
    latents: await latents.latents(images),
    noise,
    timesteps,
    inputIds: tokenizer.encode(images.captions),
    captions: images.captions,
    ...(text ? { text: await text.conditioning(images.captions) } : {}),
    ...(tokenizer2
      ? {
          inputIds2: tokenizer2.encode(images.captions),
          timeIds: BigInt64Array.from(
            images.originalSizes.flatMap((size, i) => sdxlTimeIds(size, images.bucket, images.flipped[i]!)),
            BigInt,
          ),
        }
      : {}),
  };
}
