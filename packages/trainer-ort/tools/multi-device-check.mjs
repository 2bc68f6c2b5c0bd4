#!/usr/bin/env node
// Checks data-parallel training on a GPU machine (not run in CI): trains the tiny LLaMA fixture
// on the CPU in this process (fp32), then in worker processes on the listed CUDA devices
// (`device_ids`, fp16 by `mixed_precision: auto`), and compares the loss curves.
//
//   npx tsdown && node tools/multi-device-check.mjs                  # device_ids: [0]
//   node tools/multi-device-check.mjs --device-ids 0,1               # two GPUs
//   node tools/multi-device-check.mjs --cpu-workers 2                # no GPU: 2 CPU workers vs 1 process
//
// Exits 1 when a step's loss differs from the CPU run's by more than the tolerance (relative).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createRng } from '@lora/dataset';
import {
  createLlamaWorkerModel,
  isCudaInstalled,
  llamaParallelModel,
  runTrainingLoop,
} from '../dist/index.js';

const { values: args } = parseArgs({
  options: {
    'device-ids': { type: 'string', default: '0' },
    'cpu-workers': { type: 'string' },
    steps: { type: 'string', default: '20' },
  },
});
/** fp16 activations carry ~3 significant digits; 20 AdamW steps of the tiny model stay well inside 2 %. */
const FP16_TOLERANCE = 2e-2;
/** fp32 on two CPU workers differs from one process only by summation order. */
const FP32_TOLERANCE = 1e-5;

const FOLDER = new URL('../src/models/__fixtures__/llama', import.meta.url).pathname;
const [VOCAB, SEQUENCES, BATCH] = [64, 64, 8];
const LORA = { targetModules: ['q_proj', 'v_proj'], rank: 4, alpha: 8, seed: 42 };

/** Random token sequences of 4–15 tokens, prompt tokens unlearned, reshuffled every epoch. */
function tokenData() {
  const rng = createRng(7);
  const sequences = Array.from({ length: SEQUENCES }, () => {
    const ids = Array.from({ length: 4 + rng.nextInt(12) }, () => rng.nextInt(VOCAB));
    return { ids, labels: ids.map((id, t) => (t < 2 ? -100 : id)) };
  });
  return {
    microBatchesPerEpoch: SEQUENCES / BATCH,
    async batch(epoch, index) {
      const order = createRng(11, epoch).shuffle(Array.from({ length: SEQUENCES }, (_, i) => i));
      const picked = order.slice(index * BATCH, (index + 1) * BATCH).map((i) => sequences[i]);
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

async function train(label, settings) {
  const outputDir = await mkdtemp(join(tmpdir(), 'multi-device-check-'));
  const steps = [];
  const started = performance.now();
  try {
    const result = await runTrainingLoop({
      model: await createLlamaWorkerModel({ folder: FOLDER, lora: LORA }),
      data: tokenData(),
      outputDir,
      seed: 42,
      maxSteps: Number(args.steps),
      gradientAccumulationSteps: 2,
      learningRate: 0.01,
      schedule: { scheduler: 'constant' },
      optimizer: { type: 'adamw', betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 },
      maxGradNorm: 1,
      mixedPrecision: 'auto',
      checkpoints: { keepLast: 1 },
      ...settings,
      onEvent: (e) => {
        if (e.type === 'step') steps.push(e);
        if (e.type === 'warning') console.log(`  ${label}: warning ${e.code}: ${e.message}`);
      },
    });
    const seconds = (performance.now() - started) / 1000;
    const workers = steps.at(-1)?.workers?.map((w) => `${w.device} ${(w.seconds * 1000).toFixed(1)} ms`);
    console.log(
      `${label}: ${result.precision}, ${steps.length} steps in ${seconds.toFixed(1)} s` +
        `${workers ? `; last step per worker: ${workers.join(', ')}` : ''}`,
    );
    return steps.map((s) => s.loss);
  } finally {
    await rm(outputDir, { recursive: true, force: true });
  }
}

const reference = await train('cpu, this process', { device: 'cpu' });
let label;
let losses;
let tolerance;
if (args['cpu-workers'] !== undefined) {
  const n = Number(args['cpu-workers']);
  label = `${n} cpu workers`;
  tolerance = FP32_TOLERANCE;
  losses = await train(label, {
    device: 'cpu',
    workers: Array.from({ length: n }, () => ({ device: 'cpu' })),
    parallel: llamaParallelModel(FOLDER, LORA),
  });
} else {
  if (!isCudaInstalled()) {
    console.error(
      'the CUDA provider of onnxruntime-node is not installed: ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node',
    );
    process.exit(2);
  }
  const ids = args['device-ids'].split(',').map(Number);
  label = `device_ids [${ids.join(', ')}]`;
  tolerance = FP16_TOLERANCE;
  losses = await train(label, {
    device: 'cuda',
    workers: ids.map((deviceId) => ({ device: 'cuda', deviceId })),
    parallel: llamaParallelModel(FOLDER, LORA),
  });
}
let worst = 0;
console.log('step  cpu loss      check loss    relative difference');
reference.forEach((loss, i) => {
  const difference = Math.abs(losses[i] / loss - 1);
  worst = Math.max(worst, difference);
  console.log(
    `${String(i + 1).padStart(4)}  ${loss.toFixed(6).padStart(10)}  ${losses[i].toFixed(6).padStart(12)}  ${difference.toExponential(2)}`,
  );
});
console.log(`largest relative difference ${worst.toExponential(2)} (tolerance ${tolerance})`);
process.exit(worst <= tolerance ? 0 : 1);
