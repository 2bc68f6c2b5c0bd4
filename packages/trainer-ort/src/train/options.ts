import type { LoraConfig, MixedPrecision, TrainerEvent } from '@lora/config';
import type { Device } from '../device.ts';
import { TrainerOrtError } from '../errors.ts';
import type { BatchSource } from './data.ts';
import type { TrainableModel } from './model.ts';
import type { OptimizerOptions } from './optimizer.ts';
import type { ParallelModel, WorkerDevice } from './parallel/recipe.ts';
import type { LossScaleOptions, Precision } from './precision.ts';
import type { LrSchedulerName } from './schedule.ts';
import type { GradientsGraphHook } from './step-graphs.ts';

export interface ScheduleOptions {
  scheduler: LrSchedulerName;
  /** Warmup in optimizer steps; or give `warmupRatio` (of the total steps, rounded up); neither: none. */
  warmupSteps?: number;
  warmupRatio?: number;
  /** Cycles of `cosine_with_restarts`; default 1. */
  cycles?: number;
}

/** Where the loop stands when it hands the LoRA values out: optimizer steps and epochs done. */
export interface LoopPoint {
  step: number;
  epoch: number;
  /** The precision the run computes in. */
  precision: Precision;
}

/**
 * Work done with the LoRA values of a moment (samples, the validation loss): before the first
 * step of a fresh run, every `everySteps` steps, at the end of every `everyEpochs`-th epoch, and
 * after the last step.
 */
export interface PeriodicTask {
  everySteps?: number;
  everyEpochs?: number;
  take(point: LoopPoint, values: ReadonlyMap<string, Float32Array>): Promise<void>;
}

export interface CheckpointPolicy {
  /** Save every N optimizer steps. */
  everySteps?: number;
  /** Save at the end of every N-th epoch. */
  everyEpochs?: number;
  /** Checkpoints kept on disk, newest first; 0 keeps all. */
  keepLast: number;
}

/** The part of the loop's options a training config decides (`loopSettingsFromConfig`). */
export interface TrainingLoopSettings {
  seed: number;
  /** Exactly one of `epochs` and `maxSteps`. */
  epochs?: number;
  maxSteps?: number;
  gradientAccumulationSteps: number;
  /** Base learning rate of the default parameter group. */
  learningRate: number;
  /** Base learning rates of other parameter groups (e.g. `text_encoder`); unlisted groups take `learningRate`. */
  groupLearningRates?: Readonly<Record<string, number>>;
  schedule: ScheduleOptions;
  optimizer: OptimizerOptions;
  /** Clip the global gradient norm to this; 0 turns clipping off. */
  maxGradNorm: number;
  /** `auto`: fp16 on CUDA, fp32 elsewhere. */
  mixedPrecision: MixedPrecision;
  device: Device;
  /**
   * Data-parallel training: one worker process per entry, each with its own session (config:
   * `device_ids` → CUDA devices, `num_workers` → CPU workers). Needs `parallel`; absent, this
   * process trains on `device`.
   */
  workers?: readonly WorkerDevice[];
  checkpoints: CheckpointPolicy;
  /** `auto` (newest checkpoint in `outputDir`, or a fresh start when there is none) or a checkpoint folder. */
  resume?: string;
  /** The resolved config, stored in each checkpoint (JSON-safe). */
  config?: unknown;
}

/** Events the loop reports; `done` is the backend's, with the artifacts the model package wrote. */
export type LoopEvent = Exclude<TrainerEvent, { type: 'done' }>;

