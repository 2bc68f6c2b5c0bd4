import { closeSync, openSync, readSync } from 'node:fs';
import { resolve } from 'node:path';
import { cast, type DType, type Graph, type Tensor } from '@lora/engine';
import {
  type Dtype,
  type FloatDtype,
  fromFloat32,
  openSafetensors,
  SafetensorsError,
  type SafetensorsFile,
  type SafetensorsHeader,
  toFloat32,
} from '@lora/safetensors';
import { TrainerOrtError } from './errors.ts';

/** safetensors dtype names → graph element types (the ones onnxruntime can hold). */
const FROM_SAFETENSORS: Readonly<Record<string, DType>> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  F64: 'float64',
  I64: 'int64',
  I32: 'int32',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};

/** Graph float types → the safetensors dtype of the same bytes. */
const TO_SAFETENSORS: Readonly<Partial<Record<DType, Dtype>>> = {
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  float64: 'F64',
};

/** Ops that keep a frozen weight's values and element order. */
const VALUE_PRESERVING = new Set(['Cast', 'Reshape', 'Identity']);

/**
 * The values of a frozen weight as float32, read from the initializer behind it (through casts
 * and reshapes, as checkpoints declare weights): what a variant's `weight-norm` start needs.
 * Reads the bytes from the file now, synchronously, once per adapted layer.
 */
export function frozenValues(weight: Tensor): Float32Array {
  let source = weight;
  // A half type on the way (`base_precision`) rounds the values the graph computes with.
  const roundings: FloatDtype[] = [];
  while (source.producer && VALUE_PRESERVING.has(source.producer.opType)) {
    const through = TO_SAFETENSORS[source.dtype];
    if (source.producer.opType === 'Cast' && (through === 'F16' || through === 'BF16'))
      roundings.unshift(through);
    source = source.producer.inputs[0]!;
  }
  const data = source.graph.initializers.get(source);
  const dtype = TO_SAFETENSORS[source.dtype];
  if (!data || !dtype) {
    throw new TrainerOrtError(
      'E_INVALID_ARGUMENT',
      `${weight.name} is not a frozen float weight, so its values cannot start a LoRA variant`,
    );
  }
  let values = data.kind === 'inline' ? toFloat32(data.bytes, dtype) : toFloat32(readRange(data), dtype);
  for (const half of roundings) values = toFloat32(fromFloat32(values, half), half);
  return values;
}

function readRange({ path, offset, length }: { path: string; offset: number; length: number }): Uint8Array {
  const bytes = new Uint8Array(length);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, bytes, 0, length, offset);
  } finally {
    closeSync(fd);
  }
  return bytes;
}

/**
 * A frozen weight read in place from a safetensors file: an external-data initializer at
 * `dataStart + byteOffset`, in the file's dtype (cast it in the graph), or converted to `held`
 * (a cast onnxruntime folds when the session loads, so the weight is held in that type). `file`
 * is what `openSafetensors(path)` returns; nothing is read or copied here.
 */
export function safetensorsWeight(
  graph: Graph,
  file: Pick<SafetensorsHeader, 'tensors' | 'dataStart'> & { readonly path: string },
  key: string,
  name = key,
  held?: DType,
): Tensor {
  const info = file.tensors.get(key);
  if (!info) {
    throw new TrainerOrtError('E_INVALID_ARGUMENT', `tensor '${key}' is not in ${file.path}`);
  }
  const dtype = FROM_SAFETENSORS[info.dtype];
  if (!dtype) {
    throw new TrainerOrtError(
      'E_INVALID_ARGUMENT',
      `tensor '${key}' in ${file.path} is ${info.dtype}, which the graph cannot hold`,
    );
  }
  const stored = graph.initializer(name, dtype, info.shape, {
    path: resolve(file.path),
    offset: file.dataStart + info.byteOffset,
    length: info.byteLength,
  });
  return held === undefined || held === dtype ? stored : cast(stored, held);
}

/**
 * `openSafetensors`, with the file's path in front of a header problem's message ("file is 6
 * bytes" says nothing about which of a model's files is not safetensors); the code stays.
 */
export async function openWeightsFile(path: string): Promise<SafetensorsFile> {
  try {
    return await openSafetensors(path);
  } catch (error) {
    if (!SafetensorsError.isInstance(error) || error.message.includes(path)) throw error;
    throw new SafetensorsError(error.code, `${path}: ${error.message}; is it a .safetensors file?`, {
      cause: error,
    });
  }
}
