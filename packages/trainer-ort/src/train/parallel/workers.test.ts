import { rm } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { shardLlamaBatch } from '../../models/llama/parallel.ts';
import { listCheckpoints } from '../checkpoint.ts';
import type { WorkerStepTime } from '../engine.ts';
import { runTrainingLoop } from '../loop.ts';
import type { LoopEvent, TrainingLoopOptions } from '../options.ts';
import {
  type MlpBatch,
  mlpData,
  mlpLoop,
  mlpModel,
  mlpParallel,
  parameterBytes,
  shardMlpBatch,
} from '../test-model.ts';
import { shardRanges, type WorkerDevice } from './recipe.ts';

const TIMEOUT = 60_000;
const folders: string[] = [];
afterAll(async () => {
  await Promise.all(folders.map((f) => rm(f, { recursive: true, force: true })));
});

const cpu = (n: number): WorkerDevice[] => Array.from({ length: n }, () => ({ device: 'cpu' }));

async function options(overrides: Partial<TrainingLoopOptions<MlpBatch>>) {
  const opts = await mlpLoop({ data: mlpData({ examples: 8, batchSize: 2 }), maxSteps: 3, ...overrides });
  folders.push(opts.outputDir);
  return opts;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('shardRanges', () => {
  it.each([
    [
      7,
      2,
      [
        [0, 4],
        [4, 7],
      ],
    ],
    [
      6,
      3,
      [
        [0, 2],
        [2, 4],
        [4, 6],
      ],
    ],
    [
      1,
      2,
      [
        [0, 1],
        [1, 1],
      ],
    ],
    [5, 1, [[0, 5]]],
    [
      0,
      2,
      [
        [0, 0],
        [0, 0],
      ],
    ],
  ])('splits %i examples into %i consecutive shards', (count, parts, ranges) => {
    expect(shardRanges(count, parts)).toEqual(ranges);
  });
});

describe('shard functions', () => {
  it('splits a LLaMA batch by rows, in order, at its sequence length', () => {
    const batch = {
      batchSize: 3,
      seqLen: 2,
      inputIds: Int32Array.of(1, 2, 3, 4, 5, 6),
      labels: Int32Array.of(-100, 2, -100, 4, -100, 6),
      attentionMask: Int32Array.of(1, 1, 1, 1, 1, 0),
    };
    const [first, second] = shardLlamaBatch(batch, 2);
    expect(first).toEqual({
      batchSize: 2,
      seqLen: 2,
      inputIds: Int32Array.of(1, 2, 3, 4),
      labels: Int32Array.of(-100, 2, -100, 4),
      attentionMask: Int32Array.of(1, 1, 1, 1),
    });
    expect(second).toEqual({
      batchSize: 1,
      seqLen: 2,
      inputIds: Int32Array.of(5, 6),
      labels: Int32Array.of(-100, 6),
      attentionMask: Int32Array.of(1, 0),
    });
    // Copies, not views: a shard crosses to another process without the rest of the batch.
    expect(first!.inputIds.buffer.byteLength).toBe(16);
  });

  it('splits an MLP batch by examples', () => {
    const batch = { x: Float32Array.from({ length: 18 }, (_, i) => i), target: new Float32Array(9), size: 3 };
    expect(shardMlpBatch(batch, 2).map((s) => [s.size, s.x[0], s.x.length])).toEqual([
      [2, 0, 12],
      [1, 12, 6],
    ]);
  });
});

describe('worker processes', () => {
  it('trains in this process, with a warning, when the model gives no recipe', async () => {
    const events: LoopEvent[] = [];
    const withWorkers = await runTrainingLoop(
      await options({ workers: cpu(2), onEvent: (e) => events.push(e) }),
    );
    const plain = await runTrainingLoop(await options({}));
    expect(events.filter((e) => e.type === 'warning').map((e) => e.code)).toEqual(['parallel_unavailable']);
    expect(parameterBytes(withWorkers.parameters)).toEqual(parameterBytes(plain.parameters));
  });

  it(
    'ends the run when a worker throws, naming the worker and its error, after saving the last step',
    async () => {
      let calls = 0;
      const parallel = mlpParallel();
      const pids: number[] = [];
      const opts = await options({
        workers: cpu(2),
        parallel: {
          ...parallel,
          // The 4th micro-batch (step 2's second) gives worker 1 a shard its graph cannot take.
          shard(batch, parts) {
            const shards = parallel.shard(batch, parts);
            if (++calls === 4) shards[1] = { ...shards[1]!, x: new Float32Array(1) };
            return shards;
          },
        },
        checkpoints: { keepLast: 0 },
        onEvent: (e) => {
          const workers = (e as { workers?: WorkerStepTime[] }).workers;
          if (workers) pids.push(...workers.map((w) => w.pid));
        },
      });
      const failure = runTrainingLoop(opts);
      await expect(failure).rejects.toMatchObject({
        code: 'E_WORKER_FAILED',
        worker: 1,
        message: expect.stringMatching(
          /^worker 1 \(cpu, pid \d+\) failed: E_RUN_FAILED: feed 'x': 1 values for shape \[1, 6\]\. Training stopped in step 2; the state after step 1 is saved in .*step-1, and resume: auto/,
        ),
      });
      expect((await listCheckpoints(opts.outputDir)).map((c) => c.step)).toEqual([1]);
      expect(pids).toHaveLength(2);
      for (const pid of pids) expect(alive(pid)).toBe(false);
    },
    TIMEOUT,
  );

  it(
    'refuses a recipe whose module lacks the factory, before training',
    async () => {
      const opts = await options({
        workers: cpu(1),
        parallel: mlpParallel({}, { export: 'createNothing' }),
      });
      await expect(runTrainingLoop(opts)).rejects.toMatchObject({
        code: 'E_WORKER_RECIPE_INVALID',
        worker: 0,
        message: expect.stringMatching(/test-model\.ts exports no function 'createNothing'/),
      });
      expect(await listCheckpoints(opts.outputDir)).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'refuses a recipe that builds a multi-shape model (shapeKey), before training',
    async () => {
      const opts = await options({ workers: cpu(1), parallel: mlpParallel({ staticBatch: true }) });
      await expect(runTrainingLoop(opts)).rejects.toMatchObject({
        code: 'E_WORKER_RECIPE_INVALID',
        worker: 0,
        message: expect.stringMatching(
          /createMlpWorkerModel\(\) returned a model with shapeKey .* train in one process/,
        ),
      });
      expect(await listCheckpoints(opts.outputDir)).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'refuses workers that build different models from the same recipe',
    async () => {
      const opts = await options({ workers: cpu(2), parallel: mlpParallel({ perProcessSeed: true }) });
      await expect(runTrainingLoop(opts)).rejects.toMatchObject({
        code: 'E_WORKER_MISMATCH',
        worker: 1,
        message: expect.stringMatching(
          /^worker 1 .* starts 'fc1\.lora_A\.weight' at other values than worker 0/,
        ),
      });
    },
    TIMEOUT,
  );

  it(
    'trains the MLP on 3 workers like one process, ignoring Ctrl-C in the workers',
    async () => {
      const single = await runTrainingLoop(await options({ model: mlpModel() }));
      const events: LoopEvent[] = [];
      const sharded = await runTrainingLoop(
        await options({
          workers: cpu(3),
          parallel: mlpParallel(),
          onEvent: (e) => {
            events.push(e);
            // Ctrl-C reaches every process of the terminal's group: the workers must leave stopping to the loop.
            const workers = (e as { workers?: WorkerStepTime[] }).workers;
            if (e.type === 'step' && e.step === 1) for (const w of workers!) process.kill(w.pid, 'SIGINT');
          },
        }),
      );
      expect(sharded).toMatchObject({ stopped: 'completed', step: 3 });
      for (const [name, t] of sharded.parameters) {
        const other = single.parameters.get(name)!.data;
        t.data.forEach((v, i) => {
          expect(v).toBeCloseTo(other[i]!, 6);
        });
      }
    },
    TIMEOUT,
  );
});
