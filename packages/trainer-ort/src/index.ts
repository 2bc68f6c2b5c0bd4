export {
  checkGradients,
  GRADCHECK_TOLERANCE,
  type GradCheckCase,
  type GradCheckInput,
  type GradCheckResult,
} from './autodiff/gradcheck.ts';
export { type GradientsOptions, gradients } from './autodiff/gradients.ts';
export { type InputVjp, VJP, type VjpContext, type VjpRule } from './autodiff/vjp.ts';
export { backend } from './backend.ts';
export {
  type ConcreteDevice,
  CUDA_INSTALL_HINT,
  chooseDevice,
  type Device,
  type DeviceChoice,
  describeDevice,
} from './device.ts';
export { TrainerOrtError, type TrainerOrtErrorCode } from './errors.ts';
export { type DType, fromFloat16Bits, toFloat16Bits } from './graph/dtype.ts';
export {
  type Attributes,
  type AttributeValue,
  attr,
  type ConstantData,
  type ExternalData,
  Graph,
  type GraphOutput,
  type InitializerData,
  type Node,
  Tensor,
} from './graph/graph.ts';
export { type WriteModelOptions, writeModel } from './graph/model-file.ts';
export { MAX_MODEL_BYTES, OPSET, type SerializeOptions, serializeModel } from './graph/onnx.ts';
export type { Operand } from './graph/ops/common.ts';
export {
  type AttentionOptions,
  crossEntropy,
  gelu,
  geluTanh,
  mseLoss,
  quickGelu,
  rmsNorm,
  rope,
  ropeInverseFrequencies,
  ropeTables,
  scaledDotProductAttention,
  silu,
} from './graph/ops/composite.ts';
export {
  add,
  and,
  cast,
  div,
  equal,
  erf,
  exp,
  greater,
  identity,
  less,
  log,
  mul,
  neg,
  not,
  pow,
  reciprocal,
  rsqrt,
  sigmoid,
  sqrt,
  sub,
  tanh,
  where,
} from './graph/ops/elementwise.ts';
export {
  concat,
  constantOfShape,
  expand,
  expandAs,
  gather,
  pad,
  reshape,
  reshapeAs,
  SLICE_END,
  type SliceSpec,
  scatterNDAdd,
  shapeOf,
  slice,
  split,
  squeeze,
  transpose,
  trilu,
  unsqueeze,
  zerosLike,
} from './graph/ops/layout.ts';
export { type GemmOptions, gemm, matmul } from './graph/ops/linalg.ts';
export {
  type ConvOptions,
  type ConvTransposeOptions,
  conv,
  convTranspose,
  dropout,
  groupNorm,
  layerNorm,
  type NormOptions,
  resizeNearest,
} from './graph/ops/nn.ts';
export {
  logSoftmax,
  reduceLogSumExp,
  reduceMax,
  reduceMean,
  reduceSum,
  softmax,
} from './graph/ops/reduce.ts';
export { type Dim, formatShape, type Shape } from './graph/shape.ts';
export {
  type CaptionParts,
  CLIP_CONTEXT_LENGTH,
  CLIP_VOCABULARY,
  type ClipOptions,
  ClipRanker,
  type ClipResult,
  type ClipVocabulary,
  clipCaptionParts,
  DEFAULT_CHARACTER_THRESHOLD,
  DEFAULT_CORE_TAGS,
  DEFAULT_GENERAL_THRESHOLD,
  isLabelFailure,
  isMoodTag,
  LabelError,
  type LabelErrorCode,
  type LabelFailure,
  type LoadOptions,
  MAX_LABEL_BATCH,
  MAX_TAGGER_TAGS,
  MAX_VOCABULARY_BYTES,
  MAX_VOCABULARY_PHRASES,
  MOOD_CATEGORIES,
  type PhraseScore,
  type RankedImage,
  type RankOptions,
  readTaggerTags,
  readVocabulary,
  type TagCategory,
  type TaggedImage,
  type TaggerOptions,
  type TaggerResult,
  type TaggerTag,
  type TagScore,
  taggerCaptionParts,
  tagText,
  Wd14Tagger,
  writeTinyClip,
  writeTinyTagger,
} from './label/index.ts';
export {
  DEFAULT_PARAMETER_GROUP,
  LORA_DROPOUT_SEED,
  type LoraLayer,
  type LoraOptions,
  type LoraParameter,
  loraConv,
  loraLinear,
} from './lora.ts';
export {
  DEMO_MODEL_NAME,
  type DemoModelFiles,
  demoModelFiles,
  writeDemoModel,
} from './models/llama/demo.ts';
export { type DemoRecord, demoRecords, demoRecordsJsonl } from './models/llama/demo-data.ts';
export { REAL_CONFIGS } from './models/llama/real-configs.ts';
export { type SdBatch, SdBatchSource } from './models/sd/batches.ts';
export { type OpenedSdCheckpoint, openSdCheckpoint } from './models/sd/checkpoint.ts';
export { SD15, type SdModelConfig } from './models/sd/config.ts';
export { LDM_PREFIXES } from './models/sd/keys.ts';
export { clipTextModel, ldmUnet } from './models/sd/ldm-layout.ts';
export { ClipTokenizer, type LongCaptions } from './models/sd/model-files.ts';
export {
  type ShapeImagesOptions,
  type TinySdModel,
  writeShapeImages,
  writeTinySdModel,
} from './models/sd/tiny.ts';
export { type SdAdapterLayout, type TrainSdOptions, trainSd } from './models/sd/train.ts';
export { SdTrainableModel, type SdTrainableOptions } from './models/sd/trainable.ts';
export {
  type HostArray,
  type HostArrayOf,
  type HostDType,
  type HostTensor,
  hostTensor,
  isCudaInstalled,
  onnxRuntimeInfo,
  Session,
  type SessionOptions,
} from './session.ts';
export {
  type Checkpoint,
  type CheckpointMeta,
  type CheckpointParameter,
  latestCheckpoint,
  listCheckpoints,
  readCheckpoint,
  type TrainingState,
} from './train/checkpoint.ts';
export type { BatchCount, BatchSource } from './train/data.ts';
export { MAX_SHAPE_KEYS } from './train/gradient-sessions.ts';
export { runTrainingLoop, type TrainingLoopResult } from './train/loop.ts';
export type { BuildOptions, MicroBatchLoss, TrainableModel } from './train/model.ts';
export {
  buildUpdateGraph,
  type OptimizerOptions,
  type UpdateParameter,
  updateScalars,
} from './train/optimizer.ts';
export {
  type CheckpointPolicy,
  type LoopEvent,
  loopSettingsFromConfig,
  type ScheduleOptions,
  TEXT_ENCODER_GROUP,
  type TrainingLoopOptions,
  type TrainingLoopSettings,
} from './train/options.ts';
export {
  createLlamaWorkerModel,
  type LlamaWorkerOptions,
  llamaParallelModel,
  MAX_WORKERS,
  type ModelRecipe,
  type ParallelModel,
  runTrainingWorker,
  shardLlamaBatch,
  shardRanges,
  type WorkerDevice,
  WorkerError,
  type WorkerErrorCode,
  type WorkerStepTime,
} from './train/parallel/index.ts';
export {
  DEFAULT_LOSS_SCALE,
  type LossScaleOptions,
  type LossScaleState,
  MIN_LOSS_SCALE,
  nextLossScale,
  type Precision,
} from './train/precision.ts';
export {
  type LrScheduleOptions,
  type LrSchedulerName,
  learningRate,
  warmupStepsFromRatio,
} from './train/schedule.ts';
export { probeWebGpuAdapters, type WebGpuAdapter, type WebGpuProbe } from './webgpu-adapters.ts';
export { safetensorsWeight } from './weights.ts';
