import type { LoraConfig } from './config.ts';
import { ALL_LINEAR, CLIP_MODULES, resolveTargetModules } from './modules.ts';

export type ConfigWarningCode =
  | 'high_rank'
  | 'alpha_scale'
  | 'many_epochs'
  | 'high_learning_rate'
  | 'low_learning_rate'
  | 'batch_exceeds_dataset'
  | 'warmup_exceeds_steps'
  | 'ignored_key'
  | 'module_mapping'
  | 'half_precision_on_cpu'
  | 'high_noise_offset'
  | 'workers_exceed_cores';

/** Advice about a config that is valid but probably not what the user wants. */
export interface ConfigWarning {
  code: ConfigWarningCode;
  /** The key the advice is about. */
  path: (string | number)[];
  message: string;
}

/** What is known once the run starts: the dataset and the device the backend picked. */
export interface WarningContext {
  /** Examples per epoch (images times their repeats, or text examples). */
  datasetSize?: number;
  device?: 'cuda' | 'webgpu' | 'cpu';
  /** CPU cores this process may use (`os.availableParallelism()`). */
  cores?: number;
}

/**
 * Thresholds from the field's experience (kohya guides, LLaMA-Factory and axolotl examples): past
 * them runs usually overfit or diverge. sd then llm.
 */
const ADVICE = {
  sd: { maxRank: 32, maxEpochs: 20, maxLearningRate: 1e-3 },
  llm: { maxRank: 64, maxEpochs: 5, maxLearningRate: 5e-4 },
} as const;
/** Below this the adapter barely moves from zero in a normal-length run. */
const MIN_LEARNING_RATE = 1e-6;
/** alpha / rank outside this range scales every update by a surprising factor. */
const ALPHA_SCALE_RANGE = [1 / 8, 2] as const;
/** Noise offsets above this wash colours out; 0.05–0.1 is the usual range. */
const MAX_NOISE_OFFSET = 0.1;

/** Advice, never errors: the run may go ahead. Pass the context once the dataset is loaded for more. */
export function configWarnings(config: LoraConfig, context: WarningContext = {}): ConfigWarning[] {
  const warnings: ConfigWarning[] = [];
  const warn = (code: ConfigWarningCode, key: string, message: string) =>
    warnings.push({ code, path: [key], message });
  const advice = ADVICE[config.task];
  const kind = config.task === 'sd' ? 'an SD' : 'an LLM';

  if (config.lora_rank > advice.maxRank)
    warn(
      'high_rank',
      'lora_rank',
      config.task === 'sd'
        ? `lora_rank ${config.lora_rank} risks overfitting and makes a large file; 8–16 suits a style, up to 32 a character`
        : `lora_rank ${config.lora_rank} is above the usual 8–64 for LLM adapters; it adds memory and rarely quality`,
    );
  const scale = config.lora_alpha / config.lora_rank;
  if (scale < ALPHA_SCALE_RANGE[0] || scale > ALPHA_SCALE_RANGE[1])
    warn(
      'alpha_scale',
      'lora_alpha',
      `lora_alpha / lora_rank = ${round(scale)} scales every update by that factor; ${scale > 1 ? 'lower' : 'raise'} learning_rate to compensate, or leave lora_alpha unset (= rank)`,
    );
  if (config.epochs !== undefined && config.epochs > advice.maxEpochs)
    warn(
      'many_epochs',
      'epochs',
      config.task === 'sd'
        ? `${config.epochs} epochs often overfits; a style usually converges in 10–15. Checkpoints let you pick an earlier one`
        : `${config.epochs} epochs often overfits; instruction tuning usually needs 1–3`,
    );
  if (config.learning_rate > advice.maxLearningRate)
    warn(
      'high_learning_rate',
      'learning_rate',
      `learning_rate ${config.learning_rate} is high for ${kind} LoRA and may diverge (NaN loss); 1e-4 to ${advice.maxLearningRate / 2} is typical`,
    );
  if (config.learning_rate < MIN_LEARNING_RATE)
    warn(
      'low_learning_rate',
      'learning_rate',
      `learning_rate ${config.learning_rate} barely moves the adapter`,
    );

  if (context.datasetSize !== undefined) datasetWarnings(config, context.datasetSize, warn);
  if (context.device === 'cpu' && (config.mixed_precision === 'fp16' || config.mixed_precision === 'bf16'))
    warn(
      'half_precision_on_cpu',
      'mixed_precision',
      `${config.mixed_precision} on CPU is slower than fp32 and some ops lack half-precision kernels; auto picks fp32`,
    );
  if (context.cores !== undefined && config.num_workers > context.cores)
    warn(
      'workers_exceed_cores',
      'num_workers',
      `num_workers ${config.num_workers} is more than this machine's ${context.cores} CPU cores: the workers share them and the run is slower than with ${context.cores}`,
    );
  ignoredKeys(config, warn);
  if (config.task === 'sd') {
    mappingNotice(config, warn);
    if (config.noise_offset > MAX_NOISE_OFFSET)
      warn(
        'high_noise_offset',
        'noise_offset',
        `noise_offset ${config.noise_offset} tends to wash out images; 0.05–0.1 is usual`,
      );
  }
  return warnings;
}

