import { createHash } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { makeThumbnail, writeFileAtomically } from '@lora/dataset';

/** Longer side of a thumbnail: sharp on a grid cell of about 180 CSS pixels at 2× density. */
export const THUMBNAIL_SIDE = 320;

/** Thumbnails made at once: each is a full decode, and the machine trains or labels meanwhile. */
export const THUMBNAIL_CONCURRENCY = 2;

/** Bumped when the thumbnails' look changes, so old cached ones are not served. */
const THUMBNAIL_VERSION = 1;

/**
 * Thumbnails cached as WebP files in `<project>/.cache/lora-ui/thumbnails/` (the `.cache/`
 * folder `lora init` ignores in git), keyed by the image's path, size and modification time,
 * so an edited image gets a new one. Requests for the same image share one decode.
 */
export class Thumbnails {
  readonly #dir: string;
  readonly #pending = new Map<string, Promise<Buffer>>();
  readonly #queue: (() => void)[] = [];
  #running = 0;

  constructor(projectRoot: string) {
    this.#dir = join(projectRoot, '.cache', 'lora-ui', 'thumbnails');
  }

  /** The WebP bytes of `image`'s thumbnail; a file sharp cannot decode rejects with `E_IMAGE_DECODE`. */
  async get(image: string): Promise<Buffer> {
    const { size, mtimeMs } = await stat(image);
    const key = createHash('sha256')
      .update(JSON.stringify([THUMBNAIL_VERSION, THUMBNAIL_SIDE, image, size, mtimeMs]))
      .digest('hex')
      .slice(0, 32);
    const pending = this.#pending.get(key);
    if (pending) return pending;
    const made = this.#make(image, join(this.#dir, `${key}.webp`)).finally(() => this.#pending.delete(key));
    this.#pending.set(key, made);
    return made;
  }

  async #make(image: string, cached: string): Promise<Buffer> {
    const hit = await readFile(cached).catch(() => undefined);
    if (hit) return hit;
    await this.#slot();
    try {
      const bytes = await makeThumbnail(image, THUMBNAIL_SIDE);
      // The cache is a convenience: a read-only project still gets its thumbnails.
      await mkdir(this.#dir, { recursive: true })
        .then(() => writeFileAtomically(cached, bytes))
        .catch(() => undefined);
      return bytes;
    } finally {
      // The slot passes straight to the next waiter, so no newcomer slips in between.
      const next = this.#queue.shift();
      if (next) next();
      else this.#running -= 1;
    }
  }

  async #slot(): Promise<void> {
    if (this.#running < THUMBNAIL_CONCURRENCY) this.#running += 1;
    else await new Promise<void>((resolve) => this.#queue.push(resolve));
  }
}
