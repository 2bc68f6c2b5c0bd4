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
export {
  DEFAULT_PARAMETER_GROUP,
  type LoraLayer,
  type LoraOptions,
  type LoraParameter,
  loraLayer,
} from './lora.ts';
export { readPeftAdapter } from './models/llama/adapter.ts';
export { openLlamaCheckpoint } from './models/llama/checkpoint.ts';
export {
  DEMO_MODEL_NAME,
  type DemoModelFiles,
  demoModelFiles,
  writeDemoModel,
} from './models/llama/demo.ts';
export { type DemoRecord, demoRecords, demoRecordsJsonl } from './models/llama/demo-data.ts';
export {
  chooseToken,
  LlamaGenerator,
  type PromptOptions,
  renderPrompt,
  type SamplingOptions,
  stopIdsOf,
  type WeightedAdapter,
} from './models/llama/generate.ts';
export { REAL_CONFIGS } from './models/llama/real-configs.ts';
export { type SdBatch, SdBatchSource } from './models/sd/batches.ts';
export { type OpenedSdCheckpoint, openSdCheckpoint } from './models/sd/checkpoint.ts';
export { SD15, type SdModelConfig } from './models/sd/config.ts';
export { imageGrid, type RgbImage } from './models/sd/grid.ts';
export { LDM_PREFIXES } from './models/sd/keys.ts';
export { clipTextModel, ldmUnet } from './models/sd/ldm-layout.ts';
export { ClipTokenizer, type LongCaptions, sdModelFamily } from './models/sd/model-files.ts';
export { encodePng } from './models/sd/png.ts';
export { extractLoraTags, type LoraTag } from './models/sd/prompt.ts';
export {
  type SampledImage,
  type SampleImageOptions,
  type SampleLora,
  sampleImage,
} from './models/sd/sample-image.ts';
export { SAMPLERS, type SamplerName } from './models/sd/samplers.ts';
export {
  type ShapeImagesOptions,
  type TinySdModel,
  writeShapeImages,
  writeTinySdModel,
} from './models/sd/tiny.ts';
export { type SdAdapterLayout, type TrainSdOptions, trainSd } from './models/sd/train.ts';
export { SdTrainableModel, type SdTrainableOptions } from './models/sd/trainable.ts';
export {
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
