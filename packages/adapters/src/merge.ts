import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Dtype, TensorInfo } from '@lora/safetensors';
import {
  fromFloat32,
  openSafetensors,
  openShardedSafetensors,
  readSafetensors,
  toFloat32,
  type WritableTensor,
  writeSafetensors,
} from '@lora/safetensors';
import { type LoraAdapter, type LoraModule, scaleOfModule } from './adapter.ts';
import { AdapterError } from './errors.ts';
import { loraFromTensors } from './layout.ts';
import type { PeftAdapterConfig } from './peft.ts';
import { createKeyResolver } from './sd-unet-keys.ts';
import { variantOf } from './variants/registry.ts';

export interface MergeOptions {
  /** Path of the merged checkpoint (written atomically; may equal the base path). */
  readonly output: string;
  /** Strength: `W + multiplier · (W' − W)`, W' the module's adapted weight (LoRA: `W + (alpha / rank) · up @ down`). Default 1. */
  readonly multiplier?: number;
  /**
   * Base weight key for a LoRA module path. By default: the path itself, without its
   * component, or in an original SD single-file layout (`model.diffusion_model.…` with the
   * block layout read from the base's keys, `cond_stage_model.transformer.…`).
   */
  readonly resolveKey?: (modulePath: string) => string | undefined;
}

/** Base weight key → module path, for every module merged. */
export type MergeReport = ReadonlyMap<string, string>;

/**
 * Writes `base` with every LoRA module merged in, by its variant's formula (LoRA: `W + multiplier · (alpha / rank) · up @ down`)
 * for linear layers and convolutions (k×k down with 1×1 up). Tensor by tensor, so memory holds
 * one base tensor at a time; each keeps its dtype (F16 / BF16 / F32 rounded to nearest even).
 * `base` is a `.safetensors` file or a sharded `….index.json`; `lora` is an adapter or a LoRA
 * file in any layout (a PEFT file uses the `adapter_config.json` beside it).
 */
export async function mergeLora(
  base: string,
  lora: LoraAdapter | string,
  options: MergeOptions,
): Promise<MergeReport> {
  const adapter = typeof lora === 'string' ? await readLoraFile(lora) : lora;
  const source = base.endsWith('.index.json')
    ? await openShardedSafetensors(base)
    : await openSafetensors(base);
  try {
    const resolve = options.resolveKey ?? createKeyResolver(source.tensors.keys());
    const targets = new Map<string, [string, LoraModule]>();
    const unmatched: string[] = [];
    for (const [path, module] of adapter) {
      const key = resolve(path);
      if (key === undefined || !source.tensors.has(key)) unmatched.push(path);
      else if (targets.has(key)) {
        throw new AdapterError(
          'E_MERGE_MISMATCH',
          `modules ${targets.get(key)![0]} and ${path} both target ${key} in ${base}; a LoRA holds one module per weight, so check the LoRA file`,
        );
      } else targets.set(key, [path, module]);
    }
    if (unmatched.length > 0) {
      throw new AdapterError(
        'E_MERGE_MISMATCH',
        `${unmatched.length} LoRA module(s) have no weight in ${base}, e.g. ${unmatched.slice(0, 3).join(', ')}; ` +
          'check that the LoRA was trained on this base model (same architecture and block layout: an SD 1.5 LoRA ' +
          'does not fit SDXL) and that the base is a full checkpoint, not a LoRA or another component',
      );
    }
    const multiplier = options.multiplier ?? 1;
    const output = new Map<string, WritableTensor>();
    for (const [name, info] of source.tensors) {
      const target = targets.get(name);
      output.set(name, {
        dtype: info.dtype,
        shape: info.shape,
        data:
          target === undefined
            ? () => source.read(name)
            : async () => applyModule(name, info, await source.read(name), target[1], multiplier),
      });
    }
    const metadata = 'shards' in source ? undefined : source.metadata;
    await writeSafetensors(options.output, output, metadata);
    return new Map([...targets].map(([key, [path]]) => [key, path]));
  } finally {
    await source.close();
  }
}

async function readLoraFile(path: string): Promise<LoraAdapter> {
  const { tensors } = await readSafetensors(path);
  const configPath = join(dirname(path), 'adapter_config.json');
  const peftConfig = existsSync(configPath)
    ? (JSON.parse(await readFile(configPath, 'utf8')) as PeftAdapterConfig)
    : undefined;
  return loraFromTensors(tensors, peftConfig === undefined ? {} : { peftConfig });
}

/** W + coefficient · up @ down, computed in float32 (float64 for F64 weights). */
function applyModule(
  name: string,
  info: TensorInfo,
  bytes: Uint8Array,
  module: LoraModule,
  multiplier: number,
): Uint8Array {
  const variant = variantOf(module.variant);
  const update = variant.weightShape(module.tensors);
  const elements = info.shape.reduce((product, dim) => product * dim, 1);
  if (info.shape[0] !== update[0] || elements !== update.reduce((product, dim) => product * dim, 1)) {
    throw new AdapterError(
      'E_MERGE_MISMATCH',
      `${name} is [${info.shape.join(', ')}] but the LoRA update is [${update.join(', ')}]`,
    );
  }
  const values = Object.fromEntries(
    Object.entries(module.tensors).map(([role, t]) => [
      role,
      { shape: t.shape, data: floats(t.data, t.dtype) },
    ]),
  );
  const scale = scaleOfModule(module);
  if (info.dtype === 'F64') {
    const weight = new Float64Array(bytes.buffer, bytes.byteOffset, elements);
    variant.merge(weight, info.shape, values, scale, multiplier);
    return bytes;
  }
  if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16') {
    throw new AdapterError(
      'E_MERGE_MISMATCH',
      `${name} is ${info.dtype}; only float weights can take a LoRA`,
    );
  }
  const weight = toFloat32(bytes, info.dtype);
  variant.merge(weight, info.shape, values, scale, multiplier);
  return fromFloat32(weight, info.dtype);
}

function floats(data: ArrayBufferView, dtype: Dtype): Float32Array {
  return toFloat32(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), dtype);
}
