import type { Dirent } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { safeParseConfig } from '@lora/config';
import { projectRelative } from './project-path.ts';

// Reading the run folders `lora train` writes (packages/cli/README.md, "Run folder"): the UI
// follows a run through its files only, so a run started in a terminal shows the same way.

/** Folder levels searched for run folders (`output/<name>/` is 2 deep). */
export const MAX_RUN_DEPTH = 4;

/** Most bytes of `metrics.jsonl` read at once: a reader catching up on a long run takes several reads. */
export const MAX_METRICS_CHUNK = 4 * 1024 * 1024;

/** Inside a run folder or holding no runs: not searched. */
const NOT_RUNS = new Set([
  'node_modules',
  'models',
  'checkpoints',
  'samples',
  'logs',
  'graphs',
  'cache',
  'best',
]);

/** A `metrics.jsonl` line: a step's (`loss`, `lr`, …) or a validation's (`val/loss`). */
export type MetricsRecord = { step: number; epoch?: number } & Record<string, number>;

/** Run folders under the project: those holding `runs.jsonl`, relative to the project. */
export async function findRuns(root: string): Promise<string[]> {
  const found: string[] = [];
  const visit = async (dir: string, depth: number): Promise<void> => {
    const entries: Dirent[] = await readdir(dir, { withFileTypes: true }).catch(() => []);
    if (entries.some((entry) => entry.isFile() && entry.name === 'runs.jsonl')) {
      found.push(projectRelative(root, dir));
      return;
    }
    if (depth >= MAX_RUN_DEPTH) return;
    for (const entry of entries) {
      if (entry.isDirectory() && !entry.name.startsWith('.') && !NOT_RUNS.has(entry.name))
        await visit(join(dir, entry.name), depth + 1);
    }
  };
  await visit(root, 0);
  return found.sort();
}

/** Parses complete lines; a line that is not a metrics record (none should be) is left out. */
export function parseMetrics(text: string): MetricsRecord[] {
  const records: MetricsRecord[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const record = JSON.parse(line) as unknown;
      if (
        typeof record === 'object' &&
        record !== null &&
        typeof (record as { step?: unknown }).step === 'number'
      )
        records.push(record as MetricsRecord);
    } catch {
      // A torn line cannot happen (lines are appended whole); anything else is not ours to show.
    }
  }
  return records;
}

/** Where a reader of `metrics.jsonl` stands: the file (its inode, replaced when a resume rewrites it) and the bytes read. */
export interface MetricsCursor {
  readonly file: number;
  readonly offset: number;
}

/** `Last-Event-ID`'s form of a cursor. */
export const cursorId = (cursor: MetricsCursor): string => `${cursor.file}:${cursor.offset}`;

export function parseCursor(id: string | undefined | null): MetricsCursor | undefined {
  const match = /^(\d+):(\d+)$/.exec(id ?? '');
  return match ? { file: Number(match[1]), offset: Number(match[2]) } : undefined;
}

/**
 * The complete lines of `metrics.jsonl` after `cursor`. A resumed run rewrites the file without
 * the steps it trains again (a new inode) and a shorter file is a new one too: then the reading
 * starts over and `reset` says the records read before are void.
 */
export async function readMetrics(
  dir: string,
  cursor: MetricsCursor | undefined,
): Promise<{ records: MetricsRecord[]; cursor: MetricsCursor; reset: boolean } | undefined> {
  const path = join(dir, 'metrics.jsonl');
  const handle = await open(path, 'r').catch(() => undefined);
  if (handle === undefined) return undefined;
  try {
    const info = await handle.stat();
    const same = cursor !== undefined && cursor.file === info.ino && cursor.offset <= info.size;
    const start = same ? cursor.offset : 0;
    const length = Math.min(info.size - start, MAX_METRICS_CHUNK);
    const bytes = Buffer.alloc(length);
    const { bytesRead } = await handle.read(bytes, 0, length, start);
    // Only whole lines: the writer appends a line at a time, and a half-read one waits for the next read.
    const end = bytes.subarray(0, bytesRead).lastIndexOf(0x0a) + 1;
    return {
      records: parseMetrics(bytes.subarray(0, end).toString('utf8')),
      cursor: { file: info.ino, offset: start + end },
      reset: !same && cursor !== undefined,
    };
  } finally {
    await handle.close();
  }
}

