// The public names of data-parallel training. `runTrainingWorker` and `createLlamaWorkerModel`
// must be exports of the built package: worker processes import the bundle and call them by name.

export {
  createLlamaWorkerModel,
  type LlamaWorkerOptions,
  llamaParallelModel,
  shardLlamaBatch,
} from '../../models/llama/parallel.ts';
export type { WorkerStepTime } from '../engine.ts';
export { MAX_WORKERS } from '../options.ts';
export { runTrainingWorker } from './pool.ts';
export { type ModelRecipe, type ParallelModel, shardRanges, type WorkerDevice } from './recipe.ts';
export { WorkerError, type WorkerErrorCode } from './worker-error.ts';
