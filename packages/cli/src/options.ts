import { CliError } from './cli-error.ts';

type RawOptions = Record<string, unknown>;

const flagOf = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/**
 * The argument parser turns `--output 2024` into a number and a repeated flag into an array; for
 * options that name a file or a word, both must be one string.
 */
export function stringOptions<T>(options: RawOptions, keys: readonly string[]): T {
  const result: RawOptions = { ...options };
  for (const key of keys) {
    const value = options[key];
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      throw new CliError('E_USAGE', `${flagOf(key)} was given ${value.length} times; give it once.`);
    }
    result[key] = String(value);
  }
  return result as T;
}

/** Options that may repeat (`--lora a --lora b`, `--set k=v`): always a list of strings. */
export function listOption(value: unknown): string[] {
  return [value ?? []].flat().map(String);
}
