/**
 * The messages between the training loop and its worker processes (Node IPC with the `advanced`
 * serialization, so typed arrays cross as they are). A worker handles them strictly in order.
 */
import type { MixedPrecision } from '@lora/config';
import type { Device } from '../../device.ts';
import type { Precision } from '../precision.ts';
import type { ModelRecipe } from './recipe.ts';

export interface InitMessage {
  type: 'init';
  /** Worker index: also its shard index, which keys its dropout streams. */
  worker: number;
  recipe: ModelRecipe;
  device: Device;
  threads?: number;
  mixedPrecision: MixedPrecision;
  copyExternalData: boolean;
  /** Where the worker writes its gradients graph. */
  folder: string;
  seed: number;
}

/** Starts a step: the LoRA values and the loss scale of all its shards. */
export interface BeginMessage {
  type: 'begin';
  values: Record<string, Float32Array>;
  scale: number;
}

/** This worker's shard of micro-batch `index` of `epoch`. */
export interface ShardMessage {
  type: 'shard';
  batch: unknown;
  epoch: number;
  index: number;
}

/** Asks for the step's sums (answered with `sums`). */
export interface EndMessage {
  type: 'end';
}

/** Exit now; nothing is pending that the parent wants. */
export interface CloseMessage {
  type: 'close';
}

export type ToWorker = InitMessage | BeginMessage | ShardMessage | EndMessage | CloseMessage;

export interface WorkerParameter {
  name: string;
  shape: number[];
  group?: string;
  initial: Float32Array;
}

export interface ReadyMessage {
  type: 'ready';
  parameters: WorkerParameter[];
  precision: Precision;
  /** The provider the session really got. */
  device: Exclude<Device, 'auto'>;
}

/** A step's float32 gradient sums over this worker's shards, in micro-batch order. */
export interface SumsMessage {
  type: 'sums';
  lossSum: number;
  weight: number;
  sums: Record<string, Float32Array>;
  seconds: number;
}

/** A session notice (e.g. a CUDA fallback) for the parent to report. */
export interface NoticeMessage {
  type: 'notice';
  message: string;
}

/** The worker threw; it exits right after sending this. */
export interface FailedMessage {
  type: 'failed';
  message: string;
  code?: string;
}

export type FromWorker = ReadyMessage | SumsMessage | NoticeMessage | FailedMessage;
