import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DatasetError } from './errors.ts';

/** A file written beside its target under a temporary name: renamed over it, or removed. */
export interface StagedFile {
  readonly path: string;
  commit(): Promise<void>;
  discard(): Promise<void>;
}

function writeFailed(path: string, error: unknown): DatasetError {
  return new DatasetError(
    'E_WRITE_FAILED',
    `Cannot write ${path} (${(error as Error).message}); check that its folder exists and is writable.`,
    { path, cause: error },
  );
}

/**
 * Writes `data` to a hidden temporary file in `path`'s folder (same file system, so the rename
 * is atomic; a random name, so two writers never share one). Nothing replaces `path` until
 * `commit`, which lets a caller check that the target did not change meanwhile.
 */
export async function stageFile(path: string, data: string | Uint8Array): Promise<StagedFile> {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const discard = () => rm(temporary, { force: true });
  try {
    await writeFile(temporary, data);
  } catch (error) {
    await discard();
    throw writeFailed(path, error);
  }
  return {
    path,
    discard,
    async commit() {
      try {
        await rename(temporary, path);
      } catch (error) {
        await discard();
        throw writeFailed(path, error);
      }
    },
  };
}

/** Replaces `path` with `data` so that a reader sees the old file or the new one, never half. */
export async function writeFileAtomically(path: string, data: string | Uint8Array): Promise<void> {
  await (await stageFile(path, data)).commit();
}
