import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRng } from '@lora/dataset';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLlamaCheckpoint } from '../../models/llama/checkpoint.ts';
import { type LlamaBatch, type LlamaLoraOptions, LlamaModel } from '../../models/llama/model.ts';
import { llamaParallelModel } from '../../models/llama/parallel.ts';
import { fixtureFolder, relativeError } from '../../models/llama/testing.ts';
import { listCheckpoints, readCheckpoint } from '../checkpoint.ts';
import type { BatchSource } from '../data.ts';
import type { WorkerStepTime } from '../engine.ts';
import { runTrainingLoop, type TrainingLoopResult } from '../loop.ts';
import type { LoopEvent, TrainingLoopOptions } from '../options.ts';
import { parameterBytes } from '../test-model.ts';
import type { WorkerDevice } from './recipe.ts';
import { WorkerError } from './worker-error.ts';

const FOLDER = fixtureFolder('llama');
const VOCAB = 64;
/** 10 sequences in micro-batches of 3: 3, 3, 3, 1 per epoch, so the last one leaves worker 1 idle. */
const [SEQUENCES, BATCH] = [10, 3];
const TWO: WorkerDevice[] = [{ device: 'cpu' }, { device: 'cpu' }];
const TIMEOUT = 60_000;

const folders: string[] = [];
afterAll(async () => {
  await Promise.all(folders.map((f) => rm(f, { recursive: true, force: true })));
});

/** Random token sequences of 3–8 tokens whose first one or two are prompt (label -100), reshuffled each epoch. */
function tokenData(onBatch?: (epoch: number, index: number) => void): BatchSource<LlamaBatch> {
  const rng = createRng(7);
  const sequences = Array.from({ length: SEQUENCES }, () => {
    const length = 3 + rng.nextInt(6);
    const ids = Array.from({ length }, () => rng.nextInt(VOCAB));
    const prompt = 1 + rng.nextInt(2);
    return { ids, labels: ids.map((id, t) => (t < prompt ? -100 : id)) };
  });
  return {
    microBatchesPerEpoch: Math.ceil(SEQUENCES / BATCH),
    async batch(epoch, index) {
      onBatch?.(epoch, index);
      const order = createRng(11, epoch).shuffle(Array.from({ length: SEQUENCES }, (_, i) => i));
      const picked = order.slice(index * BATCH, (index + 1) * BATCH).map((i) => sequences[i]!);
      const seqLen = Math.max(...picked.map((s) => s.ids.length));
      const inputIds = new Int32Array(picked.length * seqLen);
      const labels = new Int32Array(picked.length * seqLen).fill(-100);
      const attentionMask = new Int32Array(picked.length * seqLen);
      picked.forEach((s, row) => {
        inputIds.set(s.ids, row * seqLen);
        labels.set(s.labels, row * seqLen);
        attentionMask.fill(1, row * seqLen, row * seqLen + s.ids.length);
      });
      return { batchSize: picked.length, seqLen, inputIds, labels, attentionMask };
    },
    count: (b) => ({ examples: b.batchSize, tokens: b.attentionMask.reduce((a, v) => a + v, 0) }),
  };
}

interface Setup {
  workers?: WorkerDevice[];
  dropout?: number;
  onBatch?: (epoch: number, index: number) => void;
  onEvent?: (event: LoopEvent) => void;
  outputDir?: string;
}

/** 2 epochs of 2 steps (micro-batches (0, 1) and (2, 3)), AdamW, a checkpoint every 2 steps. */
async function options(setup: Setup): Promise<TrainingLoopOptions<LlamaBatch>> {
  const lora: LlamaLoraOptions = {
    targetModules: ['q_proj', 'v_proj'],
    rank: 4,
    alpha: 8,
    seed: 42,
    ...(setup.dropout ? { dropout: setup.dropout } : {}),
  };
  const outputDir = setup.outputDir ?? (await mkdtemp(join(tmpdir(), 'lora-parallel-')));
  folders.push(outputDir);
  return {
    model: new LlamaModel(await openLlamaCheckpoint(FOLDER), lora),
    data: tokenData(setup.onBatch),
    outputDir,
    seed: 42,
    epochs: 2,
    gradientAccumulationSteps: 2,
    learningRate: 0.01,
    schedule: { scheduler: 'linear', warmupSteps: 1 },
    optimizer: { type: 'adamw', betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 },
    maxGradNorm: 1,
    mixedPrecision: 'auto',
    device: 'cpu',
    threads: 1,
    checkpoints: { everySteps: 2, keepLast: 0 },
    resume: 'auto',
    ...(setup.workers ? { workers: setup.workers, parallel: llamaParallelModel(FOLDER, lora) } : {}),
    ...(setup.onEvent ? { onEvent: setup.onEvent } : {}),
  };
}

type StepEvent = Extract<LoopEvent, { type: 'step' }> & { workers?: WorkerStepTime[] };