/** A file of `samples/`: `step-<n>.txt` (an LLM's answers), `step-<n>-<i>.png` (SD images, `-grid`). */
export interface SampleFile {
  /** Relative to the project. */
  readonly path: string;
  readonly step: number;
  readonly kind: 'text' | 'image';
}

const SAMPLE_NAME = /^step-(\d+)(?:-[\w]+)?\.(txt|png)$/;

export async function listSamples(root: string, dir: string): Promise<SampleFile[]> {
  const names = await readdir(join(dir, 'samples')).catch(() => [] as string[]);
  return names
    .flatMap((name) => {
      const match = SAMPLE_NAME.exec(name);
      if (!match) return [];
      const kind = match[2] === 'txt' ? ('text' as const) : ('image' as const);
      return [{ path: projectRelative(root, join(dir, 'samples', name)), step: Number(match[1]), kind }];
    })
    .sort((a, b) => a.step - b.step || (a.path < b.path ? -1 : 1));
}

/** Whether a sample path (relative to the project) names a file `listSamples` offers. */
export const isSamplePath = (path: string): boolean => {
  const parts = path.split('/');
  return parts.length >= 2 && parts.at(-2) === 'samples' && SAMPLE_NAME.test(parts.at(-1)!);
};

/** `runs.jsonl`: one line per start of the folder's run (`resumed_from` on a resume). */
export interface RunStart {
  readonly started_at: string;
  readonly resumed_from: string | null;
}

export async function readStarts(dir: string): Promise<RunStart[]> {
  const text = await readFile(join(dir, 'runs.jsonl'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as RunStart];
      } catch {
        return [];
      }
    });
}

/** `lora.lock`, which `lora train` holds from before it touches the folder until it exits. */
export interface RunLock {
  readonly pid: number;
  readonly host: string;
  readonly started: string;
}

/** Whose a folder's lock is, as far as this machine can tell. */
export type LockOwner =
  | { readonly kind: 'none' }
  /** A live `lora train` on this machine. */
  | { readonly kind: 'running'; readonly lock: RunLock }
  /** Another machine's (a shared disk): nothing here can check or signal it. */
  | { readonly kind: 'elsewhere'; readonly lock: RunLock }
  /** No such process: the run ended without removing its lock (killed, or the machine restarted). */
  | { readonly kind: 'gone'; readonly lock: RunLock }
  /** The pid is another program's now: the run's lock was left behind and the number reused. */
  | { readonly kind: 'other'; readonly lock: RunLock; readonly command: string };

