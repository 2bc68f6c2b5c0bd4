import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Size } from './buckets.ts';
import { ALPHA_BACKGROUND } from './image-io.ts';

/**
 * Bump when decoding changes (kernel, colour handling, layout), so old cache files stop matching
 * instead of feeding stale pixels to a new version.
 */
const CACHE_FORMAT_VERSION = 1;
const MAGIC = 0x4c524742; // 'LRGB'
const HEADER_BYTES = 16;

/**
 * Decoded, resized images on disk: 8-bit RGB before the crop, so random crops and flips still
 * vary per epoch while the expensive decode + resize happens once. The key hashes the source
 * file's content and every setting that changes the pixels, never the path: renaming or moving
 * images keeps their cache, and editing one invalidates it.
 */
export class ImageCache {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  static key(contentHash: string, resized: Size): string {
    const settings = JSON.stringify([
      CACHE_FORMAT_VERSION,
      contentHash,
      resized,
      'lanczos3',
      ALPHA_BACKGROUND,
    ]);
    return createHash('sha256').update(settings).digest('hex');
  }

  private path(key: string): string {
    return join(this.dir, key.slice(0, 2), `${key}.rgb`);
  }

  /** The cached pixels, or undefined when absent or unreadable (a damaged file is a miss). */
  async get(key: string, resized: Size): Promise<Uint8Array | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.path(key));
    } catch {
      return undefined;
    }
    const expected = resized[0] * resized[1] * 3;
    if (
      bytes.length !== HEADER_BYTES + expected ||
      bytes.readUInt32LE(0) !== MAGIC ||
      bytes.readUInt32LE(4) !== resized[0] ||
      bytes.readUInt32LE(8) !== resized[1]
    ) {
      return undefined;
    }
    return new Uint8Array(bytes.buffer, bytes.byteOffset + HEADER_BYTES, expected);
  }

  /** Writes atomically (temporary file + rename), so a crash never leaves a half file behind. */
  async set(key: string, resized: Size, rgb: Uint8Array): Promise<void> {
    const target = this.path(key);
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt32LE(MAGIC, 0);
    header.writeUInt32LE(resized[0], 4);
    header.writeUInt32LE(resized[1], 8);
    header.writeUInt32LE(3, 12);
    await mkdir(join(this.dir, key.slice(0, 2)), { recursive: true });
    const temporary = `${target}.${randomUUID()}.tmp`;
    try {
      await writeFile(temporary, Buffer.concat([header, rgb]));
      await rename(temporary, target);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }
}
