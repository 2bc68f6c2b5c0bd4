/**
 * Where a step's gradients come from and where the LoRA values and optimizer state live. The
 * loop drives an engine the same way whether it computes in this process with the state on the
 * host (`openLocalEngine`), on a WebGPU device with the state in GPU memory
 * (`device-engine.ts`), or shards every micro-batch over worker processes (`parallel/engine.ts`):
 * `load` the state, then per step `begin`, `add` each micro-batch in order, `end` for the loss and
 * the gradient norm, and `update` with the scalars the loop decides (learning rates, clipping).
 */
import { join } from 'node:path';
import { LORA_DROPOUT_SEED } from '@lora/adapters';
import { createRng } from '@lora/dataset';
import { type HostTensor, hostTensor } from '@lora/engine';
import type { Session } from '../session.ts';
import { GradientSessions } from './gradient-sessions.ts';
import { GradientSum } from './gradient-sum.ts';
import { HostState, type TrainState } from './host-state.ts';
import type { TrainableModel } from './model.ts';
import { gradName, type OptimizerOptions, optimizerSlots } from './optimizer.ts';
import type { Precision } from './precision.ts';
import {
  GRAPHS_FOLDER,
  LOSS_SCALE,
  LOSS_SUM,
  LOSS_WEIGHT,
  openUpdateSession,
  type SessionSettings,
  type TrainedParameter,
} from './step-graphs.ts';

/** Stream key of the LoRA dropout seeds: `createRng(seed, DROPOUT_STREAM, epoch, index[, shard])`. */
const DROPOUT_STREAM = 0x44726f70; // 'Drop'

/** One worker's share of an optimizer step, reported in `step` events of a parallel run. */
export interface WorkerStepTime {
  /** 0-based worker index (the position of its device in `workers`). */
  worker: number;
  /** `cpu`, or `cuda:<id>`. */
  device: string;
  pid: number;
  /** Seconds the worker spent on its shards of this step (feeds and session runs). */
  seconds: number;
  /** Examples in its shards. */
  examples: number;
}

/** What the loop reads of a step's sums: the loss, its weight, and Σ g² (NaN or ∞ when some gradient is). */
export interface StepSums {
  readonly lossSum: number;
  readonly weight: number;
  squaredNorm(): number;
}

export interface StepGradients {
  sum: StepSums;
  /** Per-worker times, in worker order (parallel runs only). */
  workers?: WorkerStepTime[];
}

export interface GradientEngine<Batch> {
  readonly parameters: readonly TrainedParameter[];
  readonly precision: Precision;
  /** Where the values and optimizer state stay between steps. */
  readonly stateLocation: 'host' | 'device';
  /** Sets the values and optimizer state the next step starts from (a new run, a resume). */
  load(state: TrainState): Promise<void>;
  /** Starts an optimizer step at this loss scale; a step that was not updated is dropped. */
  begin(scale: number): void;
  /** Adds micro-batch `index` of `epoch` (calls come in micro-batch order). */
  add(batch: Batch, epoch: number, index: number): Promise<void>;
  /** The step's sums. */
  end(): Promise<StepGradients>;
  /** Runs the optimizer on the step's sums with the loop's scalar feeds (`updateScalars`). */
  update(scalars: Record<string, HostTensor>): Promise<void>;
  /** The values and optimizer state after the last update, on the host (checkpoints, the result). */
  state(): Promise<TrainState>;
  dispose(): Promise<void>;
}

/**
 * The `LORA_DROPOUT_SEED` feed of a micro-batch, or of shard `shard` of it. Shard 0 takes the
 * micro-batch's own stream, so one worker draws the same masks as a single process.
 */
export function dropoutSeedFeed(seed: number, epoch: number, index: number, shard = 0): HostTensor<'int64'> {
  const keys = shard === 0 ? [epoch, index] : [epoch, index, shard];
  const value = createRng(seed, DROPOUT_STREAM, ...keys).nextUint32();
  return hostTensor('int64', [], BigInt64Array.of(BigInt(value)));
}

/** Feeds every LoRA parameter at `values`. */
export function parameterFeeds(
  parameters: readonly TrainedParameter[],
  values: ReadonlyMap<string, Float32Array>,
): Record<string, HostTensor> {
  return Object.fromEntries(
    parameters.map((p) => [p.name, hostTensor('float32', p.shape, values.get(p.name)!)]),
  );
}

/** The outputs a gradients run fetches. */
export const gradientOutputs = (parameters: readonly TrainedParameter[]): string[] => [
  LOSS_SUM,
  LOSS_WEIGHT,
  ...parameters.map((p) => gradName(p.name)),
];

export interface LocalEngineSettings extends SessionSettings {
  optimizer: OptimizerOptions;
  seed: number;
}

/**
 * Both graphs in this process, in `<outputDir>/graphs/`, with the state on the host: the gradients
 * graph of `firstKey` (the first micro-batch's shape key; `undefined` for a single-shape model)
 * now, those of other shape keys when a micro-batch first needs them.
 */
export async function openLocalEngine<Batch>(
  model: TrainableModel<Batch>,
  settings: LocalEngineSettings,
  firstKey: string | undefined,
): Promise<GradientEngine<Batch>> {
  const folder = join(settings.outputDir, GRAPHS_FOLDER);
  const gradients = await GradientSessions.open(model, folder, settings, firstKey);
  let update: Session;
  try {
    update = await openUpdateSession(gradients.parameters, settings.optimizer, folder, settings.threads);
  } catch (error) {
    await gradients.dispose();
    throw error;
  }
  const { parameters } = gradients;
  const host = new HostState(parameters, optimizerSlots(settings.optimizer), update);
  const outputs = gradientOutputs(parameters);
  let step: { sum: GradientSum; feeds: Record<string, HostTensor> } | undefined;
  return {
    parameters,
    precision: gradients.precision,
    stateLocation: 'host',
    async load(state) {
      host.load(state);
    },
    begin(scale) {
      step = {
        sum: new GradientSum(parameters),
        feeds: {
          ...parameterFeeds(parameters, host.values),
          [LOSS_SCALE]: hostTensor('float32', [], Float32Array.of(scale)),
        },
      };
    },
    async add(batch, epoch, index) {
      const graph = await gradients.forBatch(batch);
      const feeds: Record<string, HostTensor> = { ...model.feeds(batch), ...step!.feeds };
      if (graph.dropout) feeds[LORA_DROPOUT_SEED] = dropoutSeedFeed(settings.seed, epoch, index);
      step!.sum.add(await graph.session.run(feeds, outputs));
    },
    async end() {
      return { sum: step!.sum };
    },
    async update(scalars) {
      await host.apply(step!.sum, scalars);
    },
    async state() {
      return host.state();
    },
    async dispose() {
      await Promise.all([gradients.dispose(), update.dispose()]);
    },
  };
}
