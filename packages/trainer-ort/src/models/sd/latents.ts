/**
 * Training images → VAE latents. The VAE encoder runs as its own inference graph (one per bucket
 * size: its spatial dims are static), never inside the training step. With `cache_latents` every
 * preprocessed image is encoded once, before training (and once mirrored, with `flip_aug`), and
 * stored on disk under a key made of the image's content hash, its bucket, resize and crop, the
 * flip, and a fingerprint of the VAE weights and sizes; the next run with the same images and
 * settings reads them back. Latents are the posterior mean × the scaling factor, so they are a
 * pure function of that key. Random crops change every epoch, so they are never cached.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type BucketOptions,
  type BucketSelector,
  createBucketSelector,
  type DatasetImage,
  type ImageBatch,
  ImageDataset,
  type Size,
} from '@lora/dataset';
import { Graph, hostTensor, writeModel } from '@lora/engine';
import { chooseDevice, type Device } from '../../device.ts';
import { Session } from '../../session.ts';
import { ModelError } from '../model-error.ts';
import type { SdCheckpoint } from './checkpoint.ts';
import type { SdComponent } from './keys.ts';
import { buildVaeEncoder } from './vae.ts';

/** Bumped when the cached bytes would mean something else (layout, mean vs. sample). */
const CACHE_FORMAT = 1;
/** Bytes hashed per read when fingerprinting the VAE weights. */
const HASH_CHUNK = 16 << 20;

/** Latents `[batch, c, h/f, w/f]` for a batch of preprocessed images. */
export interface LatentSource {
  latents(batch: ImageBatch): Promise<Float32Array>;
  dispose(): Promise<void>;
}

export interface VaeSessionOptions {
  /** Folder the encoder graphs are written to (the run's `graphs/`). */
  folder: string;
  device: Device;
  onNotice?: (message: string) => void;
}

/** The VAE encoder graphs, one session per bucket size, created on first use. */
export class VaeEncoder {
  private readonly sessions = new Map<string, Promise<Session>>();
  readonly factor: number;
  readonly channels: number;

  constructor(
    private readonly checkpoint: SdCheckpoint,
    private readonly options: VaeSessionOptions,
  ) {
    const vae = checkpoint.config.vae;
    this.factor = 2 ** (vae.blockOutChannels.length - 1);
    this.channels = vae.latentChannels;
  }

  /** Latent `[c, h, w]` of a `[width, height]` image. */
  latentShape([width, height]: Size): [number, number, number] {
    return [this.channels, height / this.factor, width / this.factor];
  }

  /** Encodes `count` images `[count, 3, height, width]` in [-1, 1]. */
  async encode(pixels: Float32Array, bucket: Size, count: number): Promise<Float32Array> {
    const session = await this.session(bucket);
    const [width, height] = bucket;
    const out = await session.run({ pixels: hostTensor('float32', [count, 3, height, width], pixels) });
    return out['latents']!.data as Float32Array;
  }

  private session(bucket: Size): Promise<Session> {
    const key = bucket.join('x');
    let session = this.sessions.get(key);
    if (!session) {
      session = this.create(bucket);
      this.sessions.set(key, session);
    }
    return session;
  }

  private async create([width, height]: Size): Promise<Session> {
    const { checkpoint, options } = this;
    const graph = new Graph('vae_encoder');
    const pixels = graph.input('pixels', 'float32', [
      'batch',
      checkpoint.config.vae.inChannels,
      height,
      width,
    ]);
    graph.output(
      graph.scope('vae', () =>
        buildVaeEncoder({ checkpoint, component: 'vae' }, checkpoint.config.vae, pixels),
      ),
      'latents',
    );
    const path = await writeModel(graph, options.folder, {
      fileName: `vae_encoder_${width}x${height}.onnx`,
      ...(options.onNotice ? { onNotice: options.onNotice } : {}),
    });
    return Session.create(path, { device: (await chooseDevice(options.device)).device });
  }

  async dispose(): Promise<void> {
    const sessions = await Promise.allSettled(this.sessions.values());
    this.sessions.clear();
    await Promise.all(sessions.map((s) => (s.status === 'fulfilled' ? s.value.dispose() : undefined)));
  }
}

/** Encodes each batch as it comes (no `cache_latents`): the VAE stays loaded for the whole run. */
export class EncodedLatents implements LatentSource {
  constructor(private readonly encoder: VaeEncoder) {}

  latents(batch: ImageBatch): Promise<Float32Array> {
    return this.encoder.encode(batch.pixels, batch.bucket, batch.paths.length);
  }

  dispose(): Promise<void> {
    return this.encoder.dispose();
  }
}

/**
 * sha256 of the VAE encoder's weight bytes (the decoder is never used) and sizes: latents made
 * by another VAE are never reused.
 */
export function vaeFingerprint(checkpoint: SdCheckpoint): Promise<string> {
  return weightsFingerprint(checkpoint, 'vae', checkpoint.config.vae, (k) =>
    /^(encoder|quant_conv)\./.test(k),
  );
}

