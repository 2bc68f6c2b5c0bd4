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
  planWrite,
  serialize,
  type TensorData,
  type TensorMap,
  type WritableTensor,
  type WritePlan,
  writeSafetensors,
} from './writer.ts';
