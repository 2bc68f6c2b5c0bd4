import { resolve } from 'node:path';
import type { SafetensorsHeader } from '@lora/safetensors';
import { TrainerOrtError } from './errors.ts';
import type { DType } from './graph/dtype.ts';
import type { Graph, Tensor } from './graph/graph.ts';

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

/**
 * A frozen weight read in place from a safetensors file: an external-data initializer at
 * `dataStart + byteOffset`, in the file's dtype (cast it in the graph). `file` is what
 * `openSafetensors(path)` returns; nothing is read or copied here.
 */
export function safetensorsWeight(
  graph: Graph,
  file: Pick<SafetensorsHeader, 'tensors' | 'dataStart'> & { readonly path: string },
  key: string,
  name = key,
): Tensor {
  const info = file.tensors.get(key);
  if (!info) {
    throw new TrainerOrtError('INVALID_ARGUMENT', `tensor '${key}' is not in ${file.path}`);
  }
  const dtype = FROM_SAFETENSORS[info.dtype];
  if (!dtype) {
    throw new TrainerOrtError(
      'INVALID_ARGUMENT',
      `tensor '${key}' in ${file.path} is ${info.dtype}, which the graph cannot hold`,
    );
  }
  return graph.initializer(name, dtype, info.shape, {
    path: resolve(file.path),
    offset: file.dataStart + info.byteOffset,
    length: info.byteLength,
  });
}
