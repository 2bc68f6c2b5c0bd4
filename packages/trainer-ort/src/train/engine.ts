/**
 * Where a step's gradients come from. The loop drives an engine the same way whether it computes
 * in this process (`openLocalEngine`) or shards every micro-batch over worker processes
 * (`parallel/engine.ts`): `begin` with the LoRA values, `add` each micro-batch in order, `end` for
 * the float32 sums. Everything after the sums (clipping, the update, checkpoints) is the loop's.
 */
import { join } from 'node:path';
import { createRng } from '@lora/dataset';
import { LORA_DROPOUT_SEED } from '../lora.ts';
import { type HostTensor, hostTensor, type Session } from '../session.ts';
import { GradientSessions } from './gradient-sessions.ts';
import { GradientSum } from './gradient-sum.ts';
import type { TrainableModel } from './model.ts';
import { gradName, type OptimizerOptions } from './optimizer.ts';
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

export interface StepGradients {
  sum: GradientSum;
  /** Per-worker times, in worker order (parallel runs only). */
  workers?: WorkerStepTime[];
}

export interface GradientEngine<Batch> {
  readonly parameters: readonly TrainedParameter[];
  readonly precision: Precision;
  /** The optimizer's update graph, on the CPU. */
  readonly update: Session;
  /** Starts an optimizer step at these LoRA values and loss scale. */
  begin(values: ReadonlyMap<string, Float32Array>, scale: number): void;
  /** Adds micro-batch `index` of `epoch` (calls come in micro-batch order). */
  add(batch: Batch, epoch: number, index: number): Promise<void>;
  /** The step's sums. */
  end(): Promise<StepGradients>;
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
 * Both graphs in this process, in `<outputDir>/graphs/`: the gradients graph of `firstKey` (the
 * first micro-batch's shape key; `undefined` for a single-shape model) now, those of other shape
 * keys when a micro-batch first needs them.
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
  const outputs = gradientOutputs(parameters);
  let step: { sum: GradientSum; feeds: Record<string, HostTensor> } | undefined;
  return {
    parameters,
    precision: gradients.precision,
    update,
    begin(values, scale) {
      step = {
        sum: new GradientSum(parameters),
        feeds: {
          ...parameterFeeds(parameters, values),
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
    async dispose() {
      await Promise.all([gradients.dispose(), update.dispose()]);
    },
  };
}
