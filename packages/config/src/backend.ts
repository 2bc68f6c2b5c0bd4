/**
 * The contract between the CLI and a trainer backend. The CLI loads and validates the config, creates
 * the output folder, and calls `train`; the backend reads the data the config points at, trains, and
 * reports through events. A backend package exports `backend: TrainerBackend` and is named in the
 * config's `backend:` key (see `backendModuleName`).
 */
import type { LoraConfig, MixedPrecision } from './config.ts';
import type { ConfigWarningCode } from './warnings.ts';

/** A trainer implementation, e.g. `@lora/trainer-ort`. */
export interface TrainerBackend {
  /** Short name shown in logs (`ort`). */
  readonly name: string;
  /**
   * Runs one training run to its end. Resolves with the artifacts (the same ones the final `done`
   * event carries), also when stopped through `signal`. Rejects only when training cannot go on.
   */
  train(run: TrainingRun): Promise<TrainingResult>;
}

/** What a backend module exports. */
export interface TrainerBackendModule {
  backend: TrainerBackend;
}

/** Everything the CLI hands a backend for one run. */
export interface TrainingRun {
  /** The resolved config: defaults applied, paths absolute, `mixed_precision` possibly still `auto`. */
  config: LoraConfig;
  /** Absolute folder for every output (adapter, config snapshot, logs, checkpoints); it exists. */
  outputDir: string;
  /**
   * Aborted on Ctrl-C or by a caller. The backend stops at the next step boundary, saves a resumable
   * checkpoint, emits `done` with `stopped: 'aborted'` and resolves.
   */
  signal: AbortSignal;
  /** Free-text progress for humans; structured data goes through `emit`. */
  logger: TrainerLogger;
  /** Receives every event in order; it must not throw. */
  emit(event: TrainerEvent): void;
}

export interface TrainerLogger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
}

/** Measurements after one optimizer step (`step` counts optimizer steps, from 1). */
export type StepMetrics = {
  step: number;
  /** 1-based epoch the step belongs to. */
  epoch: number;
  /** Mean loss over the step's accumulated micro-batches. */
  loss: number;
  /** Learning rate used for the step (the UNet's or the LLM's). */
  lr: number;
  /** Global gradient norm before clipping. */
  grad_norm: number;
  examples_per_s: number;
  /** The current fp16 loss scale; absent unless fp16 loss scaling is active. */
  loss_scale?: number;
  /** Optimizer steps and epochs the whole run will take, for progress bars and ETAs. */
  total_steps?: number;
  total_epochs?: number;
} & ({ tokens_per_s: number } | { images_per_s: number });

/** Where a finished (or stopped) run left its files; absolute paths. */
export interface TrainingResult {
  /** Why training ended. */
  stopped: 'completed' | 'aborted';
  /** Last optimizer step and epoch reached. */
  step: number;
  epoch: number;
  /** The adapter: kohya `.safetensors` for sd, the PEFT `adapter_model.safetensors` for llm. */
  adapter: string;
  /** PEFT `adapter_config.json` (llm only). */
  adapter_config?: string;
  /** The resolved config snapshot (`config.yaml`). */
  config: string;
  /** One JSON object per step (`metrics.jsonl`). */
  metrics: string;
  /** TensorBoard event folder, when `tensorboard` is on. */
  logs?: string;
  /** The last resumable checkpoint folder. */
  checkpoint?: string;
}

/**
 * The warnings a run reports (`TrainerEvent` type `warning`), as stable identifiers: the config
 * advice (`configWarnings`, checked again once the data and device are known) and the backend's own.
 */
export type WarningCode = ConfigWarningCode | BackendWarningCode;

type BackendWarningCode =
  /** resume: auto passed over a checkpoint it cannot use and tries the one before. */
  | 'checkpoint_skipped'
  /** Records were cut to max_seq_len. */
  | 'dataset_truncated'
  /** A faster device was asked for or available but not used. */
  | 'device_fallback'
  /** A step's micro-batches had no loss weight (no label tokens or examples): no update. */
  | 'empty_step'
  /** Mixed precision lowered its loss scale after an overflow. */
  | 'loss_scale_reduced'
  /** The estimated peak memory of a step exceeds this machine's memory. */
  | 'memory_estimate'
  /** Worker processes were asked for, but the model cannot be rebuilt in one: training runs in this process. */
  | 'parallel_unavailable'
  /** Half-precision compute was chosen or refused on this device. */
  | 'precision_notice'
  /** Captions longer than the text encoder's window. */
  | 'long_captions'
  /** Images that cannot be read are skipped. */
  | 'images_skipped'
  /** Images without a caption train with an empty one. */
  | 'uncaptioned_images'
  /** The latent cache cannot be written beside the images, so it goes into the run folder. */
  | 'latent_cache_moved'
  /** A resumed run's data, seed or settings differ from the checkpoint's. */
  | 'resume_data_changed'
  | 'resume_seed_changed'
  | 'resume_config_changed'
  /** resume: auto found no checkpoint, so training starts at step 0. */
  | 'resume_found_nothing'
  /** sample_prompts are set, but this run's adapter kind cannot be sampled. */
  | 'sample_skipped'
  /** The validation loss has risen for several evaluations in a row. */
  | 'overfitting'
  /** The config's prediction_type differs from the one the model's scheduler_config.json names. */
  | 'prediction_mismatch'
  /** SD 2.x text-encoder attention LoRA that A1111 leaves out: it applies q, k, v only with all four of q, k, v, out_proj. */
  | 'partial_attention';

export type TrainerEvent =
  | ({ type: 'step' } & StepMetrics)
  | { type: 'epoch_end'; epoch: number; step: number /** Mean loss over the epoch. */; loss: number }
  | { type: 'checkpoint'; epoch: number; step: number /** Absolute checkpoint folder. */; path: string }
  | {
      type: 'sample';
      epoch: number;
      step: number /** Absolute paths of the files written. */;
      files: string[];
    }
  | {
      type: 'validation';
      epoch: number;
      step: number;
      /** Mean loss over the validation data (per token for llm, per image and timestep for sd). */
      loss: number;
      /**
       * The lowest validation loss so far, the step it was reached at, and the adapter of that step
       * (absent for step 0, the untrained LoRA).
       */
      best: { step: number; loss: number; adapter?: string };
      /** Seconds the evaluation took. */
      seconds: number;
    }
  | {
      type: 'warning';
      code: WarningCode;
      message: string;
    }
  | ({ type: 'done' } & TrainingResult);

/**
 * The package a `backend:` value names: `ort` → `@lora/trainer-ort`, another bare word `x` →
 * `@lora/trainer-x`, anything with a scope or a dash → as written.
 */
export function backendModuleName(backend: string): string {
  return /^[a-z0-9]+$/.test(backend) ? `@lora/trainer-${backend}` : backend;
}

/** The precision a run computes in, once the device is known (`no` and `auto` off CUDA are fp32). */
export function resolveMixedPrecision(
  setting: MixedPrecision,
  device: 'cuda' | 'webgpu' | 'cpu',
): 'fp16' | 'bf16' | 'fp32' {
  if (setting === 'auto') return device === 'cuda' ? 'fp16' : 'fp32';
  return setting === 'no' ? 'fp32' : setting;
}
