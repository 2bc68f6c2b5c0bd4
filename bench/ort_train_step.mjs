// ORT side of bench/train-step.mjs, one process per model (so its peak RSS is that model's
// alone): @lora/trainer-ort's own training loop (`runTrainingLoop`; for SD, `trainSd` around it)
// on the CPU provider, fp32, 2 intra-op threads, AdamW. Requests arrive as JSON lines on stdin, as
// for the Python sides (bench/worker.py): {"cmd": "info"}, then {"cmd": "run", "steps": N} per
// round. Each round's time is the sum of the loop's own step times (from its `step` events: the
// micro-batch, the gradients session, the host-side sums, the update session), so graph building,
// session start-up and the wait for the next request are not counted.
//
// The loop cannot be paused from outside, so this process waits for the next request inside the
// (synchronous) event callback after a round's last step, with a blocking read of stdin: nothing
// runs here while the other side runs.
//
// Usage: node bench/ort_train_step.mjs llama <model folder> <run folder>
//        node bench/ort_train_step.mjs sd <tiny-sd folder> <images folder> <run folder>
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { log, nextRequest, ROOT, reply, tinySdConfig } from './lib.mjs';

const THREADS = 2;
const BATCH = 4;
const SEQ = 256;

// Intra-op spinning off, as PyTorch runs with OMP_WAIT_POLICY=PASSIVE: on 2 shared cores a
// spinning pool starves whoever else needs the CPU. `Session` has no option for it, so every
// session this process creates gets it here, together with the thread counts (`trainSd` takes
// none from the config; the LLaMA loop passes the same 2).
const ort = createRequire(join(ROOT, 'packages', 'trainer-ort', 'package.json'))('onnxruntime-node');
const create = ort.InferenceSession.create.bind(ort.InferenceSession);
ort.InferenceSession.create = (model, options = {}) =>
  create(model, {
    intraOpNumThreads: THREADS,
    interOpNumThreads: 1,
    ...options,
    extra: { ...options.extra, session: { intra_op: { allow_spinning: '0' } } },
  });
const trainer = await import('../packages/trainer-ort/dist/index.js');

const peakRss = () => process.resourceUsage().maxRSS * 1024; // Linux reports KiB

/** Answers `info`, waits for the first round, and returns the loop's event callback. */
function rounds(info) {
  if (nextRequest()?.cmd !== 'info') throw new Error('expected {"cmd": "info"} first');
  reply(info);
  let request = nextRequest();
  let round = { seconds: 0, steps: 0 };
  let firstLoss;
  return (event) => {
    if (event.type === 'warning') log(`ort: ${event.message}`);
    if (event.type !== 'step') return;
    firstLoss ??= event.loss;
    round.seconds += BATCH / event.examples_per_s; // every micro-batch holds BATCH examples
    round.steps += 1;
    if (round.steps < request.steps) return;
    reply({ seconds: round.seconds, loss: event.loss, first_loss: firstLoss, peak_rss: peakRss() });
    request = nextRequest();
    if (request === null) process.exit(0);
    round = { seconds: 0, steps: 0 };
  };
}

const adamw = { type: 'adamw', betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 };
const [mode, ...paths] = process.argv.slice(2);

if (mode === 'llama') {
  const [folder, runFolder] = paths;
  const lora = { targetModules: ['q_proj', 'v_proj'], rank: 8, alpha: 16, seed: 0 };
  const model = await trainer.createLlamaWorkerModel({ folder, lora });
  const ids = Int32Array.from(JSON.parse(readFileSync(join(folder, 'input_ids.json'), 'utf8')).flat());
  // Labels are the ids: the model shifts them (position t learns token t + 1), as the PyTorch side.
  const batch = {
    batchSize: BATCH,
    seqLen: SEQ,
    inputIds: ids,
    labels: ids,
    attentionMask: new Int32Array(ids.length).fill(1),
  };
  const onEvent = rounds({ threads: THREADS });
  await trainer.runTrainingLoop({
    seed: 0,
    maxSteps: 1_000_000, // the harness ends this process when it is done
    gradientAccumulationSteps: 1,
    learningRate: 1e-4,
    schedule: { scheduler: 'constant' },
    optimizer: adamw,
    maxGradNorm: 0, // the PyTorch side does not clip
    mixedPrecision: 'no',
    device: 'cpu',
    threads: THREADS,
    checkpoints: { keepLast: 1 },
    model,
    data: {
      microBatchesPerEpoch: 1,
      batch: async () => batch,
      count: (b) => ({ examples: b.batchSize, tokens: b.batchSize * b.seqLen }),
    },
    outputDir: runFolder,
    onEvent,
  });
} else if (mode === 'sd') {
  const [modelFolder, images, runFolder] = paths;
  const config = await tinySdConfig({ modelFolder, images, runFolder, batch: BATCH, device: 'cpu' });
  const emit = rounds({ threads: THREADS });
  const quiet = () => {};
  await trainer.trainSd({
    config,
    outputDir: runFolder,
    signal: new AbortController().signal,
    logger: { debug: quiet, info: (m) => log(`ort: ${m}`), warn: (m) => log(`ort: ${m}`) },
    emit,
  });
} else {
  throw new Error(`usage: node bench/ort_train_step.mjs llama|sd … (got ${mode})`);
}
