import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  detectLoraLayout,
  type LoraAdapter,
  type LoraLayout,
  loraFromTensors,
  type PeftAdapterConfig,
} from '@lora/adapters';
import { readSafetensors, type TensorData } from '@lora/safetensors';
import { aboutFile, CliError, EXIT_FAILURE } from './cli-error.ts';

/**
 * Largest file read whole as an adapter. LoRAs are a few MB to a few hundred MB; a bigger file
 * is a checkpoint, and reading it whole would need its size in memory.
 */
export const MAX_ADAPTER_BYTES = 2 * 1024 ** 3;

/** `adapter_config.json` is a few hundred bytes; anything near this is not one. */
export const MAX_ADAPTER_CONFIG_BYTES = 1024 * 1024;

export interface AdapterFile {
  readonly tensors: Map<string, TensorData>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly layout: LoraLayout;
  readonly adapter: LoraAdapter;
  /** The `adapter_config.json` beside a PEFT file, when there is one. */
  readonly peftConfig: PeftAdapterConfig | undefined;
}

/** The layout of a LoRA's tensor names, or undefined when they match none (a full checkpoint). */
export function loraLayoutOf(names: Iterable<string>): LoraLayout | undefined {
  try {
    return detectLoraLayout(names);
  } catch {
    return undefined;
  }
}

/** `adapter_config.json` in the same folder as a PEFT `adapter_model.safetensors`, if any. */
export async function readPeftConfigBeside(path: string): Promise<PeftAdapterConfig | undefined> {
  const configPath = join(dirname(path), 'adapter_config.json');
  if (!existsSync(configPath)) return undefined;
  const { size } = await stat(configPath);
  if (size > MAX_ADAPTER_CONFIG_BYTES) {
    throw new CliError(
      'E_TOO_LARGE',
      `${configPath} is ${size} bytes, above MAX_ADAPTER_CONFIG_BYTES (${MAX_ADAPTER_CONFIG_BYTES}); it is not an adapter_config.json.`,
      EXIT_FAILURE,
    );
  }
  try {
    return JSON.parse(await readFile(configPath, 'utf8')) as PeftAdapterConfig;
  } catch (error) {
    throw new CliError(
      'E_INVALID_FILE',
      `${configPath} is not valid JSON (${(error as Error).message}); fix or remove it.`,
      EXIT_FAILURE,
    );
  }
}

/** Reads a LoRA file whole (any layout) into the layout-independent form. */
export async function readAdapterFile(path: string): Promise<AdapterFile> {
  const { size } = await aboutFile(path, () => stat(path));
  if (size > MAX_ADAPTER_BYTES) {
    throw new CliError(
      'E_TOO_LARGE',
      `${path} is ${size} bytes, above MAX_ADAPTER_BYTES (${MAX_ADAPTER_BYTES}); a LoRA is far smaller, so this is probably a full checkpoint.`,
      EXIT_FAILURE,
    );
  }
  const { tensors, metadata } = await aboutFile(path, () => readSafetensors(path));
  const layout = loraLayoutOf(tensors.keys());
  if (layout === undefined) {
    throw new CliError(
      'E_NOT_A_LORA',
      `${path} has no LoRA tensors (no kohya lora_unet_/lora_te_, diffusers .lora., or PEFT base_model.model. names); "lora inspect ${path}" shows what it holds.`,
      EXIT_FAILURE,
    );
  }
  const peftConfig = layout === 'peft' ? await readPeftConfigBeside(path) : undefined;
  const adapter = await aboutFile(path, async () =>
    loraFromTensors(tensors, peftConfig === undefined ? {} : { peftConfig }),
  );
  return { tensors, metadata, layout, adapter, peftConfig };
}
/** What PEFT's `save_pretrained` names the weights in an adapter folder. */
const PEFT_ADAPTER_FILE = 'adapter_model.safetensors';

/** `path` when it is a regular file; otherwise a usage error saying what `takes` expects. */
export async function requireFile(path: string, takes: string): Promise<string> {
  const stats = await aboutFile(path, () => stat(path));
  if (stats.isFile()) return path;
  throw new CliError(
    'E_USAGE',
    `${path} is ${stats.isDirectory() ? 'a folder' : 'not a regular file'}; ${takes}.`,
  );
}

/**
 * The LoRA file `path` names: itself, or the adapter_model.safetensors inside a PEFT adapter
 * folder (whose adapter_config.json is then read beside it).
 */
export async function loraInput(path: string, takes: string): Promise<string> {
  const stats = await aboutFile(path, () => stat(path));
  if (stats.isDirectory()) {
    const inside = join(path, PEFT_ADAPTER_FILE);
    const found = await stat(inside).catch(() => undefined);
    if (found?.isFile()) return inside;
    throw new CliError('E_USAGE', `${path} is a folder without ${PEFT_ADAPTER_FILE} in it; ${takes}.`);
  }
  return requireFile(path, takes);
}