/** sha256 of `sizes` and of the bytes of `component`'s stored tensors that `filter` keeps. */
export async function weightsFingerprint(
  checkpoint: SdCheckpoint,
  component: SdComponent,
  sizes: unknown,
  filter: (key: string) => boolean = () => true,
): Promise<string> {
  const hash = createHash('sha256').update(JSON.stringify(sizes));
  const buffer = Buffer.alloc(HASH_CHUNK);
  for (const range of checkpoint.storedRanges(component, filter)) {
    hash.update(`${range.key}\0${range.dtype}\0${range.length}\0`);
    const handle = await open(range.path, 'r');
    try {
      for (let done = 0; done < range.length; ) {
        const want = Math.min(HASH_CHUNK, range.length - done);
        const { bytesRead } = await handle.read(buffer, 0, want, range.start + done);
        if (bytesRead === 0)
          throw new ModelError('E_MODEL_TENSOR', `${range.path}: '${range.key}' is cut short`);
        hash.update(buffer.subarray(0, bytesRead));
        done += bytesRead;
      }
    } finally {
      await handle.close();
    }
  }
  return hash.digest('hex');
}

export interface CacheStats {
  /** Latents encoded by this run (an image and, with `flipAug`, its mirror image are two). */
  encoded: number;
  /** Latents that were already on disk. */
  reused: number;
}

/** The bucket settings of the training dataset, and whether it mirrors images (`flip_aug`). */
export interface LatentCacheSettings extends BucketOptions {
  flipAug?: boolean;
}

/**
 * `cache_latents`: latents on disk under `folder`, one file per (image, preprocessing, VAE).
 * `fill` encodes what is missing before training; `latents` then only reads files.
 */
export class LatentCache implements LatentSource {
  private readonly byPath: ReadonlyMap<string, DatasetImage>;
  private readonly selector: BucketSelector;

  constructor(
    readonly folder: string,
    private readonly images: readonly DatasetImage[],
    private readonly encoder: VaeEncoder,
    /** `vaeFingerprint` of the checkpoint. */
    private readonly vae: string,
    /** The training dataset's settings (crops are centred). */
    private readonly settings: LatentCacheSettings,
  ) {
    this.byPath = new Map(images.map((image) => [image.path, image]));
    this.selector = createBucketSelector(settings);
  }

  /** The file of one image's latents: every input of the encoding is part of its name. */
  fileOf(image: DatasetImage, flipped = false): string {
    const { bucket, resized } = this.selector.select(image.width, image.height);
    const key = createHash('sha256')
      .update(
        JSON.stringify({
          format: CACHE_FORMAT,
          image: image.contentHash,
          bucket,
          resized,
          crop: 'center',
          flipped,
          vae: this.vae,
        }),
      )
      .digest('hex');
    return join(this.folder, `${key}.f32`);
  }

  /**
   * Encodes every image whose latents are not on disk yet (and its mirror image, with
   * `flipAug`), one image at a time in its own bucket, then frees the VAE.
   */
  async fill(): Promise<CacheStats> {
    await mkdir(this.folder, { recursive: true });
    const single = this.images.map((image) => ({ ...image, repeats: 1 }));
    const { flipAug, ...buckets } = this.settings;
    const dataset = new ImageDataset(single, { ...buckets, batchSize: 1, seed: 0 });
    const stats: CacheStats = { encoded: 0, reused: 0 };
    const plan = dataset.epochPlan(0);
    for (let step = 0; step < plan.length; step++) {
      const { bucket, items } = plan[step]!;
      let pixels: Float32Array | undefined;
      for (const flipped of flipAug ? [false, true] : [false]) {
        const file = this.fileOf(single[items[0]!]!, flipped);
        if (await this.read(file, bucket)) {
          stats.reused++;
          continue;
        }
        pixels ??= (await dataset.loadBatch(0, step)).pixels;
        const input = flipped ? mirrored(pixels, bucket[0]) : pixels;
        await this.write(file, await this.encoder.encode(input, bucket, 1));
        stats.encoded++;
      }
    }
    await this.encoder.dispose();
    return stats;
  }

  async latents(batch: ImageBatch): Promise<Float32Array> {
    const [c, h, w] = this.encoder.latentShape(batch.bucket);
    const out = new Float32Array(batch.paths.length * c * h * w);
    for (const [slot, path] of batch.paths.entries()) {
      const image = this.byPath.get(path);
      const latents = image && (await this.read(this.fileOf(image, batch.flipped[slot]), batch.bucket));
      if (!latents) {
        throw new ModelError(
          'E_MODEL_BATCH',
          `no cached latents for ${path} (bucket ${batch.bucket.join('x')}) in ${this.folder}; ` +
            'was the cache removed during the run? Start the run again (resume: auto) to rebuild it',
        );
      }
      out.set(latents, slot * c * h * w);
    }
    return out;
  }

  dispose(): Promise<void> {
    return this.encoder.dispose();
  }

  private async read(file: string, bucket: Size): Promise<Float32Array | undefined> {
    const [c, h, w] = this.encoder.latentShape(bucket);
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch {
      return undefined;
    }
    if (bytes.byteLength !== 4 * c * h * w) return undefined;
    // A copy: the file's bytes may sit at an offset that is not a multiple of 4.
    return new Float32Array(new Uint8Array(bytes).buffer);
  }

  private async write(file: string, latents: Float32Array): Promise<void> {
    const temporary = `${file}.${process.pid}.tmp`;
    await writeFile(temporary, new Uint8Array(latents.buffer, latents.byteOffset, latents.byteLength));
    await rename(temporary, file);
  }
}

/** Rows of `width` values mirrored left-right: the dataset's flip of a centred crop. */
function mirrored(pixels: Float32Array, width: number): Float32Array {
  const out = new Float32Array(pixels.length);
  for (let row = 0; row < pixels.length; row += width) {
    for (let x = 0; x < width; x++) out[row + x] = pixels[row + width - 1 - x]!;
  }
  return out;
}
