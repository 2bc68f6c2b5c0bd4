import type { Dirent } from 'node:fs';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, extname, join, relative, sep } from 'node:path';
import {
  configTemplate,
  configWarnings,
  MAX_CONFIG_BYTES,
  newestRun,
  SCHEMA_FILE,
  safeLoadConfigText,
  toJSONSchema,
} from '@lora/config';
import { writeFileAtomically } from '@lora/dataset';
import { UiError } from '../errors.ts';
import { projectRelative, resolveInside } from './project-path.ts';

/** Folder levels searched for configs (`configs/x.yaml` is 1 deep; examples nest a little more). */
export const MAX_CONFIG_DEPTH = 3;

/** Folders that hold no configs of the user's: run outputs (their config.yaml snapshots), models, dependencies. */
const NOT_CONFIGS = new Set(['node_modules', 'output', 'models']);

const isYaml = (name: string) => ['.yaml', '.yml'].includes(extname(name).toLowerCase());

/** The project's YAML files, `configs/` first, as paths relative to the project. */
export async function findConfigs(root: string): Promise<string[]> {
  const found: string[] = [];
  const visit = async (dir: string, depth: number): Promise<void> => {
    const entries: Dirent[] = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (entry.isFile() && isYaml(entry.name)) found.push(projectRelative(root, join(dir, entry.name)));
      else if (
        entry.isDirectory() &&
        depth < MAX_CONFIG_DEPTH &&
        !entry.name.startsWith('.') &&
        !NOT_CONFIGS.has(entry.name)
      )
        await visit(join(dir, entry.name), depth + 1);
    }
  };
  await visit(root, 0);
  const rank = (path: string) => (path.startsWith('configs/') ? 0 : 1);
  return found.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/** A config path from a request: inside the project and a `.yaml` / `.yml` file, so no other file is ever written. */
export async function configPath(root: string, path: string): Promise<string> {
  if (!isYaml(path)) {
    throw new UiError('E_BAD_REQUEST', `${path} is not a YAML file (.yaml or .yml); configs are YAML.`);
  }
  return resolveInside(root, path);
}

export async function readConfig(root: string, path: string): Promise<string> {
  const file = await configPath(root, path);
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) throw new UiError('E_NOT_FOUND', `${path} does not exist.`, 404);
  if (info.size > MAX_CONFIG_BYTES) {
    throw new UiError(
      'E_BAD_REQUEST',
      `${path} is larger than ${MAX_CONFIG_BYTES / 1024} KiB: not a config.`,
    );
  }
  return readFile(file, 'utf8');
}

/** A problem of the config as the page shows it: where, and `lora config validate`'s words. */
export interface ConfigProblem {
  /** The config's path relative to the project; a referenced file's problem is still placed in the config. */
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** `lora_rank`, `target_modules[1]`; empty for the file as a whole. */
  readonly key: string;
  readonly message: string;
}

export type Validation =
  | {
      valid: true;
      task: string;
      outputDir: string;
      /** The folder of its latest run (`output_dir`, or the newest of its `{timestamp}` pattern); none yet: undefined. */
      runFolder?: string;
      warnings: { key: string; message: string }[];
    }
  | { valid: false; problems: ConfigProblem[] };

const keyOf = (path: readonly (string | number)[]) =>
  path.map((part, index) => (typeof part === 'number' ? `[${part}]` : index ? `.${part}` : part)).join('');

/**
 * Validates the text as `lora config validate` validates the file at `path` (the same loader, so
 * the same messages, with referenced files checked on disk), without saving it.
 */
export async function validateConfig(root: string, path: string, text: string): Promise<Validation> {
  const file = await configPath(root, path);
  const result = await safeLoadConfigText(text, file);
  if (!result.success) {
    return {
      valid: false,
      problems: result.error.issues.map((issue) => ({
        file: projectRelative(root, issue.file),
        line: issue.line,
        column: issue.column,
        key: keyOf(issue.path),
        message: issue.message,
      })),
    };
  }
  return {
    valid: true,
    task: result.value.task,
    outputDir: projectRelative(root, result.value.output_dir),
    ...runFolderOf(root, result.value.output_dir),
    warnings: configWarnings(result.value).map((warning) => ({
      key: keyOf(warning.path),
      message: warning.message,
    })),
  };
}

/**
 * Replaces the config atomically. `expected` is the text the page started from (null: a new
 * file); when the file says something else now, nothing is written (`E_CONFIG_CONFLICT`).
 */
export async function saveConfig(root: string, path: string, expected: string | null, text: string) {
  const file = await configPath(root, path);
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES) {
    throw new UiError('E_BAD_REQUEST', `The config is larger than ${MAX_CONFIG_BYTES / 1024} KiB.`);
  }
  const current = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  if (current !== expected) {
    throw new UiError(
      'E_CONFIG_CONFLICT',
      current === null
        ? `${path} was deleted since the page read it; nothing was saved.`
        : expected === null
          ? `${path} exists already; nothing was saved. Open it, or save under another name.`
          : `${path} changed on disk since the page read it; nothing was saved.`,
      409,
    );
  }
  await writeFileAtomically(file, text);
}

/** The tasks a new config can be for: `lora init`'s templates. */
export const CONFIG_TASKS = ['sd', 'llm'] as const;
export type ConfigTask = (typeof CONFIG_TASKS)[number];

/**
 * A new config at `path` from `lora init`'s template for `task` (nothing written when a file is
 * there), its paths starting at the project folder; an SD config trains on `dataset` when one is
 * given, with the dataset's metadata.csv when it has one. The config's JSON Schema goes beside it
 * when none is there, as `lora init` does, for editors. Returns the text written.
 */
export async function newConfig(
  root: string,
  path: string,
  task: ConfigTask,
  dataset: string | undefined,
): Promise<string> {
  const file = await configPath(root, path);
  const values: Record<string, unknown> = {};
  if (dataset !== undefined) {
    if (task !== 'sd') {
      throw new UiError(
        'E_BAD_REQUEST',
        'Only an SD config trains on an image folder; an LLM config reads train_data.',
      );
    }
    const dir = await resolveInside(root, dataset);
    if (!(await stat(dir).catch(() => undefined))?.isDirectory()) {
      throw new UiError('E_NOT_FOUND', `${dataset} is not a folder of the project.`, 404);
    }
    values['train_data_dir'] = `./${dataset}`;
    values['metadata_path'] = existsSync(join(dir, 'metadata.csv'))
      ? `./${dataset ? `${dataset}/` : ''}metadata.csv`
      : null;
  }
  const projectFolder = relative(dirname(file), root).split(sep).join('/');
  const text = configTemplate(task, { ...(projectFolder ? { projectFolder } : {}), values });
  await mkdir(dirname(file), { recursive: true });
  await saveConfig(root, path, null, text);
  const schema = join(dirname(file), SCHEMA_FILE);
  if (!existsSync(schema)) await writeFileAtomically(schema, `${JSON.stringify(toJSONSchema(), null, 2)}\n`);
  return text;
}

function runFolderOf(root: string, outputDir: string): { runFolder?: string } {
  const newest = newestRun(outputDir);
  return newest === undefined ? {} : { runFolder: projectRelative(root, newest) };
}