type Warn = (code: ConfigWarningCode, key: string, message: string) => void;

function datasetWarnings(config: LoraConfig, size: number, warn: Warn): void {
  if (config.batch_size > size)
    warn(
      'batch_exceeds_dataset',
      'batch_size',
      `batch_size ${config.batch_size} is larger than the dataset (${size} examples); use batch_size ${Math.max(size, 1)} or fewer`,
    );
  const stepsPerEpoch = Math.ceil(size / config.batch_size / config.gradient_accumulation_steps);
  const total = config.max_steps ?? (config.epochs ?? 0) * stepsPerEpoch;
  if (config.warmup_steps !== undefined && config.warmup_steps >= total)
    warn(
      'warmup_exceeds_steps',
      'warmup_steps',
      `warmup_steps ${config.warmup_steps} is not below the run's ${total} optimizer steps: the learning rate never reaches its peak`,
    );
}

function ignoredKeys(config: LoraConfig, warn: Warn): void {
  const warmup =
    config.warmup_steps !== undefined
      ? 'warmup_steps'
      : config.warmup_ratio !== undefined
        ? 'warmup_ratio'
        : undefined;
  if (warmup && config.lr_scheduler === 'constant')
    warn('ignored_key', warmup, `lr_scheduler constant has no warmup; use constant_with_warmup`);
  if (config.lr_cycles > 1 && config.lr_scheduler !== 'cosine_with_restarts')
    warn('ignored_key', 'lr_cycles', `lr_cycles only applies to lr_scheduler cosine_with_restarts`);
  if (config.task !== 'sd') return;
  if (config.text_encoder_lr !== undefined && !config.train_text_encoder)
    warn('ignored_key', 'text_encoder_lr', 'text_encoder_lr has no effect unless train_text_encoder is true');
  if (config.text_encoder_2_lr !== undefined && !config.train_text_encoder)
    warn(
      'ignored_key',
      'text_encoder_2_lr',
      'text_encoder_2_lr has no effect unless train_text_encoder is true',
    );
  if (config.keep_tokens > 0 && !config.shuffle_caption && config.caption_tag_dropout_rate === 0)
    warn(
      'ignored_key',
      'keep_tokens',
      'keep_tokens only protects tags from shuffle_caption and caption_tag_dropout_rate, and neither is on',
    );
}

/** Says which UNet and text-encoder layers CLIP names (or the text-encoder default) select. */
function mappingNotice(config: Extract<LoraConfig, { task: 'sd' }>, warn: Warn): void {
  const names = config.target_modules;
  if (names === ALL_LINEAR) return;
  const clipNames = names.filter((name) => (CLIP_MODULES as readonly string[]).includes(name));
  if (clipNames.length === 0 && !config.train_text_encoder) return;
  const targets = resolveTargetModules(config);
  if (targets.task !== 'sd') return;
  const textEncoder =
    targets.text_encoder.length > 0 ? `; text encoder: ${targets.text_encoder.join(', ')}` : '';
  const named = clipNames.length > 0 ? `${clipNames.join(', ')} also name the UNet's attention: ` : '';
  const frozen = config.train_text_encoder
    ? ''
    : ' (the text encoder is not trained: train_text_encoder is off)';
  warn(
    'module_mapping',
    'target_modules',
    `${named}trains UNet layers ${targets.unet.join(', ')}${textEncoder}${frozen}`,
  );
}

const round = (value: number) => Number(value.toPrecision(3));
