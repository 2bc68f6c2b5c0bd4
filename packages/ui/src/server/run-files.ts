import type { Dirent } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
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

/**
 * The pid of the `lora train` that holds the folder's lock (`lora.lock`), when it runs on this
 * machine; a lock left by a process that is gone is stale (the next run takes it over).
 */
export async function lockHolder(dir: string): Promise<number | undefined> {
  let owner: { pid?: unknown; host?: unknown };
  try {
    owner = JSON.parse(await readFile(join(dir, 'lora.lock'), 'utf8'));
  } catch {
    return undefined;
  }
  if (typeof owner.pid !== 'number' || owner.host !== hostname()) return undefined;
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
  }
  return owner.pid;
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
