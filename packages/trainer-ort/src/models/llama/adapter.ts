/**
 * PEFT LoRA adapters as `peft` saves and loads them: `adapter_model.safetensors`
 * (`base_model.model.<module>.lora_A.weight` / `lora_B.weight`, metadata `{"format": "pt"}`) and
 * `adapter_config.json`. Writing produces what `PeftModel.from_pretrained` reads as it is;
 * reading checks an `init_adapter` against the model and the LoRA settings before training
 * starts from it.
 */
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fromPeft, type LoraAdapter, type PeftAdapterConfig, toPeft } from '@lora/adapters';
import { readSafetensors, type TensorData, toFloat32, writeSafetensors } from '@lora/safetensors';
import { ModelError } from '../model-error.ts';
import type { LlamaSpec } from './config.ts';
import { type LlamaLoraOptions, llamaLoraShapes } from './model.ts';

export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
export const ADAPTER_CONFIG = 'adapter_config.json';

/** Real adapter configs are under 2 KB; a larger file is refused unparsed. */
export const MAX_ADAPTER_CONFIG_BYTES = 1 << 20;

const A = '.lora_A.weight';
const B = '.lora_B.weight';

export interface WriteLlamaAdapterOptions {
  /** Written as `base_model_name_or_path`: a Hub id or the model folder. */
  baseModelNameOrPath: string;
}

/**
 * Writes the trained LoRA `values` (by parameter name, float32) into `folder` as a PEFT
 * adapter. Every parameter of `lora` on `spec` must be present with its full shape.
 */
export async function writeLlamaAdapter(
  folder: string,
  spec: LlamaSpec,
  lora: Pick<LlamaLoraOptions, 'targetModules' | 'rank' | 'alpha' | 'dropout'>,
  values: ReadonlyMap<string, Float32Array>,
  options: WriteLlamaAdapterOptions,
): Promise<void> {
  const shapes = llamaLoraShapes(spec, lora.targetModules, lora.rank);
  const tensor = (name: string): TensorData => {
    const shape = shapes.get(name)!;
    const data = values.get(name);
    const size = shape[0]! * shape[1]!;
    if (data?.length !== size) {
      throw new ModelError(
        'E_MODEL_ADAPTER',
        `adapter value ${name} ${data ? `has ${data.length} values` : 'is missing'}; its shape [${shape.join(', ')}] needs ${size}`,
      );
    }
    return { dtype: 'F32', shape, data };
  };
  const adapter = new Map(
    [...shapes.keys()]
      .filter((name) => name.endsWith(A))
      .map((name) => {
        const path = name.slice(0, -A.length);
        return [path, { down: tensor(name), up: tensor(`${path}${B}`), alpha: lora.alpha }] as const;
      }),
  );
  const { tensors, config } = toPeft(adapter, {
    baseModelNameOrPath: options.baseModelNameOrPath,
    taskType: 'CAUSAL_LM',
  });
  await writeSafetensors(join(folder, ADAPTER_WEIGHTS), tensors, { format: 'pt' });
  const full = { ...config, lora_dropout: lora.dropout ?? 0, bias: 'none' };
  const target = join(folder, ADAPTER_CONFIG);
  await writeFile(`${target}.partial`, `${JSON.stringify(full, null, 2)}\n`);
  await rename(`${target}.partial`, target);
}

/**
 * Reads a PEFT adapter (its folder, or its `adapter_model.safetensors` with `adapter_config.json`
 * beside it) as start values for `lora` on `spec`, by parameter name. The adapter must train
 * exactly the modules `lora.targetModules` selects, with the same rank, alpha and shapes.
 */
export async function readLlamaAdapter(
  path: string,
  spec: LlamaSpec,
  lora: Pick<LlamaLoraOptions, 'targetModules' | 'rank' | 'alpha'>,
): Promise<Map<string, Float32Array>> {
  const found = await stat(path).catch(() => undefined);
  if (!found) {
    throw new ModelError(
      'E_MODEL_ADAPTER',
      `init adapter ${path} does not exist; give the folder holding ${ADAPTER_WEIGHTS} and ${ADAPTER_CONFIG}`,
    );
  }
  const weightsPath = found.isDirectory() ? join(path, ADAPTER_WEIGHTS) : path;
  const config = await readAdapterConfig(join(dirname(weightsPath), ADAPTER_CONFIG));
  const fail = (problem: string) =>
    new ModelError('E_MODEL_ADAPTER', `init adapter ${weightsPath} ${problem}`);
  const { tensors } = await readSafetensors(weightsPath).catch((error: unknown) => {
    throw fail(`cannot be read: ${(error as Error).message}`);
  });
  let adapter: LoraAdapter;
  try {
    adapter = fromPeft(tensors, config);
  } catch (error) {
    throw fail(`is not a PEFT LoRA: ${(error as Error).message}`);
  }

  const shapes = llamaLoraShapes(spec, lora.targetModules, lora.rank);
  const expected = [...shapes.keys()].filter((n) => n.endsWith(A)).map((n) => n.slice(0, -A.length));
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
  const values = new Map<string, Float32Array>();
  for (const [module, { down, up, alpha }] of adapter) {
    const rank = down.shape[0];
    if (rank !== lora.rank) throw fail(`has rank ${rank} at ${module}; set lora_rank: ${rank}`);
    if (alpha !== lora.alpha) throw fail(`has alpha ${alpha} at ${module}; set lora_alpha: ${alpha}`);
    for (const [suffix, tensor] of [
      [A, down],
      [B, up],
    ] as const) {
      const name = `${module}${suffix}`;
      const shape = shapes.get(name)!;
      if (tensor.shape.join() !== shape.join()) {
        throw fail(
          `has ${name} of shape [${tensor.shape.join(', ')}], but this model needs [${shape.join(', ')}]; was it trained on another base model?`,
        );
      }
      const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
      try {
        values.set(name, toFloat32(bytes, tensor.dtype));
      } catch {
        throw fail(`stores ${name} as ${tensor.dtype}; LoRA weights must be F32, F16, BF16 or F64`);
      }
    }
  }
  return values;
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
