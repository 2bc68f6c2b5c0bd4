import { DatasetError } from './errors.ts';
import { ALPHA_BACKGROUND, decodeError, openImage, readImageFile } from './image-io.ts';

/** Input side of the WD14 (SmilingWolf) taggers. */
export const TAGGER_IMAGE_SIZE = 448;

/** Input side and normalisation of OpenAI CLIP (`CLIPImageProcessor` defaults). */
export const CLIP_IMAGE_SIZE = 224;
export const CLIP_IMAGE_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_IMAGE_STD: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export interface ClipImageOptions {
  /** Shortest side after the resize, and the side of the centre crop; default 224. */
  size?: number;
  /** Per-channel RGB mean and standard deviation of the 0–1 values; default CLIP's. */
  mean?: readonly [number, number, number];
  std?: readonly [number, number, number];
}

/**
 * Largest model input side accepted. Real taggers and CLIP models take 224–518; the size may
 * come from a downloaded config file, and a huge one would allocate gigabytes per image.
 */
export const MAX_MODEL_INPUT_SIZE = 4096;

/** Decodes upright (EXIF applied), alpha flattened onto white, 8-bit sRGB, `size`×`size` by `fit`. */
async function decodeRgb(path: string, size: number, fit: 'contain' | 'cover'): Promise<Uint8Array> {
  if (!Number.isInteger(size) || size < 1 || size > MAX_MODEL_INPUT_SIZE) {
    throw new DatasetError(
      'E_INVALID_OPTIONS',
      `The model input size must be a whole number from 1 to ${MAX_MODEL_INPUT_SIZE} (MAX_MODEL_INPUT_SIZE), got ${size}.`,
    );
  }
  const bytes = await readImageFile(path);
  try {
    const { data, info } = await openImage(bytes, path)
      .rotate()
      .flatten({ background: ALPHA_BACKGROUND })
      .toColourspace('srgb')
      .resize(size, size, { fit, position: 'centre', background: ALPHA_BACKGROUND, kernel: 'cubic' })
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== size || info.height !== size) {
      throw new Error(`decoded ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x3`);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } catch (error) {
    throw decodeError(path, error);
  }
}

/**
 * An image as WD14 taggers take it: padded to a centred square with white, resized (bicubic) to
 * `size`×`size`, float32 HWC in **BGR** order with unnormalised 0–255 values — the layout of
 * SmilingWolf's exports (`[N, size, size, 3]` once stacked). EXIF orientation is applied and
 * transparency flattened onto white, as the reference taggers do.
 */
export async function prepareTaggerImage(path: string, size = TAGGER_IMAGE_SIZE): Promise<Float32Array> {
  const rgb = await decodeRgb(path, size, 'contain');
  const out = new Float32Array(rgb.length);
  for (let i = 0; i < rgb.length; i += 3) {
    out[i] = rgb[i + 2]!;
    out[i + 1] = rgb[i + 1]!;
    out[i + 2] = rgb[i]!;
  }
  return out;
}

/**
 * An image as CLIP's image processor makes it: shortest side resized (bicubic) to `size`,
 * centre-cropped to `size`×`size`, RGB scaled to 0–1 and normalised with `mean`/`std`, float32
 * CHW (`[N, 3, size, size]` once stacked). EXIF applied, transparency flattened onto white.
 */
export async function prepareClipImage(path: string, options: ClipImageOptions = {}): Promise<Float32Array> {
  const size = options.size ?? CLIP_IMAGE_SIZE;
  const mean = options.mean ?? CLIP_IMAGE_MEAN;
  const std = options.std ?? CLIP_IMAGE_STD;
  const rgb = await decodeRgb(path, size, 'cover');
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const scale = 1 / (255 * std[c]!);
    const shift = mean[c]! / std[c]!;
    for (let i = 0; i < plane; i++) out[c * plane + i] = rgb[i * 3 + c]! * scale - shift;
  }
  return out;
}