async function train(setup: Setup) {
  const events: LoopEvent[] = [];
  const opts = await options({
    ...setup,
    onEvent: (e) => {
      events.push(e);
      setup.onEvent?.(e);
    },
  });
  const result = await runTrainingLoop(opts);
  const steps = events.filter((e): e is StepEvent => e.type === 'step');
  return { result, steps, events, outputDir: opts.outputDir };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('data-parallel training on worker processes', () => {
  it(
    'equals the single-process run: bit for bit on one worker, within float summation order on two',
    async () => {
      const [single, one, two] = await Promise.all([
        train({}),
        train({ workers: [{ device: 'cpu' }] }),
        train({ workers: TWO }),
      ]);
      expect(single.result.step).toBe(4);
      expect(parameterBytes(one.result.parameters)).toEqual(parameterBytes(single.result.parameters));
      expect(one.steps.map((s) => s.loss)).toEqual(single.steps.map((s) => s.loss));

      const lossError = Math.max(...two.steps.map((s, i) => Math.abs(s.loss / single.steps[i]!.loss - 1)));
      const parameterError = Math.max(
        ...[...two.result.parameters].map(([name, t]) =>
          relativeError(t.data, single.result.parameters.get(name)!.data),
        ),
      );
      console.log(
        `2 workers vs 1 process: loss ${lossError.toExponential(2)}, parameters ${parameterError.toExponential(2)}`,
      );
      expect(lossError).toBeLessThan(1e-6);
      expect(parameterError).toBeLessThan(1e-5);
      expect(parameterBytes(two.result.parameters)).not.toEqual(parameterBytes(single.result.parameters));

      // Each step reports every worker's time and examples; micro-batches (0, 1) split 2 + 1 twice,
      // (2, 3) split 2 + 1 and 1 + 0.
      expect(single.steps[0]).not.toHaveProperty('workers');
      for (const [i, step] of two.steps.entries()) {
        expect(step.workers!.map((w) => [w.worker, w.device, w.examples])).toEqual(
          i % 2 === 0
            ? [
                [0, 'cpu', 4],
                [1, 'cpu', 2],
              ]
            : [
                [0, 'cpu', 3],
                [1, 'cpu', 1],
              ],
        );
        for (const w of step.workers!) expect(w.seconds).toBeGreaterThan(0);
      }
      // The workers are gone once the run returns.
      for (const w of two.steps[0]!.workers!) expect(alive(w.pid)).toBe(false);
    },
    TIMEOUT,
  );
});

let reference: TrainingLoopResult;
beforeAll(async () => {
  reference = (await train({ workers: TWO, dropout: 0.1 })).result;
}, TIMEOUT);

describe('resume and failures of a 2-worker run', () => {
  it(
    'resumes after a crash mid-accumulation to the same bits as an uninterrupted run',
    async () => {
      const pids: number[] = [];
      let crashed = false;
      const first = await options({
        workers: TWO,
        dropout: 0.1,
        onEvent: (e) => e.type === 'step' && pids.push(...(e as StepEvent).workers!.map((w) => w.pid)),
        onBatch: (epoch, index) => {
          if (!crashed && epoch === 1 && index === 1) {
            crashed = true;
            throw new Error('simulated crash');
          }
        },
      });
      await expect(runTrainingLoop(first)).rejects.toThrow('simulated crash');
      expect(pids.length).toBeGreaterThan(0);
      for (const pid of pids) expect(alive(pid)).toBe(false);
      expect((await listCheckpoints(first.outputDir)).map((c) => c.step)).toEqual([2]);

      const resumed = await train({ workers: TWO, dropout: 0.1, outputDir: first.outputDir });
      expect(resumed.steps.map((s) => s.step)).toEqual([3, 4]);
      expect(parameterBytes(resumed.result.parameters)).toEqual(parameterBytes(reference.parameters));
    },
    TIMEOUT,
  );

  it(
    'stops with a checkpoint of the last completed step when a worker is killed, and resumes from it',
    async () => {
      const workers: WorkerStepTime[][] = [];
      const opts = await options({
        workers: TWO,
        dropout: 0.1,
        onEvent: (e) => {
          if (e.type !== 'step') return;
          workers.push((e as StepEvent).workers!);
          if (e.step === 3) process.kill(workers[2]![1]!.pid, 'SIGKILL');
        },
      });
      const failure = await runTrainingLoop(opts).catch((error: unknown) => error);
      expect(WorkerError.isInstance(failure)).toBe(true);
      const error = failure as WorkerError;
      expect(error).toMatchObject({ code: 'E_WORKER_FAILED', worker: 1 });
      expect(error.message).toMatch(
        /^worker 1 \(cpu, pid \d+\) was killed by SIGKILL\. Training stopped in step 4/,
      );
      const saved = await listCheckpoints(opts.outputDir);
      expect(saved.map((c) => c.step)).toEqual([2, 3]);
      expect(error.message).toContain(saved[1]!.path);
      for (const w of workers[2]!) expect(alive(w.pid)).toBe(false);
      const checkpoint = await readCheckpoint(saved[1]!.path);
      expect(checkpoint.meta).toMatchObject({ step: 3, epoch: 1, position: 2 });

      const resumed = await train({ workers: TWO, dropout: 0.1, outputDir: opts.outputDir });
      expect(resumed.steps.map((s) => s.step)).toEqual([4]);
      expect(parameterBytes(resumed.result.parameters)).toEqual(parameterBytes(reference.parameters));
    },
    TIMEOUT,
  );
});
