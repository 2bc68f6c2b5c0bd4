export { type LoraAdapter, type LoraModule, loraModule, rankOf, scaleOfModule } from './adapter.ts';
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
export { detectLoraLayout, loraFromTensors, type ReadLoraOptions } from './layout.ts';
export { type MergeOptions, type MergeReport, mergeLora } from './merge.ts';
export { flattenPath, unflattenPath } from './names.ts';
export { fromPeft, type PeftAdapterConfig, type ToPeftOptions, toPeft } from './peft.ts';
export {
  type ClipTarget,
  clipModuleToOpenClip,
  openClipKeyToClip,
  SD2_OPENCLIP_PREFIX,
  SDXL_OPENCLIP_PREFIX,
} from './sd-openclip-keys.ts';
export {
  diffusersUnetToLdm,
  ldmUnetLayout,
  SD_UNET_LAYOUT,
  SDXL_UNET_LAYOUT,
  sdxlUnetNaming,
  type UnetLayout,
  unetKeyToDiffusers,
} from './sd-unet-keys.ts';
export { LORA_DROPOUT_SEED, loraDropout, nameKey } from './variants/dropout.ts';
export {
  type AdaptedLayer,
  type AdaptedParameter,
  type AdaptOptions,
  adapterFromParameters,
  adaptLayer,
  type ModuleNetwork,
  parameterName,
  parameterValues,
  splitParameterName,
} from './variants/layer.ts';
export { scaleOf } from './variants/low-rank.ts';
export { VARIANTS, type VariantId, variantOf } from './variants/registry.ts';
export type {
  Init,
  LayerInputs,
  LoraLayout,
  ModuleValues,
  NetworkOptions,
  NormAxis,
  ParameterSpec,
  Variant,
} from './variants/variant.ts';
