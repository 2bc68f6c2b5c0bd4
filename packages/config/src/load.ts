import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { type LoraConfig, resolveConfig } from './config.ts';
import { ConfigError, type ConfigIssue } from './errors.ts';
import { type PendingIssue, translateIssues } from './issues.ts';
import { PATH_KEYS } from './keys.ts';
import { CONFIG_KEYS, type ConfigKey, configSchema, KEY_INFO, type KeyInfo } from './schema.ts';
import { parseYaml, type YamlSource } from './source.ts';
import { suggestKey } from './suggest.ts';

/** A config is a few kilobytes; a bigger file is the wrong file (a dataset, a checkpoint). */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/** Past this many problems the file is not a config at all; the rest are summarised in one line. */
export const MAX_ISSUES = 100;

export interface LoadConfigOptions {
  /**
   * `key=value` overrides applied over the file (the CLI's `--set`). Values are read as YAML
   * (`lora_rank=8`, `target_modules=[to_q, to_v]`); an empty or `null` value removes the key.
   * Relative paths in them resolve against `cwd`, not the config's folder.
   */
  overrides?: readonly string[];
  /** The folder the config path and `--set` paths resolve against (default: `process.cwd()`). */
  cwd?: string;
}

/** The result of the `safe…` forms: the config, or the error the throwing form would throw. */
export type ConfigResult = { success: true; value: LoraConfig } | { success: false; error: ConfigError };

/**
 * Reads, validates and resolves a YAML config: defaults applied, relative paths resolved against the
 * file's folder, and every referenced input checked to exist. Throws one `ConfigError` that lists
 * every problem with its line and column.
 */
export async function loadConfig(path: string, options: LoadConfigOptions = {}): Promise<LoraConfig> {
  const file = resolve(options.cwd ?? process.cwd(), path);
  return loadConfigText(await readConfigFile(file), file, options);
}

/** `loadConfig` returning `{ success: false, error }` instead of throwing a ConfigError. */
export async function safeLoadConfig(path: string, options?: LoadConfigOptions): Promise<ConfigResult> {
  return settle(() => loadConfig(path, options));
}

/**
 * `loadConfig` of text not yet saved as `path` (an editor's buffer): the same checks, the
 * referenced files included, and the same issues, as if the text were the file.
 */
export async function loadConfigText(
  yamlText: string,
  path: string,
  options: LoadConfigOptions = {},
): Promise<LoraConfig> {
  const file = resolve(options.cwd ?? process.cwd(), path);
  if (Buffer.byteLength(yamlText) > MAX_CONFIG_BYTES) throw tooLarge(file);
  const checked = validate(yamlText, file, options);
  const found = await checkPaths(checked);
  const issues = [...checked.issues, ...found.map((issue) => checked.place(issue))];
  if (issues.length > 0 || !checked.config) throw configError(file, issues);
  return checked.config;
}

/** `loadConfigText` returning `{ success: false, error }` instead of throwing a ConfigError. */
export async function safeLoadConfigText(
  yamlText: string,
  path: string,
  options?: LoadConfigOptions,
): Promise<ConfigResult> {
  return settle(() => loadConfigText(yamlText, path, options));
}

/**
 * Validates and resolves YAML text as if read from `filename` (its folder anchors relative paths).
 * Unlike `loadConfig` it does not touch the filesystem, so referenced files need not exist.
 */
export function parseConfig(yamlText: string, filename: string, options: LoadConfigOptions = {}): LoraConfig {
  const file = resolve(options.cwd ?? process.cwd(), filename);
  if (Buffer.byteLength(yamlText) > MAX_CONFIG_BYTES) throw tooLarge(file);
  const { config, issues } = validate(yamlText, file, options);
  if (issues.length > 0 || !config) throw configError(file, issues);
  return config;
}

/** `parseConfig` returning `{ success: false, error }` instead of throwing a ConfigError. */
export function safeParseConfig(
  yamlText: string,
  filename: string,
  options?: LoadConfigOptions,
): ConfigResult {
  try {
    return { success: true, value: parseConfig(yamlText, filename, options) };
  } catch (error) {
    if (ConfigError.isInstance(error)) return { success: false, error };
    throw error;
  }
}

async function settle(load: () => Promise<LoraConfig>): Promise<ConfigResult> {
  try {
    return { success: true, value: await load() };
  } catch (error) {
    if (ConfigError.isInstance(error)) return { success: false, error };
    throw error;
  }
}

