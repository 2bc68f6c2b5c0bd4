import { dirname } from 'node:path';
import { inferTask } from './cross-check.ts';
import { DEFAULT_EPOCHS, DEFAULT_TARGET_MODULES } from './defaults.ts';
import { ALL_LINEAR, type ClipModule, type LlmModule, type UnetModule } from './modules.ts';
import { outputNameOf, withOutputName } from './run-folder.ts';
import type {
  BASE_PRECISIONS,
  ConfigInput,
  DATASET_FORMATS,
  DEVICES,
  LR_SCHEDULERS,
  MIXED_PRECISIONS,
  NETWORKS,
  OPTIMIZERS,
  PREDICTION_TYPE_SETTINGS,
  PREDICTION_TYPES,
} from './schema.ts';
import { DEFAULTS } from './schema.ts';

export type MixedPrecision = (typeof MIXED_PRECISIONS)[number];
export type BasePrecision = (typeof BASE_PRECISIONS)[number];
export type Device = (typeof DEVICES)[number];
export type LrScheduler = (typeof LR_SCHEDULERS)[number];
export type Optimizer = (typeof OPTIMIZERS)[number];
export type Network = (typeof NETWORKS)[number];
export type DatasetFormat = (typeof DATASET_FORMATS)[number];
export type PredictionType = (typeof PREDICTION_TYPES)[number];
/** The config's `prediction_type`: a prediction type, or `auto` (the backend reads the model's). */
export type PredictionSetting = (typeof PREDICTION_TYPE_SETTINGS)[number];

/** Keys every task has. Paths are absolute; see the README for each key's meaning. */
export interface CommonConfig {
  backend: string;
  base_model: string;
  init_adapter?: string;
  output_dir: string;
  output_name: string;
  network: Network;
  lora_rank: number;
  use_rslora: boolean;
  lora_alpha: number;
  lora_dropout: number;
  batch_size: number;
  gradient_accumulation_steps: number;
  /** Exactly one of `epochs` and `max_steps` is set. */
  epochs?: number;
  max_steps?: number;
  seed: number;
  learning_rate: number;
  lr_scheduler: LrScheduler;
  lr_cycles: number;
  /** At most one of `warmup_steps` and `warmup_ratio` is set; neither means no warmup. */
  warmup_steps?: number;
  warmup_ratio?: number;
  optimizer: Optimizer;
  weight_decay: number;
  betas: [number, number];
  eps: number;
  max_grad_norm: number;
  /**
   * `auto` stays `auto` here: the backend decides once it knows the device (fp16 on CUDA, fp32
   * elsewhere); `resolveMixedPrecision` implements that rule.
   */
  mixed_precision: MixedPrecision;
  /** The type frozen base weights are held in; absent: as the file stores them. */
  base_precision?: BasePrecision;
  gradient_checkpointing: boolean;
  device: Device;
  device_ids?: number[];
  /** CPU worker processes; 1 trains in the backend's own process. */
  num_workers: number;
  save_every_n_epochs: number;
  save_every_n_steps?: number;
  keep_last_n_checkpoints: number;
  /** A checkpoint folder (absolute) or `auto`. */
  resume?: string;
  /** Prompts to sample with while training, or the absolute path of a file of them. */
  sample_prompts?: string[] | string;
  sample_every_n_steps?: number;
  sample_every_n_epochs?: number;
  /** The fraction of the training data held out for the validation loss. */
  validation_split?: number;
  /** Validation data instead of a split (absolute): image folders (sd) or data files (llm). */
  validation_data?: string[];
  validation_every_n_steps?: number;
  tensorboard: boolean;
}

