/**
 * PEFT LoRA adapters as `peft` saves and loads them: `adapter_model.safetensors`
 * (`base_model.model.<module>.lora_A.weight` / `lora_B.weight`, metadata `{"format": "pt"}`) and
 * `adapter_config.json`. Writing produces what `PeftModel.from_pretrained` reads as it is;
 * reading checks an `init_adapter` against the model and the LoRA settings before training
 * starts from it.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  AdapterError,
  adapterFromParameters,
  fromPeft,
  type LoraAdapter,
  type PeftAdapterConfig,
  parameterValues,
  splitParameterName,
  toPeft,
} from '@lora/adapters';
import { writeFileAtomically } from '@lora/dataset';
import { readSafetensors, writeSafetensors } from '@lora/safetensors';
import { ModelError } from '../model-error.ts';
import type { LlamaSpec } from './config.ts';
import { type LlamaLoraOptions, llamaLoraShapes } from './model.ts';

export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
export const ADAPTER_CONFIG = 'adapter_config.json';

/** Real adapter configs are under 2 KB; a larger file is refused unparsed. */
export const MAX_ADAPTER_CONFIG_BYTES = 1 << 20;

export interface WriteLlamaAdapterOptions {
  /** Written as `base_model_name_or_path`: a Hub id or the model folder. */
  baseModelNameOrPath: string;
}

/**
 * Writes the trained `values` (by parameter name, float32) into `folder` as a PEFT adapter, with
 * `use_dora` / `use_rslora` as PEFT writes them. Every parameter of `lora` on `spec` must be
 * present with its full shape.
 */
export async function writeLlamaAdapter(
  folder: string,
  spec: LlamaSpec,
  lora: Pick<LlamaLoraOptions, 'targetModules' | 'network' | 'rank' | 'alpha' | 'rslora' | 'dropout'>,
  values: ReadonlyMap<string, Float32Array>,
  options: WriteLlamaAdapterOptions,
): Promise<void> {
  const adapter = llamaLoraAdapter(spec, lora, values);
  const { tensors, config } = toPeft(adapter, {
    baseModelNameOrPath: options.baseModelNameOrPath,
    taskType: 'CAUSAL_LM',
    ...(lora.rslora ? { rslora: true } : {}),
  });
  await writeSafetensors(join(folder, ADAPTER_WEIGHTS), tensors, { format: 'pt' });
  const full = { ...config, lora_dropout: lora.dropout ?? 0, bias: 'none' };
  const target = join(folder, ADAPTER_CONFIG);
  await writeFileAtomically(target, `${JSON.stringify(full, null, 2)}\n`);
}

/** The trained `values` (by parameter name) as an adapter, every parameter of `lora` on `spec` present. */
export function llamaLoraAdapter(
  spec: LlamaSpec,
  lora: Pick<LlamaLoraOptions, 'targetModules' | 'network' | 'rank' | 'alpha' | 'rslora'>,
  values: ReadonlyMap<string, Float32Array>,
): LoraAdapter {
  const shapes = llamaLoraShapes(spec, lora);
  try {
    return adapterFromParameters(
      [...shapes].map(([name, shape]) => ({ name, shape })),
      values,
      networkOf(lora),
    );
  } catch (error) {
    throw new ModelError(
      'E_MODEL_ADAPTER',
      `the trained adapter cannot be written: ${(error as Error).message}`,
    );
  }
}

/** The variant settings files are written and read with. */
const networkOf = (lora: Pick<LlamaLoraOptions, 'network' | 'rank' | 'alpha' | 'rslora'>) => ({
  network: lora.network ?? 'lora',
  rank: lora.rank,
  alpha: lora.alpha,
  ...(lora.rslora ? { rslora: true } : {}),
});

/**
 * A PEFT adapter from its folder, or its `adapter_model.safetensors` with `adapter_config.json`
 * beside it; `what` names it in errors (`init adapter`, `adapter`).
 */
