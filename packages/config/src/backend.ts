/**
 * The contract between the CLI and a trainer backend. The CLI loads and validates the config, creates
 * the output folder, and calls `train`; the backend reads the data the config points at, trains, and
 * reports through events. A backend package exports `backend: TrainerBackend` and is named in the
 * config's `backend:` key (see `backendModuleName`).
 */
import type { LoraConfig, MixedPrecision } from './config.ts';

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

export type TrainerEvent =
  | ({ type: 'step' } & StepMetrics)
  | { type: 'epoch_end'; epoch: number; step: number /** Mean loss over the epoch. */; loss: number }
  | { type: 'checkpoint'; epoch: number; step: number /** Absolute checkpoint folder. */; path: string }
  | {
      type: 'warning';
      /** Stable identifier, e.g. `device_fallback`, `loss_scale_reduced`, `nan_loss`. */
      code: string;
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
