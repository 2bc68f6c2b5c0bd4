/**
 * Data-parallel training on the CPU: tokens per second of the whole loop (gradients, IPC, update)
 * for one process and for 1 and 2 worker processes, on a ~6M-parameter LLaMA with random F32
 * weights; and the IPC cost of one step's LoRA traffic for a LoRA the size of LLaMA-7B q_proj +
 * v_proj at rank 16 (values out, gradient sums back). Run: `npx jiti bench/parallel-throughput.ts`.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createRng } from '@lora/dataset';
import { writeSafetensors } from '@lora/safetensors';
import { openLlamaCheckpoint } from '../src/models/llama/checkpoint.ts';
import { parseLlamaConfig } from '../src/models/llama/config.ts';
import { type LlamaBatch, type LlamaLoraOptions, LlamaModel } from '../src/models/llama/model.ts';
import { llamaParallelModel } from '../src/models/llama/parallel.ts';
import { llamaTensorShapes } from '../src/models/llama/weights.ts';
import type { BatchSource } from '../src/train/data.ts';
import type { WorkerStepTime } from '../src/train/engine.ts';
import { runTrainingLoop } from '../src/train/loop.ts';
import type { LoopEvent } from '../src/train/options.ts';
import type { WorkerDevice } from '../src/train/parallel/recipe.ts';

const CONFIG = {
  architectures: ['LlamaForCausalLM'],
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  hidden_size: 256,
  intermediate_size: 688,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  vocab_size: 2048,
  tie_word_embeddings: false,
};
const [BATCH, SEQ, STEPS] = [8, 64, 6];
const LORA: LlamaLoraOptions = { targetModules: ['q_proj', 'v_proj'], rank: 8, alpha: 16, seed: 1 };

const data: BatchSource<LlamaBatch> = {
  microBatchesPerEpoch: 64,
  async batch(epoch, index) {
    const rng = createRng(3, epoch, index);
    const inputIds = Int32Array.from({ length: BATCH * SEQ }, () => rng.nextInt(CONFIG.vocab_size));
    const attentionMask = new Int32Array(BATCH * SEQ).fill(1);
    return { batchSize: BATCH, seqLen: SEQ, inputIds, labels: Int32Array.from(inputIds), attentionMask };
  },
  count: (b) => ({ examples: b.batchSize, tokens: b.batchSize * b.seqLen }),
};

const root = await mkdtemp(join(tmpdir(), 'bench-parallel-'));
try {
  const folder = join(root, 'model');
  await mkdir(folder);
  await writeFile(join(folder, 'config.json'), JSON.stringify(CONFIG));
  const rng = createRng(1);
  const shapes = llamaTensorShapes(parseLlamaConfig(CONFIG));
  await writeSafetensors(
    join(folder, 'model.safetensors'),
    new Map(
      [...shapes].map(([name, shape]) => {
        const data = Float32Array.from(
          { length: shape.reduce((a, b) => a * b, 1) },
          () => rng.normal() * 0.05,
        );
        if (name.endsWith('norm.weight')) data.fill(1);
        return [name, { dtype: 'F32' as const, shape, data }];
      }),
    ),
  );
  const weights = [...shapes.values()].reduce((sum, s) => sum + s.reduce((a, b) => a * b, 1), 0);
  console.log(
    `model: ${(weights / 1e6).toFixed(1)} M parameters; micro-batch ${BATCH} × ${SEQ} tokens, 2 per step; ${availableParallelism()} cores`,
  );

  const cores = availableParallelism();
  const runs: [string, WorkerDevice[] | undefined, number][] = [
    [`1 process, ${cores} threads`, undefined, cores],
    [`1 worker, ${cores} threads`, [{ device: 'cpu' }], cores],
    ['2 workers, 1 thread each', [{ device: 'cpu' }, { device: 'cpu' }], 1],
  ];
  for (const [label, workers, threads] of runs) {
    const outputDir = join(root, label.replace(/\W+/g, '-'));
    const steps: (Extract<LoopEvent, { type: 'step' }> & { workers?: WorkerStepTime[] })[] = [];
    const started = performance.now();
    let firstStep = 0;
    await runTrainingLoop({
      model: new LlamaModel(await openLlamaCheckpoint(folder), LORA),
      data,
      outputDir,
      seed: 1,
      maxSteps: STEPS,
      gradientAccumulationSteps: 2,
      learningRate: 1e-3,
      schedule: { scheduler: 'constant' },
      optimizer: { type: 'adamw', betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 },
      maxGradNorm: 1,
      mixedPrecision: 'no',
      device: 'cpu',
      threads,
      checkpoints: { keepLast: 1 },
      ...(workers ? { workers, parallel: llamaParallelModel(folder, LORA) } : {}),
      onEvent: (e) => {
        if (e.type !== 'step') return;
        if (steps.length === 0) firstStep = performance.now();
        steps.push(e);
      },
    });
    // The first step pays for session warm-up; the median of the rest is the steady state.
    const rates = steps
      .slice(1)
      .map((s) => (s as { tokens_per_s: number }).tokens_per_s)
      .sort((a, b) => a - b);
    const median = rates[Math.floor(rates.length / 2)]!;
    const perWorker = steps
      .at(-1)
      ?.workers?.map((w) => `${(w.seconds * 1000).toFixed(0)} ms`)
      .join(' / ');
    console.log(
      `${label}: ${median.toFixed(0)} tokens/s; start to first step ${((firstStep - started) / 1000).toFixed(1)} s` +
        (perWorker ? `; worker compute per step ${perWorker}` : ''),
    );
  }

  // One step's traffic per worker: 128 LoRA tensors of 8.4 M floats in total, out and back.
  const tensors = Object.fromEntries(
    Array.from({ length: 128 }, (_, i) => [`t${i}`, new Float32Array(8_388_608 / 128).fill(i)]),
  );
  const child = spawn(process.execPath, ['-e', "process.on('message', (m) => process.send(m))"], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  const roundTrip = () =>
    new Promise<number>((resolve) => {
      const t0 = performance.now();
      child.once('message', () => resolve(performance.now() - t0));
      child.send(tensors);
    });
  await roundTrip();
  const times = [await roundTrip(), await roundTrip(), await roundTrip()].sort((a, b) => a - b);
  console.log(
    `IPC round trip of 8.4 M LoRA floats (32 MiB each way): ${times[1]!.toFixed(0)} ms (median of 3)`,
  );
  child.kill();
} finally {
  await rm(root, { recursive: true, force: true });
}
