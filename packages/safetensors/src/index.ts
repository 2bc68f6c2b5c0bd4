export {
  convertDtype,
  type FloatDtype,
  float16ToFloat32Bits,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  fromFloat32,
  toFloat32,
} from './convert.ts';
export { DTYPES, type Dtype, dtypeBits } from './dtype.ts';
export { SafetensorsError, type SafetensorsErrorCode } from './errors.ts';
export {
  MAX_HEADER_SIZE,
  parseHeader,
  type SafetensorsHeader,
  safeParseHeader,
  type TensorInfo,
} from './header.ts';
export type { LoraAdapter, LoraModule } from './lora/adapter.ts';
export { diffusersUnetToLdm, ldmUnetLayout, SD_UNET_LAYOUT, type UnetLayout } from './lora/base-keys.ts';
export { fromDiffusers, toDiffusers } from './lora/diffusers.ts';
export { type FromKohyaOptions, fromKohya, toKohya } from './lora/kohya.ts';
export {
  type KohyaHashes,
  kohyaHashes,
  kohyaMetadata,
  type PythonValue,
  pythonFloat,
} from './lora/kohya-metadata.ts';
export { detectLoraLayout, type LoraLayout, loraFromTensors, type ReadLoraOptions } from './lora/layout.ts';
export { type MergeOptions, type MergeReport, mergeLora } from './lora/merge.ts';
export { flattenPath, unflattenPath } from './lora/names.ts';
export { fromPeft, type PeftAdapterConfig, type ToPeftOptions, toPeft } from './lora/peft.ts';
export {
  deserialize,
  openSafetensors,
  readSafetensors,
  type SafetensorsBuffer,
  type SafetensorsFile,
} from './reader.ts';
export {
  MAX_INDEX_SIZE,
  openShardedSafetensors,
  type ShardedSafetensors,
  type ShardedTensorInfo,
} from './sharded.ts';
export {
  serialize,
  type TensorData,
  type TensorMap,
  type WritableTensor,
  writeSafetensors,
} from './writer.ts';
