/**
 * What a worker process needs to train a model it cannot receive: ONNX graphs and model objects
 * do not cross process boundaries, so a worker rebuilds the model from a recipe — a module and
 * the options its factory takes — and the parent splits each micro-batch into shards.
 */
import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Device } from '../../device.ts';
import type { TrainableModel } from '../model.ts';
import { WorkerError } from './worker-error.ts';

/**
 * How a worker rebuilds the model: `await import(module)[export](options)` returns the
 * `TrainableModel`. `options` travel by structured clone (JSON values, typed arrays, Maps).
 */
export interface ModelRecipe {
  /** Absolute path or `file:` URL of an ES module. */
  module: string;
  /** Name of the factory the module exports; default `createModel`. */
  export?: string;
  options?: unknown;
}

/** What a parallel run needs beyond the model object: the recipe, and how to split a micro-batch. */
export interface ParallelModel<Batch> {
  recipe: ModelRecipe;
  /**
   * Splits a micro-batch's examples into exactly `parts` consecutive shards, in order (empty
   * shards allowed; `shardRanges` gives the split). Shards go to the workers by structured clone.
   */
  shard(batch: Batch, parts: number): Batch[];
}

/** One worker process: the execution provider of its session and, for CUDA, the device it sees. */
export interface WorkerDevice {
  device: Device;
  /** CUDA device ordinal; the worker sees only this GPU (`CUDA_VISIBLE_DEVICES`). */
  deviceId?: number;
}

/** `[start, end)` of each of `parts` consecutive shards of `count` examples; the first `count % parts` get one more. */
export function shardRanges(count: number, parts: number): [number, number][] {
  const base = Math.floor(count / parts);
  const extra = count % parts;
  const ranges: [number, number][] = [];
  let start = 0;
  for (let part = 0; part < parts; part++) {
    const end = start + base + (part < extra ? 1 : 0);
    ranges.push([start, end]);
    start = end;
  }
  return ranges;
}

/** Imports the recipe's module and calls its factory (in a worker process). */
export async function modelFromRecipe<Batch>(recipe: ModelRecipe): Promise<TrainableModel<Batch>> {
  const name = recipe.export ?? 'createModel';
  const module: Record<string, unknown> = await import(
    isAbsolute(recipe.module) ? pathToFileURL(recipe.module).href : recipe.module
  );
  const factory = module[name];
  if (typeof factory !== 'function') {
    throw new WorkerError(
      'E_WORKER_RECIPE_INVALID',
      `model recipe: ${recipe.module} exports no function '${name}'; export the model factory under that name, or set the recipe's export`,
    );
  }
  const model = (await factory(recipe.options)) as Partial<TrainableModel<Batch>> | undefined;
  if (typeof model?.build !== 'function' || typeof model.feeds !== 'function') {
    throw new WorkerError(
      'E_WORKER_RECIPE_INVALID',
      `model recipe: ${recipe.module} ${name}() returned no TrainableModel (an object with build and feeds)`,
    );
  }
  if (model.shapeKey !== undefined) {
    throw new WorkerError(
      'E_WORKER_RECIPE_INVALID',
      `model recipe: ${recipe.module} ${name}() returned a model with shapeKey (one graph per micro-batch shape), which data-parallel workers do not support yet; train in one process (without device_ids / num_workers)`,
    );
  }
  return model as TrainableModel<Batch>;
}
