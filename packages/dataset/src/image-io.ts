import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { decodeBmp, MAX_IMAGE_PIXELS } from './bmp.ts';
import type { Size } from './buckets.ts';
import { DatasetError } from './errors.ts';

/** Extensions scanned as images (lower case): what sharp decodes, plus BMP decoded here. */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.jpg',
  '.jpeg',
  '.png',
  '.webp',
  '.bmp',
  '.gif',
  '.avif',
  '.tif',
  '.tiff',
]);

/**
 * Largest image file read into memory. Training images are a few MB; a 1 GB file in a dataset
 * folder is a mistake (a video, a dump) that should be reported, not loaded.
 */
export const MAX_IMAGE_FILE_BYTES = 256 * 1024 * 1024;

/** Transparent pixels are composited onto white, as WD14 taggers and most trainers' loaders do. */
export const ALPHA_BACKGROUND = '#ffffff';

export const isImagePath = (path: string): boolean => IMAGE_EXTENSIONS.has(extname(path).toLowerCase());

export interface ImageProbe {
  /** sharp's format name ('jpeg', 'png', 'heif' for AVIF, …) or 'bmp'. */
  readonly format: string;
  /** Size as displayed, after EXIF orientation. */
  readonly width: number;
  readonly height: number;
  /** EXIF orientation tag (1 = upright; 2–8 rotate or mirror). */
  readonly orientation: number;
  readonly hasAlpha: boolean;
  /** Frames in the file; only the first is used. */
  readonly pages: number;
  /** sha256 of the file bytes, hex. */
  readonly contentHash: string;
}

const isBmp = (bytes: Uint8Array): boolean => bytes[0] === 0x42 && bytes[1] === 0x4d;

/** Reads an image file whole (bounded by MAX_IMAGE_FILE_BYTES). */
export async function readImageFile(path: string): Promise<Buffer> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (error) {
    throw new DatasetError('E_NOT_FOUND', `Image not found: ${path}.`, { path, cause: error });
  }
  if (size > MAX_IMAGE_FILE_BYTES) {
    throw new DatasetError(
      'E_LIMIT_EXCEEDED',
      `${path} is ${size} bytes, above MAX_IMAGE_FILE_BYTES (${MAX_IMAGE_FILE_BYTES}); shrink it or move it out of the dataset.`,
      { path },
    );
  }
  return readFile(path);
}

export const hashBytes = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** A sharp pipeline on the first frame, BMP decoded here first; every decode goes through this. */
export function openImage(bytes: Buffer, path: string): Sharp {
  if (isBmp(bytes)) {
    const raw = decodeBmp(bytes, path);
    return sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } });
  }
  return sharp(bytes, { pages: 1, limitInputPixels: MAX_IMAGE_PIXELS });
}

export function decodeError(path: string, error: unknown): DatasetError {
  if (DatasetError.isInstance(error)) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new DatasetError(
    'E_IMAGE_DECODE',
    `${path}: cannot decode (${reason}); the file is corrupt, truncated or not an image. Re-export it or remove it.`,
    { path, cause: error },
  );
}

/**
 * Header facts plus a full decode at thumbnail size: the only reliable way to find truncated
 * or corrupt files, cheap because JPEG and WebP decode at a reduced scale.
 */
export async function probeImage(path: string, bytes: Buffer): Promise<ImageProbe> {
  const contentHash = hashBytes(bytes);
  try {
    const pipeline = openImage(bytes, path);
    const metadata = await pipeline.metadata();
    await pipeline.clone().resize(32, 32, { fit: 'inside' }).raw().toBuffer();
    const oriented = metadata.autoOrient ?? { width: metadata.width, height: metadata.height };
    return {
      format: isBmp(bytes) ? 'bmp' : metadata.format,
      width: oriented.width,
      height: oriented.height,
      orientation: metadata.orientation ?? 1,
      hasAlpha: metadata.hasAlpha ?? false,
      pages: metadata.pages ?? 1,
      contentHash,
    };
  } catch (error) {
    throw decodeError(path, error);
  }
}

/**
 * Decodes to 8-bit sRGB at exactly `resized` (aspect handled by the bucket maths): EXIF
 * orientation applied, alpha flattened onto white, grey and 16-bit images converted, Lanczos3.
 */
export async function decodeResized(path: string, bytes: Buffer, resized: Size): Promise<Uint8Array> {
  try {
    const { data, info } = await openImage(bytes, path)
      .rotate()
      .flatten({ background: ALPHA_BACKGROUND })
      .toColourspace('srgb')
      .resize(resized[0], resized[1], { fit: 'fill', kernel: 'lanczos3' })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== resized[0] || info.height !== resized[1]) {
      throw new Error(
        `decoded ${info.width}x${info.height}x${info.channels}, expected ${resized.join('x')}x3`,
      );
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } catch (error) {
    throw decodeError(path, error);
  }
}

/** x / 127.5 − 1 for every 8-bit value, rounded to float32 once: the same values as computing each. */
const UNIT_RANGE = Float32Array.from({ length: 256 }, (_, value) => value / 127.5 - 1);

/**
 * Cuts `crop` out of an RGB image and converts it to float32 CHW in [-1, 1]
 * (x / 127.5 − 1, what torchvision's ToTensor + Normalize(0.5, 0.5) gives), mirrored if `flip`.
 */
export function toChw(
  rgb: Uint8Array,
  width: number,
  crop: { left: number; top: number; width: number; height: number },
  flip: boolean,
  out: Float32Array = new Float32Array(3 * crop.width * crop.height),
): Float32Array {
  const plane = crop.width * crop.height;
  // Source step per output pixel: backwards through the row when mirrored.
  const step = flip ? -3 : 3;
  for (let y = 0; y < crop.height; y++) {
    let source = ((crop.top + y) * width + crop.left + (flip ? crop.width - 1 : 0)) * 3;
    const rowEnd = (y + 1) * crop.width;
    for (let target = y * crop.width; target < rowEnd; target++, source += step) {
      out[target] = UNIT_RANGE[rgb[source]!]!;
      out[plane + target] = UNIT_RANGE[rgb[source + 1]!]!;
      out[2 * plane + target] = UNIT_RANGE[rgb[source + 2]!]!;
    }
  }
  return out;
}

/**
 * A small WebP of an image for a preview grid: upright (EXIF orientation applied), first frame,
 * at most `maxSide` pixels on its longer side, never enlarged. Read and decoded as training
 * reads it (BMP included, same size limits); a file it cannot decode is `E_IMAGE_DECODE`.
 */
export async function makeThumbnail(path: string, maxSide: number): Promise<Buffer> {
  const bytes = await readImageFile(path);
  try {
    return await openImage(bytes, path)
      .rotate()
      .resize(maxSide, maxSide, { fit: 'inside', withoutEnlargement: true })
      .webp({ quality: 78 })
      .toBuffer();
  } catch (error) {
    throw decodeError(path, error);
  }
}
