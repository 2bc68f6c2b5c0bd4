/**
 * Test fixtures for the loop: a 2-layer MLP with LoRA on both layers (frozen weights inline) and
 * a data source of fixed random examples, shuffled per epoch from `createRng(seed, epoch)`.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRng } from '@lora/dataset';
import type { Graph } from '@lora/engine';
import { cast, hostTensor, mul, reduceSum, sub, tanh } from '@lora/engine';
import { type LoraParameter, loraLayer } from '../lora.ts';
import { block, type MemoryOptions } from '../models/memory.ts';
import type { BatchSource } from './data.ts';
import type { TrainableModel } from './model.ts';
import type { TrainingLoopOptions } from './options.ts';
import { type ModelRecipe, type ParallelModel, shardRanges } from './parallel/recipe.ts';

export const [IN, HIDDEN, OUT] = [6, 8, 3];

export interface MlpBatch {
  x: Float32Array;
  target: Float32Array;
  size: number;
}

const randn = (rng: ReturnType<typeof createRng>, n: number, scale: number) =>
  Float32Array.from({ length: n }, () => rng.normal() * scale);

export interface MlpOptions {
  /**
   * A static batch dim: one graph per micro-batch size (shape key `b<size>`), the way SD has one
   * per aspect bucket.
   */
  staticBatch?: boolean;
  dropout?: number;
  /** Group label of the second layer's parameters. */
  secondGroup?: string;
  /** Seed of the LoRA initialisation; default 7. */
  loraSeed?: number;
  /** Checkpoints the first layer (its activations are recomputed in the backward pass). */
  memory?: MemoryOptions;
}

/** The frozen weights are fixed; only the LoRA factors train. lossSum = Σ squared errors, weight = examples. */
export function mlpModel(options: MlpOptions = {}): TrainableModel<MlpBatch> {
  const rng = createRng(1234);
  const w1 = randn(rng, HIDDEN * IN, 0.5);
  const w2 = randn(rng, OUT * HIDDEN, 0.5);
  const model: TrainableModel<MlpBatch> = {
    build(graph: Graph, { computeDtype, shapeKey }) {
      const batch = shapeKey === undefined ? 'batch' : Number(shapeKey.slice(1));
      const x = graph.input('x', 'float32', [batch, IN]);
      const target = graph.input('target', 'float32', [batch, OUT]);
      const weight = graph.input('examples', 'float32', []);
      const lora = {
        rank: 2,
        alpha: 4,
        seed: options.loraSeed ?? 7,
        ...(options.dropout ? { dropout: options.dropout } : {}),
      };
      const first: LoraParameter[] = [];
      const hidden = block(options.memory, cast(x, computeDtype), (input) => {
        const fc1 = loraLayer(input, graph.constant(w1, 'float32', [HIDDEN, IN]), 'fc1', lora);
        first.push(...fc1.parameters);
        return tanh(fc1.output);
      });
      const fc2 = loraLayer(hidden, graph.constant(w2, 'float32', [OUT, HIDDEN]), 'fc2', {
        ...lora,
        ...(options.secondGroup ? { group: options.secondGroup } : {}),
      });
      const diff = sub(cast(fc2.output, 'float32'), target);
      return {
        lossSum: reduceSum(mul(diff, diff)),
        weight,
        parameters: [...first, ...fc2.parameters],
      };
    },
    feeds: (batch) => ({
      x: hostTensor('float32', [batch.size, IN], batch.x),
      target: hostTensor('float32', [batch.size, OUT], batch.target),
      examples: hostTensor('float32', [], Float32Array.of(batch.size)),
    }),
  };
  return options.staticBatch ? { ...model, shapeKey: (batch) => `b${batch.size}` } : model;
}

export interface DataOptions {
  examples: number;
  batchSize: number;
  /** Called before each batch is served: a test can throw (a crash) or abort here. */
  onBatch?: (epoch: number, index: number) => void;
  /** Replace the inputs of these (epoch, index) batches with this value. */
  poison?: { at: readonly (readonly [number, number])[]; value: number };
}

