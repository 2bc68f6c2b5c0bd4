/**
 * One run per folder: `lora train` holds `<output_dir>/lora.lock` (pid, host, start time) from
 * before it touches the folder until it exits. A second `train`, `--resume` or `--overwrite` on
 * the folder is refused while the owner lives; a lock whose owner is gone (same host, no such
 * process) is stale and taken over with a notice.
 */
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { CliError } from '../cli-error.ts';

export const LOCK_FILE = 'lora.lock';

interface LockOwner {
  pid: number;
  host: string;
  started: string;
}

/** Takes the folder's lock (the folder exists); returns the function that releases it. */
export function lockRunFolder(outputDir: string, notice: (message: string) => void): () => void {
  const path = join(outputDir, LOCK_FILE);
  const me: LockOwner = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(path, `${JSON.stringify(me)}\n`, { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw lockFailed(path, error);
    }
    const owner = readOwner(path);
    if (owner !== undefined && (owner.host !== me.host || isAlive(owner.pid))) {
      throw new CliError(
        'E_RUN_LOCKED',
        `${outputDir} is in use by another lora run (pid ${owner.pid} on ${owner.host}, started ${owner.started}). ` +
          (owner.host === me.host
            ? `Wait for it to finish, or stop it with \`kill -TERM ${owner.pid}\` (it saves a checkpoint and the adapter), or choose another output_dir.`
            : `If that run is gone, delete ${path}; otherwise choose another output_dir.`),
      );
    }
    notice(
      owner === undefined
        ? `removed an unreadable lock ${path}`
        : `removed a stale lock of pid ${owner.pid} (no longer running) from ${path}`,
    );
    unlinkSync(path);
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    // Only our own lock: a folder cleared and re-locked by someone else keeps theirs.
    if (readOwner(path)?.pid === me.pid) unlinkSync(path);
  };
  process.once('exit', release);
  return () => {
    process.off('exit', release);
    release();
  };
}

function readOwner(path: string): LockOwner | undefined {
  try {
    const owner = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockOwner>;
    return Number.isSafeInteger(owner.pid) && typeof owner.host === 'string'
      ? { pid: owner.pid!, host: owner.host, started: String(owner.started) }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Signal 0 checks that the process exists; EPERM means it does, under another user. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function lockFailed(path: string, error: unknown): CliError {
  const code = (error as NodeJS.ErrnoException).code;
  const reason =
    code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
      ? `${dirname(path)} is not writable (a read-only disk, or owned by another user)`
      : (error as Error).message;
  return new CliError(
    'E_OUTPUT_UNWRITABLE',
    `cannot write the run lock: ${reason}. Choose an output_dir you can write to.`,
  );
}
