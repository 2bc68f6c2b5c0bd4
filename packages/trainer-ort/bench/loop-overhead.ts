/**
 * What the training loop adds around the model's own graph, for a LoRA the size of LLaMA-7B
 * q_proj + v_proj at rank 16 (8.4 M parameters in 128 tensors): the AdamW update graph, the host
 * gradient sum and norm, a checkpoint; and the loop's per-step cost on the tiny test MLP.
 * Run: `npx jiti bench/loop-overhead.ts`.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createRng } from '@lora/dataset';
import { type HostTensor, hostTensor, writeModel } from '@lora/engine';
import { Session } from '../src/session.ts';
import { writeCheckpoint } from '../src/train/checkpoint.ts';
import { GradientSum } from '../src/train/gradient-sum.ts';
import { runTrainingLoop } from '../src/train/loop.ts';
import { buildUpdateGraph, updateScalars } from '../src/train/optimizer.ts';
import { mlpData, mlpLoop } from '../src/train/test-model.ts';

const rng = createRng(1);
const random = (n: number) => Float32Array.from({ length: n }, () => rng.normal() * 0.01);
const folder = await mkdtemp(join(tmpdir(), 'bench-loop-'));

async function time(runs: number, body: () => Promise<unknown> | unknown): Promise<number> {
  await body();
  const start = performance.now();
  for (let i = 0; i < runs; i++) await body();
  return (performance.now() - start) / runs;
}

// 32 layers × {q_proj, v_proj} × {A [16, 4096], B [4096, 16]}.
const parameters = Array.from({ length: 128 }, (_, i) => ({
  name: `layers.${i >> 2}.${i & 2 ? 'v_proj' : 'q_proj'}.lora_${i & 1 ? 'B' : 'A'}.weight`,
  shape: i & 1 ? [4096, 16] : [16, 4096],
  group: 'default',
}));
const count = parameters.length * 65536;
const values = new Map(parameters.map((p) => [p.name, random(65536)]));

const optimizer = { type: 'adamw', betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 } as const;
const update = await Session.create(await writeModel(buildUpdateGraph(parameters, optimizer), folder), {
  device: 'cpu',
  threads: 2,
});
const feeds: Record<string, HostTensor> = updateScalars(optimizer, new Map([['default', 1e-4]]), 1, 0.5);
for (const p of parameters) {
  for (const suffix of ['', '.grad', '.exp_avg', '.exp_avg_sq'])
    feeds[p.name + suffix] = hostTensor('float32', p.shape, values.get(p.name)!);
}
const updateMs = await time(10, () => update.run(feeds));
await update.dispose();

const outputs = Object.fromEntries(
  parameters.map((p) => [`${p.name}.grad`, hostTensor('float32', p.shape, values.get(p.name)!)]),
);
outputs['loss_sum'] = hostTensor('float32', [], Float32Array.of(1));
outputs['loss_weight'] = hostTensor('float32', [], Float32Array.of(1));
const sum = new GradientSum(parameters);
const addMs = await time(10, () => sum.add(outputs));
const normMs = await time(10, () => sum.squaredNorm());

const meta = {
  format: 'lora-trainer-ort-checkpoint' as const,
  version: 1 as const,
  step: 1,
  updates: 1,
  epoch: 0,
  position: 2,
  epochLoss: { sum: 1, weight: 1 },
  microBatchesPerEpoch: 10,
  rng: { algorithm: 'xoshiro128**' as const, seed: 42 },
  optimizer: 'adamw',
  parameters: parameters.map((p) => ({ ...p, shape: [...p.shape] })),
};
const state = new Map(
  parameters.flatMap((p) => ['exp_avg', 'exp_avg_sq'].map((s) => [`${p.name}.${s}`, values.get(p.name)!])),
);
let step = 1;
const checkpointMs = await time(3, () =>
  writeCheckpoint(folder, { meta: { ...meta, step: step++ }, values, optimizerState: state }),
);

console.log(`LoRA of ${(count / 1e6).toFixed(1)} M parameters (${parameters.length} tensors):`);
console.log(`  AdamW update graph (CPU, 2 threads)     ${updateMs.toFixed(1)} ms`);
console.log(`  host gradient sum, one micro-batch      ${addMs.toFixed(1)} ms`);
console.log(`  host global norm                        ${normMs.toFixed(1)} ms`);
console.log(
  `  checkpoint (${((count * 12) / 2 ** 20).toFixed(0)} MiB, fsync'd)            ${checkpointMs.toFixed(0)} ms`,
);

for (const everySteps of [undefined, 1]) {
  const options = await mlpLoop({
    data: mlpData({ examples: 64, batchSize: 2 }),
    epochs: 10,
    checkpoints: { keepLast: 2, ...(everySteps ? { everySteps } : {}) },
  });
  const start = performance.now();
  const result = await runTrainingLoop(options);
  const perStep = (performance.now() - start) / result.step;
  console.log(
    `tiny MLP, ${result.step} steps of 2 micro-batches, checkpoint ${everySteps ? 'every step' : 'at the end'}: ${perStep.toFixed(2)} ms/step`,
  );
  await rm(options.outputDir, { recursive: true, force: true });
}
await rm(folder, { recursive: true, force: true });