export interface TrainingLoopOptions<Batch> extends TrainingLoopSettings {
  model: TrainableModel<Batch>;
  data: BatchSource<Batch>;
  /** Run folder: `graphs/` and `checkpoints/` go here. */
  outputDir: string;
  /**
   * Intra-op threads of both sessions (of each worker's, in a parallel run); default onnxruntime's
   * choice, or an equal share of the cores per CPU worker.
   */
  threads?: number;
  /**
   * How worker processes rebuild the model and split micro-batches, for `workers`. In a parallel
   * run `model` is not run in this process: the workers run the recipe's model.
   */
  parallel?: ParallelModel<Batch>;
  samples?: PeriodicTask;
  validation?: PeriodicTask;
  /** fp16 loss scaling; defaults are PyTorch GradScaler's. */
  lossScale?: LossScaleOptions;
  /** Allow copying frozen weights that cannot be hard-linked into `outputDir/graphs`. */
  copyExternalData?: boolean;
  /** Stops the run after the current optimizer step, with a checkpoint. */
  signal?: AbortSignal;
  /** Receives every event in order; it must not throw. */
  onEvent?: (event: LoopEvent) => void;
  /** Sees each gradients graph this process builds, before it is loaded. */
  onGradientsGraph?: GradientsGraphHook;
}

/** Parameter group of the SD text encoder's LoRA, which has its own `text_encoder_lr`. */
export const TEXT_ENCODER_GROUP = 'text_encoder';
/** SDXL's second text encoder's group, with `text_encoder_2_lr`. */
export const TEXT_ENCODER_2_GROUP = 'text_encoder_2';

/**
 * Each worker process loads its own copy of the frozen model and its own runtime; more than this
 * is a typo rather than a machine, and would start that many processes.
 */
export const MAX_WORKERS = 64;

/** Maps a resolved training config onto the loop's settings. */
export function loopSettingsFromConfig(config: LoraConfig): TrainingLoopSettings {
  const textEncoderLr = config.task === 'sd' ? config.text_encoder_lr : undefined;
  const secondLr = config.task === 'sd' ? config.text_encoder_2_lr : undefined;
  return {
    seed: config.seed,
    ...(config.max_steps === undefined ? { epochs: config.epochs ?? 1 } : { maxSteps: config.max_steps }),
    gradientAccumulationSteps: config.gradient_accumulation_steps,
    learningRate: config.learning_rate,
    ...(textEncoderLr === undefined
      ? {}
      : {
          groupLearningRates: {
            [TEXT_ENCODER_GROUP]: textEncoderLr,
            ...(secondLr === undefined ? {} : { [TEXT_ENCODER_2_GROUP]: secondLr }),
          },
        }),
    schedule: {
      scheduler: config.lr_scheduler,
      cycles: config.lr_cycles,
      ...(config.warmup_steps === undefined ? {} : { warmupSteps: config.warmup_steps }),
      ...(config.warmup_ratio === undefined ? {} : { warmupRatio: config.warmup_ratio }),
    },
    optimizer: {
      type: config.optimizer,
      betas: config.betas,
      eps: config.eps,
      weightDecay: config.weight_decay,
    },
    maxGradNorm: config.max_grad_norm,
    mixedPrecision: config.mixed_precision,
    device: config.device,
    ...workersOf(config),
    checkpoints: {
      everyEpochs: config.save_every_n_epochs,
      ...(config.save_every_n_steps === undefined ? {} : { everySteps: config.save_every_n_steps }),
      keepLast: config.keep_last_n_checkpoints,
    },
    ...(config.resume === undefined ? {} : { resume: config.resume }),
    config,
  };
}

/**
 * `device_ids` → one worker per CUDA device, except `[0]`, the device this process uses anyway;
 * `num_workers` > 1 → that many CPU workers.
 */
function workersOf(config: LoraConfig): { workers?: WorkerDevice[] } {
  const ids = config.device_ids;
  if (ids !== undefined && !(ids.length === 1 && ids[0] === 0)) {
    return { workers: ids.map((deviceId) => ({ device: config.device, deviceId })) };
  }
  const count = config.num_workers ?? 1;
  return count > 1 ? { workers: Array.from({ length: count }, () => ({ device: 'cpu' })) } : {};
}

