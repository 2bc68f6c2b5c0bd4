export type { LoraAdapter, LoraModule } from './adapter.ts';
export { diffusersUnetToLdm, ldmUnetLayout, SD_UNET_LAYOUT, type UnetLayout } from './base-keys.ts';
export { fromDiffusers, toDiffusers } from './diffusers.ts';
export { AdapterError, type AdapterErrorCode } from './errors.ts';
export { type FromKohyaOptions, fromKohya, toKohya } from './kohya.ts';
export {
  type KohyaHashes,
  kohyaHashes,
  kohyaMetadata,
  type PythonValue,
  pythonFloat,
} from './kohya-metadata.ts';
export { detectLoraLayout, type LoraLayout, loraFromTensors, type ReadLoraOptions } from './layout.ts';
export { type MergeOptions, type MergeReport, mergeLora } from './merge.ts';
export { flattenPath, unflattenPath } from './names.ts';
export { fromPeft, type PeftAdapterConfig, type ToPeftOptions, toPeft } from './peft.ts';