export async function readLock(dir: string): Promise<RunLock | undefined> {
  try {
    const lock = JSON.parse(await readFile(join(dir, 'lora.lock'), 'utf8')) as Partial<RunLock>;
    return Number.isSafeInteger(lock.pid) && (lock.pid as number) > 0 && typeof lock.host === 'string'
      ? { pid: lock.pid!, host: lock.host, started: String(lock.started) }
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a command line (`/proc/<pid>/cmdline`'s arguments) is `lora train`: the lora CLI's
 * script (`…/cli/bin.js`, as `lora ui` and pnpm's shim start it, or the `lora` link npm puts on
 * the PATH) with `train` as its first argument that is not an option.
 */
export function isLoraTrain(args: readonly string[]): boolean {
  const script = args.findIndex((arg, index) => index > 0 && /(^|\/)(lora|cli\/bin\.js)$/.test(arg));
  return script > 0 && args.slice(script + 1).find((arg) => !arg.startsWith('-')) === 'train';
}

/** The command line of a process (Linux's /proc); undefined where there is no /proc, null when the process is gone. */
async function commandOf(pid: number): Promise<string[] | null | undefined> {
  if (process.platform !== 'linux') return undefined;
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter((arg) => arg !== '');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/**
 * Who holds the folder's lock. A pid is a live `lora train` only when the lock names this
 * machine, the process exists and (on Linux, where /proc shows it) its command line is `lora
 * train`: a lock that a killed run left behind may name a number another program has now.
 */
export async function lockOwner(dir: string): Promise<LockOwner> {
  const lock = await readLock(dir);
  if (lock === undefined) return { kind: 'none' };
  if (lock.host !== hostname()) return { kind: 'elsewhere', lock };
  try {
    process.kill(lock.pid, 0);
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return { kind: 'gone', lock };
  }
  const command = await commandOf(lock.pid);
  if (command === null) return { kind: 'gone', lock };
  if (command !== undefined && !isLoraTrain(command))
    return { kind: 'other', lock, command: command.join(' ') };
  return { kind: 'running', lock };
}

/** The pid of the `lora train` that holds the folder's lock on this machine (see lockOwner). */
export async function lockHolder(dir: string): Promise<number | undefined> {
  const owner = await lockOwner(dir);
  return owner.kind === 'running' ? owner.lock.pid : undefined;
}

/**
 * How a run that holds no lock ended, from its files: `runs.jsonl` (it started), the checkpoint
 * of its last step in `metrics.jsonl` (every stop, Ctrl-C included, and the end save one; an
 * error does not), and whether that checkpoint is the run's last step (`max_steps`, or the
 * epochs of `epochs`, from its `config.yaml` snapshot). 'idle': it never started.
 */
export async function endedState(dir: string): Promise<'idle' | 'finished' | 'stopped' | 'failed'> {
  if ((await readStarts(dir)).length === 0) return 'idle';
  const { step = 0 } = await lastMetrics(dir);
  let checkpoint: { step?: unknown; epoch?: unknown };
  try {
    checkpoint = JSON.parse(await readFile(join(dir, 'checkpoints', `step-${step}`, 'state.json'), 'utf8'));
  } catch {
    return 'failed';
  }
  const snapshot = join(dir, 'config.yaml');
  const parsed = safeParseConfig(await readFile(snapshot, 'utf8').catch(() => ''), snapshot);
  if (!parsed.success) return 'stopped';
  const { max_steps: maxSteps, epochs } = parsed.value;
  const done =
    maxSteps !== undefined ? Number(checkpoint.step) >= maxSteps : Number(checkpoint.epoch) >= (epochs ?? 0);
  return done ? 'finished' : 'stopped';
}

/** The last step and losses of a run, from the end of `metrics.jsonl`. */
export async function lastMetrics(dir: string): Promise<{ step?: number; loss?: number; valLoss?: number }> {
  const path = join(dir, 'metrics.jsonl');
  const info = await stat(path).catch(() => undefined);
  if (!info) return {};
  const handle = await open(path, 'r');
  try {
    const length = Math.min(info.size, 64 * 1024);
    const bytes = Buffer.alloc(length);
    await handle.read(bytes, 0, length, info.size - length);
    const text = bytes.toString('utf8');
    // A tail that starts inside a line drops that part line.
    const records = parseMetrics(length < info.size ? text.slice(text.indexOf('\n') + 1) : text);
    const steps = records.filter((record) => typeof record['loss'] === 'number');
    const validations = records.filter((record) => typeof record['val/loss'] === 'number');
    return {
      ...(steps.length > 0 ? { step: steps.at(-1)!.step, loss: steps.at(-1)!['loss'] } : {}),
      ...(validations.length > 0 ? { valLoss: validations.at(-1)!['val/loss'] } : {}),
    };
  } finally {
    await handle.close();
  }
}