export async function readPeftAdapter(
  path: string,
  what: string,
): Promise<{ adapter: LoraAdapter; weightsPath: string }> {
  const found = await stat(path).catch(() => undefined);
  if (!found) {
    throw new ModelError(
      'E_MODEL_ADAPTER',
      `${what} ${path} does not exist; give the folder holding ${ADAPTER_WEIGHTS} and ${ADAPTER_CONFIG}`,
    );
  }
  const weightsPath = found.isDirectory() ? join(path, ADAPTER_WEIGHTS) : path;
  const config = await readAdapterConfig(join(dirname(weightsPath), ADAPTER_CONFIG));
  const fail = (problem: string) => new ModelError('E_MODEL_ADAPTER', `${what} ${weightsPath} ${problem}`);
  const { tensors } = await readSafetensors(weightsPath).catch((error: unknown) => {
    throw fail(`cannot be read: ${(error as Error).message}`);
  });
  try {
    return { adapter: fromPeft(tensors, config), weightsPath };
  } catch (error) {
    throw fail(`is not a PEFT LoRA: ${(error as Error).message}`);
  }
}

/**
 * Reads a PEFT adapter as start values for `lora` on `spec`, by parameter name. The adapter must
 * train exactly the modules `lora.targetModules` selects, with the same rank, alpha and shapes.
 */
export async function readLlamaAdapter(
  path: string,
  spec: LlamaSpec,
  lora: Pick<LlamaLoraOptions, 'targetModules' | 'network' | 'rank' | 'alpha' | 'rslora'>,
): Promise<Map<string, Float32Array>> {
  const { adapter, weightsPath } = await readPeftAdapter(path, 'init adapter');
  const fail = (problem: string) =>
    new ModelError('E_MODEL_ADAPTER', `init adapter ${weightsPath} ${problem}`);

  const shapes = llamaLoraShapes(spec, lora);
  const network = lora.network ?? 'lora';
  const expected = [...new Set([...shapes.keys()].map((name) => splitParameterName(name, network)!.path))];
  const extra = [...adapter.keys()].filter((module) => !expected.includes(module));
  if (extra.length > 0) {
    throw fail(
      `trains ${leaves(extra)} (e.g. ${extra[0]}), which target_modules does not select; add them to target_modules`,
    );
  }
  const missing = expected.filter((module) => !adapter.has(module));
  if (missing.length > 0) {
    throw fail(
      `has no weights for ${leaves(missing)} (e.g. ${missing[0]}); set target_modules to the adapter's (${leaves([...adapter.keys()])})`,
    );
  }
  try {
    return parameterValues(
      adapter,
      [...shapes].map(([name, shape]) => ({ name, shape })),
      networkOf(lora),
    );
  } catch (error) {
    if (!AdapterError.isInstance(error)) throw error;
    throw new ModelError('E_MODEL_ADAPTER', `init adapter ${weightsPath}: ${error.message}`);
  }
}

/** The distinct module names (`q_proj`, …) of module paths, sorted. */
const leaves = (paths: readonly string[]) =>
  [...new Set(paths.map((p) => p.slice(p.lastIndexOf('.') + 1)))].sort().join(', ');

async function readAdapterConfig(path: string): Promise<PeftAdapterConfig> {
  const size = await stat(path).then(
    (s) => s.size,
    () => {
      throw new ModelError(
        'E_MODEL_ADAPTER',
        `${path} does not exist; a PEFT adapter has adapter_config.json next to ${ADAPTER_WEIGHTS}`,
      );
    },
  );
  if (size > MAX_ADAPTER_CONFIG_BYTES) {
    throw new ModelError(
      'E_MODEL_ADAPTER',
      `${path} is ${size} bytes, over the ${MAX_ADAPTER_CONFIG_BYTES}-byte limit`,
    );
  }
  let config: unknown;
  try {
    config = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new ModelError('E_MODEL_ADAPTER', `${path} is not valid JSON: ${(error as Error).message}`);
  }
  const record = config as Partial<PeftAdapterConfig> | null;
  if (record?.peft_type !== 'LORA' || typeof record.lora_alpha !== 'number') {
    throw new ModelError(
      'E_MODEL_ADAPTER',
      `${path} is not a LoRA adapter config (needs "peft_type": "LORA" and a numeric "lora_alpha")`,
    );
  }
  return record as PeftAdapterConfig;
}
