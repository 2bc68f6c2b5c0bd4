/**
 * Data-parallel gradients: every micro-batch is split into one shard of its examples per worker;
 * each worker sums its shards' gradients over the step, and the parent adds the workers' sums in
 * worker order (so a run is deterministic) before the loop's single update. The update runs here
 * on the host state, and the new LoRA values reach every worker with the next step's `begin`.
 */
import { join } from 'node:path';
import type { MixedPrecision } from '@lora/config';
import { TrainerOrtError } from '../../errors.ts';
import type { BatchSource } from '../data.ts';
import type { GradientEngine, WorkerStepTime } from '../engine.ts';
import { GradientSum } from '../gradient-sum.ts';
import { HostState } from '../host-state.ts';
import { type OptimizerOptions, optimizerSlots } from '../optimizer.ts';
import { GRAPHS_FOLDER, groupOf, openUpdateSession, type TrainedParameter } from '../step-graphs.ts';
import { WorkerPool } from './pool.ts';
import type { ReadyMessage } from './protocol.ts';
import type { ParallelModel, WorkerDevice } from './recipe.ts';
import { WorkerError } from './worker-error.ts';

export interface WorkerEngineSettings<Batch> {
  parallel: ParallelModel<Batch>;
  workers: readonly WorkerDevice[];
  count: BatchSource<Batch>['count'];
  outputDir: string;
  optimizer: OptimizerOptions;
  mixedPrecision: MixedPrecision;
  seed: number;
  threads?: number;
  copyExternalData?: boolean;
  onNotice: (message: string) => void;
}

export async function openWorkerEngine<Batch>(
  settings: WorkerEngineSettings<Batch>,
): Promise<GradientEngine<Batch>> {
  const folder = join(settings.outputDir, GRAPHS_FOLDER);
  const pool = await WorkerPool.start({
    recipe: settings.parallel.recipe,
    workers: settings.workers,
    ...(settings.threads === undefined ? {} : { threads: settings.threads }),
    mixedPrecision: settings.mixedPrecision,
    copyExternalData: settings.copyExternalData ?? false,
    graphsFolder: folder,
    seed: settings.seed,
    onNotice: (worker, message) => settings.onNotice(`worker ${worker}: ${message}`),
  });
  let update: Awaited<ReturnType<typeof openUpdateSession>>;
  let parameters: TrainedParameter[];
  try {
    parameters = agreedParameters(pool);
    update = await openUpdateSession(parameters, settings.optimizer, folder, settings.threads);
  } catch (error) {
    await pool.close();
    throw error;
  }
  const size = pool.size;
  const devices = pool.ready.map((ready, k) => {
    const { deviceId } = settings.workers[k]!;
    return ready.device === 'cuda' && deviceId !== undefined ? `cuda:${deviceId}` : ready.device;
  });
  const host = new HostState(parameters, optimizerSlots(settings.optimizer), update);
  let examples: number[] = [];
  let sum: GradientSum | undefined;
  return {
    parameters,
    precision: pool.ready[0]!.precision,
    stateLocation: 'host',
    async load(state) {
      host.load(state);
    },
    begin(scale) {
      examples = new Array<number>(size).fill(0);
      pool.begin(host.values, scale);
    },
    async add(batch, epoch, index) {
      const shards = settings.parallel.shard(batch, size);
      if (shards.length !== size) {
        throw new TrainerOrtError(
          'E_INVALID_ARGUMENT',
          `parallel.shard returned ${shards.length} shards of micro-batch ${index} (epoch ${epoch + 1}) for ${size} workers; it must return exactly one per worker`,
        );
      }
      shards.forEach((shard, k) => {
        const n = settings.count(shard).examples;
        if (n === 0) return; // a micro-batch smaller than the worker count leaves some idle
        examples[k]! += n;
        pool.shard(k, shard, epoch, index);
      });
    },
    async end() {
      const replies = await pool.end();
      sum = new GradientSum(parameters);
      for (const reply of replies) sum.merge(reply);
      const workers: WorkerStepTime[] = replies.map((reply, k) => ({
        worker: k,
        device: devices[k]!,
        pid: pool.pid(k),
        seconds: reply.seconds,
        examples: examples[k]!,
      }));
      return { sum, workers };
    },
    async update(scalars) {
      await host.apply(sum!, scalars);
    },
    async state() {
      return host.state();
    },
    async dispose() {
      await Promise.all([pool.close(), update.dispose()]);
    },
  };
}

/**
 * Worker 0's parameters, once every worker is known to have built the same ones, with the same
 * initial values and precision: the recipe must be deterministic, or the shards would train
 * different models.
 */
function agreedParameters(pool: WorkerPool): TrainedParameter[] {
  const [first, ...others] = pool.ready as [ReadyMessage, ...ReadyMessage[]];
  others.forEach((ready, i) => {
    const k = i + 1;
    const mismatch = (what: string) =>
      new WorkerError(
        'E_WORKER_MISMATCH',
        `${pool.label(k)} ${what} than ${pool.label(0)}: every worker must build the same model from the recipe (same options, randomness only from the seed)`,
        { worker: k },
      );
    if (ready.precision !== first.precision) {
      throw new WorkerError(
        'E_WORKER_MISMATCH',
        `${pool.label(k)} computes in ${ready.precision} on ${ready.device}, ${pool.label(0)} in ${first.precision} on ${first.device}: ` +
          'set mixed_precision explicitly, or make every listed device available',
        { worker: k },
      );
    }
    if (ready.parameters.length !== first.parameters.length) throw mismatch('built other LoRA parameters');
    ready.parameters.forEach((p, j) => {
      const q = first.parameters[j]!;
      if (p.name !== q.name || p.shape.join() !== q.shape.join() || groupOf(p) !== groupOf(q))
        throw mismatch(
          `built parameter '${p.name}' [${p.shape.join(', ')}] in another place, shape or group`,
        );
      if (!sameBytes(p.initial, q.initial)) throw mismatch(`starts '${p.name}' at other values`);
    });
  });
  return first.parameters;
}

function sameBytes(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}
