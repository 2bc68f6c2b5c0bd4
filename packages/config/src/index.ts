export {
  backendModuleName,
  resolveMixedPrecision,
  type StepMetrics,
  type TrainerBackend,
  type TrainerBackendModule,
  type TrainerEvent,
  type TrainerLogger,
  type TrainingResult,
  type TrainingRun,
  type WarningCode,
} from './backend.ts';
export type {
  BasePrecision,
  CommonConfig,
  DatasetFormat,
  Device,
  LlmConfig,
  LoraConfig,
  LrScheduler,
  MixedPrecision,
  Network,
  Optimizer,
  PredictionSetting,
  PredictionType,
  SdConfig,
} from './config.ts';

export {
  ConfigError,
  type ConfigErrorCode,
  type ConfigIssue,
  type ConfigIssueCode,
  formatConfigIssue,
} from './errors.ts';
export { type JSONSchema, toJSONSchema } from './json-schema.ts';
export {
  type ConfigResult,
  type LoadConfigOptions,
  loadConfig,
  loadConfigText,
  MAX_CONFIG_BYTES,
  MAX_ISSUES,
  parseConfig,
  safeLoadConfig,
  safeLoadConfigText,
  safeParseConfig,
} from './load.ts';
export {
  ALL_LINEAR,
  CLIP_MODULES,
  type ClipModule,
  LLM_MODULES,
  type LlmModule,
  type ModuleName,
  type ModuleTargets,
  resolveTargetModules,
  UNET_MODULES,
  type UnetModule,
} from './modules.ts';
export { earlierRuns, newestRun, RUN_FOLDER_PLACEHOLDERS, runFolder } from './run-folder.ts';
export {
  CONFIG_KEYS,
  type ConfigInput,
  type ConfigKey,
  configSchema,
  DEFAULTS,
  MAX_LORA_RANK,
  MAX_RESOLUTION,
  MAX_SEQ_LEN,
  NETWORKS,
} from './schema.ts';
export { stringifyConfig } from './snapshot.ts';
export { MAX_ALIAS_COUNT } from './source.ts';
export { closest } from './suggest.ts';
export { configTemplate, SCHEMA_COMMENT, SCHEMA_FILE } from './template.ts';
export {
  type ConfigWarning,
  type ConfigWarningCode,
  configWarnings,
  type WarningContext,
} from './warnings.ts';