/** Refuses options the loop cannot run with, naming the option and what it needs. */
export function checkLoopOptions<Batch>(options: TrainingLoopOptions<Batch>): void {
  const problems: string[] = [];
  const positiveInt = (name: string, value: number | undefined) => {
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= 1))
      problems.push(`${name} must be an integer ≥ 1, got ${value}`);
  };
  const nonNegative = (name: string, value: number | undefined) => {
    if (value !== undefined && !(Number.isFinite(value) && value >= 0))
      problems.push(`${name} must be a finite number ≥ 0, got ${value}`);
  };
  if ((options.epochs === undefined) === (options.maxSteps === undefined))
    problems.push('give exactly one of epochs and maxSteps');
  positiveInt('epochs', options.epochs);
  positiveInt('maxSteps', options.maxSteps);
  positiveInt('gradientAccumulationSteps', options.gradientAccumulationSteps);
  positiveInt('data.microBatchesPerEpoch', options.data.microBatchesPerEpoch);
  positiveInt('checkpoints.everySteps', options.checkpoints.everySteps);
  positiveInt('checkpoints.everyEpochs', options.checkpoints.everyEpochs);
  positiveInt('lossScale.growthInterval', options.lossScale?.growthInterval);
  if (!Number.isSafeInteger(options.seed)) problems.push(`seed must be an integer, got ${options.seed}`);
  if (!(Number.isSafeInteger(options.checkpoints.keepLast) && options.checkpoints.keepLast >= 0))
    problems.push(`checkpoints.keepLast must be an integer ≥ 0, got ${options.checkpoints.keepLast}`);
  nonNegative('learningRate', options.learningRate);
  for (const [group, lr] of Object.entries(options.groupLearningRates ?? {}))
    nonNegative(`groupLearningRates.${group}`, lr);
  nonNegative('maxGradNorm', options.maxGradNorm);
  nonNegative('optimizer.weightDecay', options.optimizer.weightDecay);
  nonNegative('schedule.warmupSteps', options.schedule.warmupSteps);
  const ratio = options.schedule.warmupRatio;
  if (ratio !== undefined && !(ratio >= 0 && ratio < 1))
    problems.push(`schedule.warmupRatio must be in [0, 1), got ${ratio}`);
  if (options.schedule.warmupSteps !== undefined && ratio !== undefined)
    problems.push('give at most one of schedule.warmupSteps and schedule.warmupRatio');
  const initialScale = options.lossScale?.initial;
  if (initialScale !== undefined && !(initialScale > 0 && Number.isFinite(initialScale)))
    problems.push(`lossScale.initial must be a finite number > 0, got ${initialScale}`);
  if (options.optimizer.type === 'adamw') {
    const [b1, b2] = options.optimizer.betas;
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1))
      problems.push(`optimizer.betas must be in [0, 1), got [${b1}, ${b2}]`);
    if (!(options.optimizer.eps > 0))
      problems.push(`optimizer.eps must be > 0, got ${options.optimizer.eps}`);
  } else if (!(options.optimizer.momentum >= 0 && options.optimizer.momentum < 1)) {
    problems.push(`optimizer.momentum must be in [0, 1), got ${options.optimizer.momentum}`);
  }
  const { workers } = options;
  if (workers !== undefined) {
    if (!(workers.length >= 1 && workers.length <= MAX_WORKERS))
      problems.push(`workers must list 1 to ${MAX_WORKERS} devices, got ${workers.length}`);
    workers.forEach(({ deviceId }, k) => {
      if (deviceId !== undefined && !(Number.isSafeInteger(deviceId) && deviceId >= 0))
        problems.push(`workers[${k}].deviceId must be an integer ≥ 0, got ${deviceId}`);
    });
  }
  if (workers !== undefined && options.parallel !== undefined && options.model.shapeKey !== undefined) {
    problems.push(
      'the model builds one graph per micro-batch shape (shapeKey), which data-parallel workers do not support yet; train in one process (without device_ids / num_workers)',
    );
  }
  if (problems.length > 0) {
    throw new TrainerOrtError('E_INVALID_ARGUMENT', `runTrainingLoop: ${problems.join('; ')}`);
  }
}