async function readConfigFile(file: string): Promise<string> {
  const fail = (code: 'E_CONFIG_NOT_FOUND' | 'E_CONFIG_UNREADABLE', message: string, cause?: unknown) => {
    const issue = code === 'E_CONFIG_NOT_FOUND' ? 'file_not_found' : 'unreadable';
    return new ConfigError(code, file, [{ code: issue, path: [], file, line: 1, column: 1, message }], {
      cause,
    });
  };
  try {
    const info = await stat(file);
    if (info.isDirectory())
      throw fail('E_CONFIG_UNREADABLE', 'this is a folder; pass the YAML config file inside it');
    if (info.size > MAX_CONFIG_BYTES) throw tooLarge(file);
    return await readFile(file, 'utf8');
  } catch (error) {
    if (ConfigError.isInstance(error)) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw fail('E_CONFIG_NOT_FOUND', 'config file not found (`lora init` writes a starting point)', error);
    throw fail('E_CONFIG_UNREADABLE', `cannot read the config file: ${(error as Error).message}`, error);
  }
}

function tooLarge(file: string): ConfigError {
  const message = `larger than ${MAX_CONFIG_BYTES / 1024} KiB: this is not a config file`;
  return new ConfigError('E_CONFIG_TOO_LARGE', file, [
    { code: 'too_large', path: [], file, line: 1, column: 1, message },
  ]);
}

function configError(file: string, issues: ConfigIssue[]): ConfigError {
  const kept = [...issues].sort(byPosition(file)).slice(0, MAX_ISSUES);
  if (issues.length > MAX_ISSUES) {
    const last = kept[kept.length - 1]!;
    kept.push({ ...last, path: [], message: `… and ${issues.length - MAX_ISSUES} more problems` });
  }
  const code = issues.some((issue) => issue.code === 'syntax') ? 'E_CONFIG_SYNTAX' : 'E_CONFIG_INVALID';
  return new ConfigError(code, file, kept);
}

/** File order: the config's issues by position, then the overrides' in argument order. */
function byPosition(file: string) {
  return (a: ConfigIssue, b: ConfigIssue) =>
    Number(a.file !== file) - Number(b.file !== file) ||
    (a.file === file ? a.line - b.line || a.column - b.column : 0);
}

interface Validated {
  config?: LoraConfig;
  issues: ConfigIssue[];
  /** The merged data (file + overrides) as plain values, when it was a mapping. */
  data?: Record<string, unknown>;
  /** Keys whose value failed validation (their paths are not checked on disk). */
  failed: Set<string>;
  absolute: (key: string, value: string) => string;
  place: (issue: PendingIssue) => ConfigIssue;
}

/** Parse, merge overrides, validate and resolve; never throws for a config problem. */
function validate(text: string, file: string, options: LoadConfigOptions): Validated {
  const cwd = options.cwd ?? process.cwd();
  const parsed = parseYaml(text, file);
  const overrides = readOverrides(options.overrides ?? []);
  const place = (issue: PendingIssue): ConfigIssue => {
    const override = overrides.sources.get(String(issue.path[0]));
    const position = !override
      ? parsed.source.locate(issue.path, issue.atKey)
      : issue.atKey && issue.path.length === 1
        ? { line: 1, column: 1 }
        : override.locate(issue.path.slice(1));
    return {
      code: issue.code,
      path: issue.path,
      file: (override ?? parsed.source).file,
      ...position,
      message: issue.message,
    };
  };
  const home = homedir();
  const absolute = (key: string, value: string) => {
    const expanded = value === '~' || value.startsWith('~/') ? home + value.slice(1) : value;
    return isAbsolute(expanded)
      ? resolve(expanded)
      : resolve(overrides.sources.has(key) ? cwd : dirname(file), expanded);
  };
  const result: Validated = {
    issues: [...parsed.issues, ...overrides.issues],
    failed: new Set(),
    absolute,
    place,
  };
  if (parsed.issues.length > 0) return result;
  if (!isMapping(parsed.data)) {
    const message =
      parsed.data == null
        ? 'the file is empty: write one `key: value` per line (`lora init` writes a starting point)'
        : `expected a mapping of \`key: value\` lines, got ${Array.isArray(parsed.data) ? 'a list' : 'a single value'}`;
    result.issues.push({ code: 'invalid_type', path: [], file, line: 1, column: 1, message });
    return result;
  }
  const data: Record<string, unknown> = { ...parsed.data };
  for (const [key, value] of overrides.values) {
    if (value == null) delete data[key];
    else data[key] = value;
  }
  result.data = data;
  const checked = configSchema.safeParse(data, { reportInput: true });
  if (!checked.success) {
    const pending = translateIssues(checked.error.issues).map((issue) =>
      issue.code === 'conflict' ? withDropHint(issue, overrides.sources) : issue,
    );
    for (const issue of pending) result.failed.add(String(issue.path[0]));
    result.issues.push(...pending.map(place));
  }
  if (result.issues.length === 0 && checked.success) result.config = resolveConfig(checked.data, absolute);
  return result;
}