/** `examples` fixed random examples of a rank-1 perturbation of the base MLP's task. */
export function mlpData(options: DataOptions): BatchSource<MlpBatch> {
  const rng = createRng(99);
  const xs = randn(rng, options.examples * IN, 1);
  const ys = randn(rng, options.examples * OUT, 0.5);
  return {
    microBatchesPerEpoch: Math.ceil(options.examples / options.batchSize),
    async batch(epoch, index) {
      options.onBatch?.(epoch, index);
      const order = createRng(5, epoch).shuffle(Array.from({ length: options.examples }, (_, i) => i));
      const picked = order.slice(index * options.batchSize, (index + 1) * options.batchSize);
      const x = new Float32Array(picked.length * IN);
      const target = new Float32Array(picked.length * OUT);
      picked.forEach((e, i) => {
        x.set(xs.subarray(e * IN, (e + 1) * IN), i * IN);
        target.set(ys.subarray(e * OUT, (e + 1) * OUT), i * OUT);
      });
      if (options.poison?.at.some(([pe, pi]) => pe === epoch && pi === index)) x.fill(options.poison.value);
      return { x, target, size: picked.length };
    },
    count: (batch) => ({ examples: batch.size, tokens: batch.size * IN }),
  };
}

/** Loop options for the MLP on the CPU, fp32, AdamW, 3 epochs (unless `maxSteps` is given); `overrides` wins. */
export async function mlpLoop(
  overrides: Partial<TrainingLoopOptions<MlpBatch>> & { data: BatchSource<MlpBatch> },
): Promise<TrainingLoopOptions<MlpBatch>> {
  const options: TrainingLoopOptions<MlpBatch> = {
    model: mlpModel(),
    outputDir: await mkdtemp(join(tmpdir(), 'lora-loop-')),
    seed: 42,
    epochs: 3,
    gradientAccumulationSteps: 2,
    learningRate: 0.05,
    schedule: { scheduler: 'cosine', warmupSteps: 2 },
    optimizer: { type: 'adamw', betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 },
    maxGradNorm: 1,
    mixedPrecision: 'auto',
    device: 'cpu',
    threads: 1,
    checkpoints: { everySteps: 1, keepLast: 0 },
    ...overrides,
  };
  if (overrides.maxSteps !== undefined && !('epochs' in overrides)) delete options.epochs;
  return options;
}

/** The bytes of every parameter, for bit-for-bit comparison. */
export function parameterBytes(
  parameters: ReadonlyMap<string, { data: ArrayBufferView }>,
): Record<string, string> {
  return Object.fromEntries(
    [...parameters].map(([name, t]) => [
      name,
      Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64'),
    ]),
  );
}

export interface MlpWorkerOptions extends MlpOptions {
  /** Seeds the LoRA initialisation with the process id: a recipe that builds another model in every worker. */
  perProcessSeed?: boolean;
}

/** The MLP's recipe factory (worker processes import this module). */
export function createMlpWorkerModel(options: MlpWorkerOptions = {}): TrainableModel<MlpBatch> {
  return mlpModel(options.perProcessSeed ? { ...options, loraSeed: process.pid } : options);
}

export function shardMlpBatch(batch: MlpBatch, parts: number): MlpBatch[] {
  return shardRanges(batch.size, parts).map(([start, end]) => ({
    x: batch.x.slice(start * IN, end * IN),
    target: batch.target.slice(start * OUT, end * OUT),
    size: end - start,
  }));
}

/** The MLP in worker processes; `recipe` overrides parts of the recipe (a missing factory, say). */
export function mlpParallel(
  options: MlpWorkerOptions = {},
  recipe: Partial<ModelRecipe> = {},
): ParallelModel<MlpBatch> {
  return {
    recipe: { module: import.meta.url, export: 'createMlpWorkerModel', options, ...recipe },
    shard: shardMlpBatch,
  };
}

export type MlpOverrides = Partial<TrainingLoopOptions<MlpBatch>> & { dataOptions?: Partial<DataOptions> };

/**
 * The loop tests' reference run: 10 examples in micro-batches of 2, two per step (the last of
 * each epoch has one), dropout 0.1, checkpoints every 2 steps; `overrides` wins. The output
 * folder is added to `folders`, for the test file to delete.
 */
export async function referenceLoop(folders: string[], { dataOptions, ...overrides }: MlpOverrides = {}) {
  const opts = await mlpLoop({
    model: mlpModel({ dropout: 0.1 }),
    data: mlpData({ examples: 10, batchSize: 2, ...dataOptions }),
    checkpoints: { everySteps: 2, keepLast: 0 },
    ...overrides,
  });
  folders.push(opts.outputDir);
  return opts;
}
