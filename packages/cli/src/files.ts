import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CliError, EXIT_FAILURE } from './cli-error.ts';

/** Refuses to replace `paths` that exist unless the user passed --overwrite, and folders always. */
export function refuseExisting(paths: readonly string[], overwrite: boolean | undefined): void {
  const folder = paths.find((path) => statSync(path, { throwIfNoEntry: false })?.isDirectory());
  if (folder !== undefined) {
    throw new CliError(
      'E_USAGE',
      `${folder} is a folder; name the file to write, such as ${join(folder, `${basename(folder)}.safetensors`)}.`,
    );
  }
  if (overwrite) return;
  const existing = paths.filter((path) => existsSync(path));
  if (existing.length > 0) {
    throw new CliError(
      'E_EXISTS',
      `${existing.join(' and ')} already exist${existing.length === 1 ? 's' : ''}; pass --overwrite to replace ${existing.length === 1 ? 'it' : 'them'}, or choose another output.`,
    );
  }
}

/** Fails before any work starts when an input is missing, naming every missing one. */
export function requireExisting(paths: readonly string[]): void {
  const missing = paths.filter((path) => !existsSync(path));
  if (missing.length > 0) {
    throw new CliError(
      'E_NOT_FOUND',
      `${missing.join(' and ')} ${missing.length === 1 ? 'does' : 'do'} not exist; check the path${missing.length === 1 ? '' : 's'}.`,
      EXIT_FAILURE,
    );
  }
}

/** What a failed write means for the user, by the system's error code. */
const WRITE_PROBLEMS: Readonly<Record<string, string>> = {
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is used up',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EIO: 'an I/O error (a failing disk or a network mount that went away)',
  EFBIG: 'the file is larger than this system allows',
};

/** Whether `error` is a failed write that says something about the disk, not about the input. */
export function isDiskProblem(error: unknown): error is NodeJS.ErrnoException {
  return (
    error instanceof Error &&
    'code' in error &&
    typeof error.code === 'string' &&
    error.code in WRITE_PROBLEMS
  );
}

/** `writing <path> failed: <what it means> (<code>)`. */
export function describeWriteFailure(error: NodeJS.ErrnoException, fallbackPath?: string): string {
  const path = error.path ?? fallbackPath;
  return `writing ${path ?? 'a file'} failed: ${WRITE_PROBLEMS[error.code!] ?? error.message} (${error.code})`;
}

/** A failed write of `path` as the error to throw: `E_WRITE_FAILED` naming the file when the disk is at fault. */
function failedWrite(path: string, error: unknown): unknown {
  return isDiskProblem(error)
    ? new CliError('E_WRITE_FAILED', describeWriteFailure(error, path), EXIT_FAILURE)
    : error;
}

/**
 * A hidden name beside `path` for its next version: random, so it is never a file of the user's
 * (which a fixed `<path>.tmp` could be, and a failed write would delete) or another writer's.
 */
const temporaryFor = (path: string): string =>
  join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);

/**
 * Writes `path` through a temporary file beside it and a rename, so a reader never sees half of
 * it; when the write fails the temporary file goes too, and the error names `path`.
 */
export async function writeAtomically(
  path: string,
  write: (temporary: string) => void | Promise<void>,
): Promise<void> {
  const temporary = temporaryFor(path);
  try {
    await write(temporary);
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw failedWrite(path, error);
  }
}

/** `writeAtomically` for text, synchronously. */
export function writeTextAtomically(path: string, text: string): void {
  const temporary = temporaryFor(path);
  try {
    writeFileSync(temporary, text);
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw failedWrite(path, error);
  }
}

/** Appends `text` to `path`; a failed write names the file. */
export function appendText(path: string, text: string): void {
  try {
    appendFileSync(path, text);
  } catch (error) {
    throw failedWrite(path, error);
  }
}