/** Exclusive keys where one came from `--set`: the other is in the file, and `--set` can drop it. */
const EXCLUSIVE_KEYS: readonly (readonly [string, string])[] = [
  ['epochs', 'max_steps'],
  ['warmup_steps', 'warmup_ratio'],
];

function withDropHint(issue: PendingIssue, fromOverrides: ReadonlyMap<string, unknown>): PendingIssue {
  for (const pair of EXCLUSIVE_KEYS) {
    if (!pair.includes(String(issue.path[0]))) continue;
    const inFile = pair.filter((key) => !fromOverrides.has(key));
    if (inFile.length !== 1) continue;
    return {
      ...issue,
      message: `${issue.message}; add --set ${inFile[0]}=null to drop the file's ${inFile[0]}`,
    };
  }
  return issue;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
  );
}

interface Overrides {
  values: Map<string, unknown>;
  sources: Map<string, YamlSource>;
  issues: ConfigIssue[];
}

/** Reads `key=value` arguments; each value is a small YAML document of its own. */
function readOverrides(assignments: readonly string[]): Overrides {
  const overrides: Overrides = { values: new Map(), sources: new Map(), issues: [] };
  for (const argument of assignments) {
    const file = `--set ${argument}`;
    const equals = argument.indexOf('=');
    const key = argument.slice(0, Math.max(equals, 0)).trim();
    const issue = (code: ConfigIssue['code'], message: string) =>
      overrides.issues.push({ code, path: key ? [key] : [], file, line: 1, column: 1, message });
    if (equals <= 0) {
      issue('syntax', 'expected key=value, e.g. --set lora_rank=8');
      continue;
    }
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
      issue('unknown_key', `unknown key "${key}"${suggestKey(key)}`);
      continue;
    }
    const value = parseYaml(argument.slice(equals + 1), file, equals + 1);
    if (value.issues.length > 0) {
      overrides.issues.push(...value.issues.map((syntax) => ({ ...syntax, path: [key] })));
      continue;
    }
    overrides.values.set(key as ConfigKey, value.data);
    overrides.sources.set(key, value.source);
  }
  return overrides;
}

/** Checks that every referenced input exists (and is a file or a folder as the key needs). */
async function checkPaths(checked: Validated): Promise<PendingIssue[]> {
  const data = checked.data;
  if (!data) return [];
  const jobs: Promise<PendingIssue | undefined>[] = [];
  for (const key of PATH_KEYS) {
    const value = data[key];
    if (checked.failed.has(key) || value === undefined || (key === 'resume' && value === 'auto')) continue;
    const entries: [(string | number)[], unknown][] = Array.isArray(value)
      ? value.map((entry, index) => [[key, index], entry])
      : [[[key], value]];
    for (const [path, entry] of entries)
      if (typeof entry === 'string')
        jobs.push(checkPath(path, entry, checked.absolute(key, entry), KEY_INFO[key].path!));
  }
  return (await Promise.all(jobs)).filter((issue) => issue !== undefined);
}

async function checkPath(
  path: (string | number)[],
  written: string,
  absolute: string,
  kind: NonNullable<KeyInfo['path']>,
): Promise<PendingIssue | undefined> {
  const shown = written === absolute ? absolute : `${absolute} (from "${written}")`;
  try {
    const info = await stat(absolute);
    if ((kind === 'folder' || kind === 'output') && !info.isDirectory())
      return { code: 'invalid_value', path, message: `${shown} is a file; expected a folder` };
    if (kind === 'file' && !info.isFile())
      return { code: 'invalid_value', path, message: `${shown} is a folder; expected a file` };
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (kind === 'output' && code === 'ENOENT') return undefined;
    if (code === 'ENOTDIR')
      return {
        code: 'invalid_value',
        path,
        message: `${shown} goes through a file as if it were a folder; check the path`,
      };
    if (code === 'ENOENT') return { code: 'file_not_found', path, message: `${shown} does not exist` };
    return { code: 'unreadable', path, message: `cannot read ${shown}: ${(error as Error).message}` };
  }
}
