/**
 * Timestamped run folders, as lora-scripts names them: `output_dir` may hold `{timestamp}` (local
 * time, `20261207-041215`, which sorts as it runs), `{date}` (`20261207`) and `{output_name}`.
 * `{output_name}` is filled in when the config is resolved; the time is filled in when a run
 * starts (`runFolder`), so every run of the config gets its own folder and `resume: auto` goes on
 * in the newest one.
 */
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

const PLACEHOLDER = /\{(\w+)\}/g;
/** The placeholders `output_dir` may hold. */
export const RUN_FOLDER_PLACEHOLDERS = ['timestamp', 'date', 'output_name'] as const;
const TIME = /\{(timestamp|date)\}/;

/** The placeholders in a path that are not ones `output_dir` takes. */
export function unknownPlaceholders(path: string): string[] {
  return [...path.matchAll(PLACEHOLDER)]
    .map((m) => m[1]!)
    .filter((name) => !(RUN_FOLDER_PLACEHOLDERS as readonly string[]).includes(name));
}

/** Whether the time placeholders sit anywhere but in the last folder name (where `runFolder` looks for earlier runs). */
export const timeOutsideLastSegment = (path: string): boolean => TIME.test(dirname(path));

/** `output_name`'s default from `output_dir`: its folder name without placeholders, else the folder above's. */
export function outputNameOf(outputDir: string): string {
  const folder = basename(outputDir);
  if (!folder.includes('{')) return folder;
  const name = folder.replace(PLACEHOLDER, '').replace(/^[-_. ]+|[-_. ]+$/g, '');
  return name === '' ? basename(dirname(outputDir)) : name;
}

/** `output_dir` with `{output_name}` filled in (the time placeholders stay for `runFolder`). */
export const withOutputName = (outputDir: string, outputName: string): string =>
  outputDir.replaceAll('{output_name}', outputName);

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** The values of `{date}` and `{timestamp}` at `now`, in local time. */
function timeValues(now: Date): Record<'date' | 'timestamp', string> {
  const date = `${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}`;
  return {
    date,
    timestamp: `${date}-${pad(now.getHours())}${pad(now.getMinutes())}${pad(now.getSeconds())}`,
  };
}

/**
 * The folder a run trains into: `outputDir` itself when it has no time placeholder; with one, the
 * newest existing folder of that pattern when `resume` is `auto` (the run to go on with), else the
 * pattern filled in at `now`.
 */
export function runFolder(outputDir: string, resume: string | undefined, now: Date): string {
  if (!TIME.test(outputDir)) return outputDir;
  if (resume === 'auto') {
    const newest = newestRun(outputDir);
    if (newest !== undefined) return newest;
  }
  const values = timeValues(now);
  return outputDir.replace(/\{(timestamp|date)\}/g, (_, name: 'date' | 'timestamp') => values[name]);
}

/**
 * The folder of `outputDir`'s latest run: `outputDir` itself when it has no time placeholder,
 * else the newest existing folder of its pattern (undefined when there is none yet).
 */
export function newestRun(outputDir: string): string | undefined {
  return TIME.test(outputDir) ? earlierRuns(outputDir).at(-1) : outputDir;
}

/** Existing folders of `outputDir`'s pattern, oldest first (the time sorts as text). */
export function earlierRuns(outputDir: string): string[] {
  const parent = dirname(outputDir);
  const pattern = new RegExp(
    `^${basename(outputDir)
      .split(/(\{timestamp\}|\{date\})/)
      .map((part) =>
        part === '{timestamp}'
          ? '\\d{8}-\\d{6}'
          : part === '{date}'
            ? '\\d{8}'
            : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
      )
      .join('')}$`,
  );
  let names: string[];
  try {
    names = readdirSync(parent, { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && pattern.test(entry.name))
      .map((entry) => entry.name);
  } catch {
    return [];
  }
  return names.sort().map((name) => join(parent, name));
}
