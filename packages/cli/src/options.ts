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

/** `value` as a number that passes `valid`, or `fallback` when the option was not given; `rule` says what is valid. */
export function numberOption(
  value: number | string | undefined,
  flag: string,
  fallback: number,
  valid: (n: number) => boolean,
  rule: string,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || !valid(n)) throw new CliError('E_USAGE', `${flag} ${value}: ${rule}.`);
  return n;
}

/** A whole-number option of at least `min`. */
export const wholeOption = (
  value: number | string | undefined,
  flag: string,
  fallback: number,
  min: number,
) =>
  numberOption(
    value,
    flag,
    fallback,
    (n) => Number.isSafeInteger(n) && n >= min,
    `give a whole number ≥ ${min}`,
  );

/** The devices the inference commands take (`lora train` reads its device from the config). */
export const DEVICES = ['cpu', 'cuda', 'webgpu', 'auto'] as const;

/** --device, `cpu` when not given. */
export function deviceOption(value: string | undefined): (typeof DEVICES)[number] {
  const device = value ?? 'cpu';
  if (!(DEVICES as readonly string[]).includes(device)) {
    throw new CliError('E_USAGE', `--device ${device}: use one of ${DEVICES.join(', ')}.`);
  }
  return device as (typeof DEVICES)[number];
}
