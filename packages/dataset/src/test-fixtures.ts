import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp, { type Sharp } from 'sharp';

// Helpers for tests only (not exported from the package): every fixture is generated.

export const tempDir = (prefix = 'lora-dataset-'): Promise<string> => mkdtemp(join(tmpdir(), prefix));

export interface ImageSpec {
  width: number;
  height: number;
  format?: 'png' | 'jpeg' | 'webp' | 'gif' | 'avif' | 'tiff';
  /** EXIF orientation written into the file (JPEG). */
  orientation?: number;
  /** Adds an alpha channel: the left half transparent. */
  alpha?: boolean;
  /** Seed for the pixel pattern, so images differ in content. */
  seed?: number;
}

/** Pixel (x, y) of the generated pattern: a gradient that is easy to check after a crop or flip. */
export const patternPixel = (x: number, y: number, seed: number): [number, number, number] => [
  (x * 3 + seed) % 256,
  (y * 5 + seed * 7) % 256,
  (x + y + seed * 13) % 256,
];

export function patternRgb(width: number, height: number, seed = 0): Buffer {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set(patternPixel(x, y, seed), (y * width + x) * 3);
  }
  return data;
}

export async function imageBytes(spec: ImageSpec): Promise<Buffer> {
  const { width, height, seed = 0 } = spec;
  let pipeline: Sharp;
  if (spec.alpha) {
    const rgba = Buffer.alloc(width * height * 4);
    const rgb = patternRgb(width, height, seed);
    for (let i = 0; i < width * height; i++) {
      rgba.set(rgb.subarray(i * 3, i * 3 + 3), i * 4);
      rgba[i * 4 + 3] = i % width < width / 2 ? 0 : 255;
    }
    pipeline = sharp(rgba, { raw: { width, height, channels: 4 } });
  } else {
    pipeline = sharp(patternRgb(width, height, seed), { raw: { width, height, channels: 3 } });
  }
  const format = spec.format ?? 'png';
  const lossless = format === 'png' || format === 'tiff' || format === 'gif';
  pipeline = pipeline.toFormat(format, lossless ? {} : { quality: 95 });
  if (spec.orientation !== undefined) pipeline = pipeline.withMetadata({ orientation: spec.orientation });
  return pipeline.toBuffer();
}

export async function writeImage(path: string, spec: ImageSpec): Promise<string> {
  await writeText(path, await imageBytes(spec));
  return path;
}

export async function writeText(path: string, content: string | Uint8Array): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
  return path;
}

/** A 24-bit bottom-up BMP of the test pattern, built byte by byte. */
export function bmpBytes(width: number, height: number, seed = 0): Buffer {
  const stride = Math.ceil((width * 3) / 4) * 4;
  const bytes = Buffer.alloc(54 + stride * height);
  bytes.write('BM', 0, 'latin1');
  bytes.writeUInt32LE(bytes.length, 2);
  bytes.writeUInt32LE(54, 10);
  bytes.writeUInt32LE(40, 14);
  bytes.writeInt32LE(width, 18);
  bytes.writeInt32LE(height, 22);
  bytes.writeUInt16LE(1, 26);
  bytes.writeUInt16LE(24, 28);
  bytes.writeUInt32LE(stride * height, 34);
  for (let y = 0; y < height; y++) {
    const row = 54 + (height - 1 - y) * stride;
    for (let x = 0; x < width; x++) {
      const [r, g, b] = patternPixel(x, y, seed);
      bytes[row + x * 3] = b;
      bytes[row + x * 3 + 1] = g;
      bytes[row + x * 3 + 2] = r;
    }
  }
  return bytes;
}

/** GPT-2's byte → printable character table, which byte-level BPE vocabularies are written in. */
function byteLevelAlphabet(): string[] {
  const printable = [
    ...Array.from({ length: 94 }, (_, i) => 33 + i),
    ...Array.from({ length: 12 }, (_, i) => 161 + i),
    ...Array.from({ length: 82 }, (_, i) => 174 + i),
  ];
  const table = new Array<string>(256);
  let extra = 0;
  for (let byte = 0; byte < 256; byte++) {
    table[byte] = String.fromCodePoint(printable.includes(byte) ? byte : 256 + extra++);
  }
  return table;
}

export const SPECIAL_TOKENS = ['<unk>', '<s>', '</s>', '<|im_start|>', '<|im_end|>', '<pad>'] as const;

/**
 * A tiny byte-level BPE `tokenizer.json` (GPT-2 style: every byte is a token, a few merges),
 * with `<s>` prepended by its post-processor, and the specials above as added tokens.
 */
export function tinyBpeTokenizer(): { tokenizerJson: object; tokenizerConfig: Record<string, unknown> } {
  const vocab: Record<string, number> = {};
  for (const [id, char] of byteLevelAlphabet().entries()) vocab[char] = id;
  const merges = ['Ġ t', 'h e', 'Ġt he', 'l l'];
  for (const merge of merges) vocab[merge.replace(' ', '')] = Object.keys(vocab).length;
  const base = Object.keys(vocab).length;
  const added = SPECIAL_TOKENS.map((content, i) => ({
    id: base + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const bosId = base + 1;
  return {
    tokenizerJson: {
      version: '1.0',
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [
          { SpecialToken: { id: '<s>', type_id: 0 } },
          { Sequence: { id: 'A', type_id: 0 } },
          { Sequence: { id: 'B', type_id: 1 } },
        ],
        special_tokens: { '<s>': { id: '<s>', ids: [bosId], tokens: ['<s>'] } },
      },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        vocab,
        merges,
      },
    },
    tokenizerConfig: { bos_token: '<s>', eos_token: '</s>', pad_token: '<pad>', unk_token: '<unk>' },
  };
}
