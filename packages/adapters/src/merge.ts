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
import type { ClipTarget } from './sd-openclip-keys.ts';
import { createKeyResolver } from './sd-unet-keys.ts';
import { variantOf } from './variants/registry.ts';

export interface MergeOptions {
  /** Path of the merged checkpoint (written atomically; may equal the base path). */
  readonly output: string;
  /** Strength: `W + multiplier · (W' − W)`, W' the module's adapted weight (LoRA: `W + (alpha / rank) · up @ down`). Default 1. */
  readonly multiplier?: number;
  /**
   * Base weight key for a LoRA module path, or a key and which third of its rows (a q, k or v
   * module of a fused q/k/v tensor). By default: the path itself, without its component, or in
   * an original SD single-file layout (`model.diffusion_model.…` with the block layout read from
   * the base's keys, `cond_stage_model.transformer.…`, SD 2.x's OpenCLIP `cond_stage_model.model.…`).
   */
  readonly resolveKey?: (modulePath: string) => string | ClipTarget | undefined;
}

/** Base weight key (`key[i/3]` for the i-th third of a fused q/k/v) → module path, for every module merged. */
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
    // Each base weight and the modules that change it: one, or one per third of a fused q/k/v.
    const targets = new Map<string, Target[]>();
    const unmatched: string[] = [];
    for (const [path, module] of adapter) {
      const resolved = resolve(path);
      const { key, part } =
        typeof resolved === 'string' ? { key: resolved, part: undefined } : (resolved ?? {});
      if (key === undefined || !source.tensors.has(key)) {
        unmatched.push(path);
        continue;
      }
      const others = targets.get(key) ?? [];
      const clash = others.find(
        (other) => other.part === undefined || part === undefined || other.part === part,
      );
      if (clash) {
        throw new AdapterError(
          'E_MERGE_MISMATCH',
          `modules ${clash.path} and ${path} both target ${key} in ${base}; a LoRA holds one module per weight, so check the LoRA file`,
        );
      }
      targets.set(key, [...others, { path, module, ...(part === undefined ? {} : { part }) }]);
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
            : async () => applyModules(name, info, await source.read(name), target, multiplier),
      });
    }
    const metadata = 'shards' in source ? undefined : source.metadata;
    await writeSafetensors(options.output, output, metadata);
    return new Map(
      [...targets].flatMap(([key, modules]) =>
        modules.map(({ path, part }): [string, string] => [
          part === undefined ? key : `${key}[${part}/3]`,
          path,
        ]),
      ),
    );
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

/** A module merged into a base weight: all of it, or the rows of one third (`part`). */
interface Target {
  readonly path: string;
  readonly module: LoraModule;
  readonly part?: 0 | 1 | 2;
}

/** W + coefficient · up @ down for each module (on its rows), computed in float32 (float64 for F64 weights). */
function applyModules(
  name: string,
  info: TensorInfo,
  bytes: Uint8Array,
  targets: readonly Target[],
  multiplier: number,
): Uint8Array {
  const elements = info.shape.reduce((product, dim) => product * dim, 1);
  if (info.dtype !== 'F64' && info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16') {
    throw new AdapterError(
      'E_MERGE_MISMATCH',
      `${name} is ${info.dtype}; only float weights can take a LoRA`,
    );
  }
  const weight =
    info.dtype === 'F64'
      ? new Float64Array(bytes.buffer, bytes.byteOffset, elements)
      : toFloat32(bytes, info.dtype);
  for (const { module, part } of targets) {
    const [rows = 0, ...rest] = info.shape;
    const shape = part === undefined ? info.shape : [rows / 3, ...rest];
    const size = elements / (part === undefined ? 1 : 3);
    const view = weight.subarray((part ?? 0) * size, ((part ?? 0) + 1) * size);
    applyModule(name, shape, view, module, multiplier);
  }
  return info.dtype === 'F64' ? bytes : fromFloat32(weight as Float32Array, info.dtype);
}

/** `weight` (of `shape`) += the module's update, in place. */
function applyModule(
  name: string,
  shape: readonly number[],
  weight: Float32Array | Float64Array,
  module: LoraModule,
  multiplier: number,
): void {
  const variant = variantOf(module.variant);
  const update = variant.weightShape(module.tensors);
  const elements = shape.reduce((product, dim) => product * dim, 1);
  if (
    !Number.isInteger(shape[0]) ||
    shape[0] !== update[0] ||
    elements !== update.reduce((product, dim) => product * dim, 1)
  ) {
    throw new AdapterError(
      'E_MERGE_MISMATCH',
      `${name} is [${shape.join(', ')}] but the LoRA update is [${update.join(', ')}]`,
    );
  }
  const values = Object.fromEntries(
    Object.entries(module.tensors).map(([role, t]) => [
      role,
      { shape: t.shape, data: floats(t.data, t.dtype) },
    ]),
  );
  variant.merge(weight, shape, values, scaleOfModule(module), multiplier);
}

function floats(data: ArrayBufferView, dtype: Dtype): Float32Array {
  return toFloat32(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), dtype);
}