/** A resolved Stable Diffusion config. */
export interface SdConfig extends CommonConfig {
  task: 'sd';
  /** Always set: `metadata_path`'s folder when only the metadata was given. */
  train_data_dir: string;
  metadata_path?: string;
  /** The folder of CLIP's tokenizer.json; unset: found beside the model or where the user has it. */
  tokenizer?: string;
  target_modules: (UnetModule | ClipModule)[] | typeof ALL_LINEAR;
  train_text_encoder: boolean;
  /** Defaults to learning_rate when the text encoder is trained; unused (and warned about) otherwise. */
  text_encoder_lr?: number;
  /** SDXL's second text encoder; defaults to text_encoder_lr. */
  text_encoder_2_lr?: number;
  /** [width, height] in pixels. */
  resolution: [number, number];
  enable_bucket: boolean;
  min_bucket_reso: number;
  max_bucket_reso: number;
  bucket_reso_steps: number;
  cache_latents: boolean;
  flip_aug: boolean;
  random_crop: boolean;
  follow_symlinks: boolean;
  caption_extension: string;
  shuffle_caption: boolean;
  keep_tokens: number;
  caption_dropout_rate: number;
  caption_tag_dropout_rate: number;
  noise_offset: number;
  memory_efficient_attention: boolean;
  min_snr_gamma?: number;
  /** The rank of the ResNet 3×3 convolutions (LoCon); unset, they are not trained. */
  conv_rank?: number;
  /** Their alpha; set when conv_rank is. */
  conv_alpha?: number;
  prediction_type: PredictionSetting;
  clip_skip: number;
}

/** A resolved LLM config. */
export interface LlmConfig extends CommonConfig {
  task: 'llm';
  /** Absolute paths of the example files. */
  train_data: string[];
  dataset_format: DatasetFormat;
  target_modules: LlmModule[] | typeof ALL_LINEAR;
  max_seq_len: number;
  train_on_prompt: boolean;
  template: string;
  packing: boolean;
}

/** The resolved training config: defaults applied, task decided, paths absolute. */
export type LoraConfig = SdConfig | LlmConfig;

/**
 * Applies defaults to a config the schema accepted (cross-key rules included, so the task is
 * known). `absolute` resolves one path value of one key.
 */
