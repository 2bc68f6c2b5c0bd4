/**
 * One run per folder: `lora train` holds `<output_dir>/lora.lock` (pid, host, start time) from
 * before it touches the folder until it exits. A second `train`, `--resume` or `--overwrite` on
 * the folder is refused while the owner lives; a lock whose owner is gone (same host, no such
 * process) is stale and taken over with a notice.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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
  // Written whole under a private name, then linked into place: link() fails if a lock exists, so
  // no reader ever sees a half-written one and two runs cannot both succeed.
  const mine = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    writeFileSync(mine, `${JSON.stringify(me)}\n`);
  } catch (error) {
    throw lockFailed(path, error);
  }
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        placeLock(mine, path, me);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw lockFailed(path, error);
      }
      const owner = readOwner(path);
      const stale =
        owner === undefined || (owner.host === me.host && (owner.pid === me.pid || !isAlive(owner.pid)));
      if (!stale || attempt >= MAX_TAKEOVERS) throw locked(outputDir, path, owner, me.host);
      // A pid equal to ours is a lock left by an earlier process of the same number (a container
      // restarted after a crash): no live process but this one has it.
      if (!takeOver(path)) continue;
      notice(
        owner === undefined
          ? `removed an unreadable lock ${path}`
          : `removed a stale lock of pid ${owner.pid} (no longer running) from ${path}`,
      );
    }
  } finally {
    rmSync(mine, { force: true });
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    // Only our own lock: a folder cleared and re-locked by someone else keeps theirs.
    const owner = readOwner(path);
    if (owner?.pid === me.pid && owner.started === me.started) rmSync(path, { force: true });
  };
  process.once('exit', release);
  return () => {
    process.off('exit', release);
    release();
  };
}

/** Hard links that some filesystems (FAT, exFAT, some network mounts) do not make. */
const NO_HARD_LINK = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/** Links the finished lock file into place; an exclusive create where hard links do not exist. */
function placeLock(mine: string, path: string, me: LockOwner): void {
  try {
    linkSync(mine, path);
  } catch (error) {
    if (!NO_HARD_LINK.has((error as NodeJS.ErrnoException).code ?? '')) throw error;
    writeFileSync(path, `${JSON.stringify(me)}\n`, { flag: 'wx' });
  }
}

/** Stale locks one attempt takes over before it gives up (another run keeps winning the race). */
const MAX_TAKEOVERS = 3;

/**
 * Moves a stale lock out of the way under a name of its own, so that two runs taking over the
 * same stale lock cannot delete each other's new one; false when another run moved it first.
 */
function takeOver(path: string): boolean {
  const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    renameSync(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw lockFailed(path, error);
  }
  rmSync(aside, { force: true });
  return true;
}

function locked(outputDir: string, path: string, owner: LockOwner | undefined, host: string): CliError {
  if (owner === undefined) {
    return new CliError(
      'E_RUN_LOCKED',
      `${outputDir} is in use by another lora run that is starting; try again.`,
    );
  }
  return new CliError(
    'E_RUN_LOCKED',
    `${outputDir} is in use by another lora run (pid ${owner.pid} on ${owner.host}, started ${owner.started}). ` +
      (owner.host === host
        ? `Wait for it to finish, or stop it with \`kill -TERM ${owner.pid}\` (it saves a checkpoint and the adapter), or choose another output_dir.`
        : `If that run is gone, delete ${path}; otherwise choose another output_dir.`),
  );
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