export function resolveConfig(
  input: ConfigInput,
  absolute: (key: string, value: string) => string,
): LoraConfig {
  const task = inferTask(input)!.task;
  // Every fixed default in one step; the lines below add the computed ones.
  const set = { ...DEFAULTS, ...dropUndefined(input) } as ConfigInput &
    Required<{ [K in keyof typeof DEFAULTS]: NonNullable<ConfigInput[K]> }>;
  const path = <K extends 'base_model' | 'output_dir'>(key: K) => absolute(key, input[key]);
  const optionalPath = (
    key: 'init_adapter' | 'metadata_path' | 'train_data_dir' | 'resume' | 'tokenizer',
  ) => {
    const value = input[key];
    return value === undefined || (key === 'resume' && value === 'auto') ? value : absolute(key, value);
  };
  const pattern = path('output_dir');
  const output_name = input.output_name ?? outputNameOf(pattern);
  const output_dir = withOutputName(pattern, output_name);
  const lora_rank = set.lora_rank;
  const names = input.target_modules ?? [...DEFAULT_TARGET_MODULES[task]];
  const target_modules =
    names === ALL_LINEAR || names.includes(ALL_LINEAR) ? ALL_LINEAR : [...new Set(names)];
  const common: CommonConfig = dropUndefined({
    backend: set.backend,
    base_model: path('base_model'),
    init_adapter: optionalPath('init_adapter'),
    output_dir,
    output_name,
    network: set.network,
    lora_rank,
    use_rslora: set.use_rslora,
    lora_alpha: input.lora_alpha ?? lora_rank,
    lora_dropout: set.lora_dropout,
    batch_size: set.batch_size,
    gradient_accumulation_steps: set.gradient_accumulation_steps,
    epochs: input.max_steps === undefined ? (input.epochs ?? DEFAULT_EPOCHS[task]) : undefined,
    max_steps: input.max_steps,
    seed: set.seed,
    learning_rate: set.learning_rate,
    lr_scheduler: set.lr_scheduler,
    lr_cycles: set.lr_cycles,
    warmup_steps: input.warmup_steps,
    warmup_ratio: input.warmup_ratio,
    optimizer: set.optimizer,
    weight_decay: set.weight_decay,
    betas: [...set.betas] as [number, number],
    eps: set.eps,
    max_grad_norm: set.max_grad_norm,
    mixed_precision: set.mixed_precision,
    base_precision: input.base_precision,
    gradient_checkpointing: set.gradient_checkpointing,
    device: set.device,
    device_ids: input.device_ids,
    num_workers: set.num_workers,
    save_every_n_epochs: set.save_every_n_epochs,
    save_every_n_steps: input.save_every_n_steps,
    keep_last_n_checkpoints: set.keep_last_n_checkpoints,
    resume: optionalPath('resume'),
    sample_prompts:
      typeof input.sample_prompts === 'string'
        ? absolute('sample_prompts', input.sample_prompts)
        : input.sample_prompts,
    sample_every_n_steps: input.sample_every_n_steps,
    sample_every_n_epochs: input.sample_every_n_epochs,
    validation_split: input.validation_split,
    validation_data: (typeof input.validation_data === 'string'
      ? [input.validation_data]
      : input.validation_data
    )?.map((file) => absolute('validation_data', file)),
    validation_every_n_steps: input.validation_every_n_steps,
    tensorboard: set.tensorboard,
  });
  if (task === 'llm') {
    const files = typeof input.train_data === 'string' ? [input.train_data] : (input.train_data ?? []);
    return dropUndefined({
      task,
      ...common,
      train_data: files.map((file) => absolute('train_data', file)),
      dataset_format: set.dataset_format,
      target_modules: target_modules as LlmConfig['target_modules'],
      max_seq_len: set.max_seq_len,
      train_on_prompt: set.train_on_prompt,
      template: set.template,
      packing: set.packing,
    });
  }
  const metadata_path = optionalPath('metadata_path');
  const train_text_encoder = set.train_text_encoder;
  const resolution = set.resolution;
  return dropUndefined({
    task,
    ...common,
    train_data_dir: optionalPath('train_data_dir') ?? dirname(metadata_path!),
    metadata_path,
    tokenizer: optionalPath('tokenizer'),
    target_modules: target_modules as SdConfig['target_modules'],
    train_text_encoder,
    text_encoder_lr: input.text_encoder_lr ?? (train_text_encoder ? common.learning_rate : undefined),
    text_encoder_2_lr:
      input.text_encoder_2_lr ??
      (train_text_encoder ? (input.text_encoder_lr ?? common.learning_rate) : undefined),
    resolution: typeof resolution === 'number' ? [resolution, resolution] : resolution,
    enable_bucket: set.enable_bucket,
    min_bucket_reso: set.min_bucket_reso,
    max_bucket_reso: set.max_bucket_reso,
    bucket_reso_steps: set.bucket_reso_steps,
    cache_latents: set.cache_latents,
    flip_aug: set.flip_aug,
    random_crop: set.random_crop,
    follow_symlinks: set.follow_symlinks,
    caption_extension: set.caption_extension,
    shuffle_caption: set.shuffle_caption,
    keep_tokens: set.keep_tokens,
    caption_dropout_rate: set.caption_dropout_rate,
    caption_tag_dropout_rate: set.caption_tag_dropout_rate,
    noise_offset: set.noise_offset,
    memory_efficient_attention: set.memory_efficient_attention,
    min_snr_gamma: input.min_snr_gamma,
    conv_rank: input.conv_rank,
    conv_alpha: input.conv_rank === undefined ? undefined : (input.conv_alpha ?? input.conv_rank),
    prediction_type: set.prediction_type,
    clip_skip: set.clip_skip,
  });
}

/** Optional keys are absent rather than `undefined`, so snapshots and `in` checks stay clean. */
function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as T;
}
