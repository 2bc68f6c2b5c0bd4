// The same LoRA training step on onnxruntime's CPU provider and on its WebGPU provider (Mesa
// lavapipe on a CPU-only machine, a real GPU where Vulkan reaches one), with the node placement
// per provider of every graph each side runs:
// - the LLaMA `small` config of bench/llama-configs.json (4 layers, hidden 256; batch 4 × seq 256,
//   rank 8 on q_proj / v_proj, fp32), random F32 weights written here, as bench/train-step.mjs;
// - the tiny SD 1.x of `writeTinySdModel` (batch 4, 64 px → 8×8 latents, rank 8 on to_q / to_v),
//   `trainSd` on 16 generated images with cached latents, as bench/train-step.mjs.
// Both sides run the trainer's own loop (`runTrainingLoop`; `trainSd` around it) with `device:
// cpu` or `device: webgpu`, each in its own worker process, in interleaved rounds (lib.mjs); a
// round's time is the sum of the loop's own step times. The node counts come from a separate
// short-lived process per side that creates the same sessions with onnxruntime's verbose log
// (session `logSeverityLevel: 0`, `env.logLevel = 'verbose'`), written to a file and read after
// (its native stderr loses lines on a pipe), so the timed workers do not log.
// Run: node bench/webgpu-step.mjs (XDG_RUNTIME_DIR is set to the temp folder when unset).
import { spawn } from 'node:child_process';
import { closeSync, createReadStream, openSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  interleave,
  log,
  median,
  NodeWorker,
  nextRequest,
  ROOT,
  reply,
  report,
  requireBuilt,
  row,
  temporaryDir,
  tinySdConfig,
  writeLlamaFolder,
} from './lib.mjs';

const THREADS = 2;
const BATCH = 4;
const SEQ = 256;
/** Steps per round: one LLaMA step takes ~0.2 s on the CPU provider and seconds on lavapipe. */
const LLAMA_STEPS = 2;
const SD_STEPS = 10;
const SD_IMAGES = 16;
const SELF = fileURLToPath(import.meta.url);
process.env.XDG_RUNTIME_DIR ??= tmpdir();

// ---------------------------------------------------------------------------------------------
// Worker side: `node bench/webgpu-step.mjs --worker llama|sd <device> <placement?> <paths…>`
// ---------------------------------------------------------------------------------------------

/**
 * Every session this process creates gets 2 intra-op threads with spinning off (as
 * ort_train_step.mjs: a spinning pool starves the other side on 2 shared cores; on WebGPU they
 * run the nodes placed on the CPU) and, for the placement run, a verbose log under a log id
 * naming its model file.
 */
function wrapSessions(verbose) {
  const ort = createRequire(join(ROOT, 'packages', 'trainer-ort', 'package.json'))('onnxruntime-node');
  if (verbose) ort.env.logLevel = 'verbose';
  const create = ort.InferenceSession.create.bind(ort.InferenceSession);
  ort.InferenceSession.create = (model, options = {}) =>
    create(model, {
      intraOpNumThreads: THREADS,
      interOpNumThreads: 1,
      ...options,
      extra: { ...options.extra, session: { intra_op: { allow_spinning: '0' } } },
      ...(verbose
        ? {
            logSeverityLevel: 0,
            logId: typeof model === 'string' ? basename(model).replace(/\.onnx$/, '') : 'in-memory',
          }
        : {}),
    });
}

/**
 * The loop's event callback: answers `info`, then times `steps` loop steps per `run` request and
 * waits for the next request inside the callback (the loop cannot be paused from outside).
 */
function rounds(info) {
  if (nextRequest()?.cmd !== 'info') throw new Error('expected {"cmd": "info"} first');
  reply(info);
  let request = nextRequest();
  let round = { seconds: 0, steps: 0 };
  let firstLoss;
  return (event) => {
    if (event.type === 'warning') log(`worker: ${event.message}`);
    if (event.type !== 'step') return;
    firstLoss ??= event.loss;
    round.seconds += BATCH / event.examples_per_s;
    round.steps += 1;
    if (round.steps < request.steps) return;
    reply({ seconds: round.seconds, loss: event.loss, first_loss: firstLoss });
    request = nextRequest();
    if (request === null) process.exit(0);
    round = { seconds: 0, steps: 0 };
  };
}

const ADAMW = { type: 'adamw', betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 };

/** Runs the model's loop on `device`; with `placementOnly`, only creates its sessions (the signal is already aborted). */
async function worker(mode, device, placementOnly, paths) {
  wrapSessions(placementOnly);
  const trainer = await import('../packages/trainer-ort/dist/index.js');
  const signal = placementOnly ? AbortSignal.abort() : new AbortController().signal;
  const onEvent = placementOnly ? () => {} : rounds({ device });
  if (mode === 'llama') {
    const [folder, runFolder] = paths;
    const lora = { targetModules: ['q_proj', 'v_proj'], rank: 8, alpha: 16, seed: 0 };
    const model = await trainer.createLlamaWorkerModel({ folder, lora });
    const ids = Int32Array.from(JSON.parse(readFileSync(join(folder, 'input_ids.json'), 'utf8')).flat());
    const batch = {
      batchSize: BATCH,
      seqLen: SEQ,
      inputIds: ids,
      labels: ids,
      attentionMask: new Int32Array(ids.length).fill(1),
    };
    await trainer.runTrainingLoop({
      seed: 0,
      maxSteps: 1_000_000, // the harness ends this process when it is done
      gradientAccumulationSteps: 1,
      learningRate: 1e-4,
      schedule: { scheduler: 'constant' },
      optimizer: ADAMW,
      maxGradNorm: 0,
      mixedPrecision: 'no',
      device,
      threads: THREADS,
      checkpoints: { keepLast: 1 },
      model,
      data: {
        microBatchesPerEpoch: 1,
        batch: async () => batch,
        count: (b) => ({ examples: b.batchSize, tokens: b.batchSize * b.seqLen }),
      },
      outputDir: runFolder,
      signal,
      onEvent,
    });
  } else {
    const [modelFolder, images, runFolder] = paths;
    const config = await tinySdConfig({ modelFolder, images, runFolder, batch: BATCH, device });
    const quiet = () => {};
    await trainer.trainSd({
      config,
      outputDir: runFolder,
      signal,
      logger: { debug: quiet, info: (m) => log(`worker: ${m}`), warn: (m) => log(`worker: ${m}`) },
      emit: onEvent,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Harness side
// ---------------------------------------------------------------------------------------------

const PLACEMENT =
  /\[V:onnxruntime:([^,\]]*),.*(?:All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)/;

/**
 * onnxruntime's node placement of every session the worker creates for `mode` on `device`
 * (log id = model file name → provider → nodes), from a worker run that only creates them.
 */
async function placement(mode, device, paths, logFile) {
  const stderr = openSync(logFile, 'w');
  const child = spawn(process.execPath, [SELF, '--worker', mode, device, 'placement', ...paths], {
    stdio: ['ignore', 'ignore', stderr],
  });
  closeSync(stderr);
  const code = await new Promise((resolve) => child.once('close', resolve));
  const sessions = {};
  for await (const line of createInterface({ input: createReadStream(logFile) })) {
    if (/VerifyEachNodeIsAssignedToAnEp\] Node placements/.test(line)) {
      sessions[/\[V:onnxruntime:([^,\]]*),/.exec(line)[1]] = {};
      continue;
    }
    const placed = PLACEMENT.exec(line);
    if (!placed) continue;
    sessions[placed[1]] ??= {};
    sessions[placed[1]][placed[2].replace('ExecutionProvider', '')] = Number(placed[3]);
  }
  if (code !== 0) throw new Error(`the ${mode} ${device} placement run exited with ${code}; see ${logFile}`);
  delete sessions['in-memory']; // the device probe's one-node graph
  return sessions;
}

const providersText = (providers) =>
  Object.entries(providers)
    .sort(([, a], [, b]) => b - a)
    .map(([p, n]) => `${p} ${n}`)
    .join(' + ');
/** The sessions that compute the model (gradients, VAE encoder) for the table; every session for the notes. */
const placementText = (sessions, all = false) =>
  Object.entries(sessions)
    .filter(([id]) => all || /^(gradients|vae)/.test(id))
    .map(([id, providers]) => `${id} ${providersText(providers)}`)
    .join(', ');

/** Interleaved rounds of the CPU and WebGPU workers; both closed at the end. */
async function compare(mode, paths, steps, temp) {
  const cpu = new NodeWorker('webgpu-step.mjs', ['--worker', mode, 'cpu', 'timed', ...paths('cpu')]);
  const webgpu = new NodeWorker('webgpu-step.mjs', ['--worker', mode, 'webgpu', 'timed', ...paths('webgpu')]);
  try {
    await Promise.all([cpu.request({ cmd: 'info' }), webgpu.request({ cmd: 'info' })]);
    const last = {};
    const side = (name, w) => async () => {
      const answer = await w.request({ cmd: 'run', steps });
      last[name] = answer;
      return answer.seconds;
    };
    const seconds = await interleave({ webgpu: side('webgpu', webgpu), cpu: side('cpu', cpu) });
    const nodes = {
      cpu: await placement(mode, 'cpu', paths('cpu-placement'), join(temp, `${mode}-cpu.log`)),
      webgpu: await placement(mode, 'webgpu', paths('webgpu-placement'), join(temp, `${mode}-webgpu.log`)),
    };
    return { seconds, last, nodes };
  } finally {
    await Promise.all([cpu.close(), webgpu.close()]);
  }
}

async function harness() {
  for (const pkg of ['trainer-ort', 'safetensors', 'dataset', 'config']) requireBuilt(pkg);
  const trainer = await import('../packages/trainer-ort/dist/index.js');
  const { adapters, problem } = await trainer.probeWebGpuAdapters();
  const adapter = adapters.find((a) => a.usedByOnnxRuntime) ?? adapters[0];
  if (!adapter) throw new Error(`no WebGPU adapter: ${problem}`);
  const adapterLabel = `${adapter.name}${adapter.type === 'cpu' ? ', a software adapter' : ''}`;
  const temp = temporaryDir('webgpu-step');
  const rows = [];
  const notes = [];
  const ms = (values, steps) => `${((median(values) * 1000) / steps).toFixed(0)} ms/step`;

  log('llama small: writing the model folder…');
  const folder = await writeLlamaFolder(temp, 'small', { batch: BATCH, seq: SEQ });
  {
    const { seconds, last, nodes } = await compare(
      'llama',
      (side) => [folder, join(temp, `run-llama-${side}`)],
      LLAMA_STEPS,
      temp,
    );
    const rate = (s) => s.map((value) => (BATCH * SEQ * LLAMA_STEPS) / value);
    rows.push(
      row({
        id: '5',
        name: `LLaMA LoRA step, small config (4 layers, hidden 256), batch ${BATCH} × seq ${SEQ}, rank 8 on q/v, fp32: WebGPU vs CPU provider`,
        unit: 'tokens/s',
        ours: rate(seconds.webgpu),
        oursLabel: `WebGPU (${adapterLabel}), ${ms(seconds.webgpu, LLAMA_STEPS)}; nodes ${placementText(nodes.webgpu)}`,
        base: rate(seconds.cpu),
        baseLabel: `CPU provider, 2 threads, ${ms(seconds.cpu, LLAMA_STEPS)}; nodes ${placementText(nodes.cpu)}`,
      }),
    );
    notes.push(
      `llama small: nodes per session, WebGPU side: ${placementText(nodes.webgpu, true)}; CPU side: ${placementText(nodes.cpu, true)}.`,
      `llama small: first-step loss WebGPU ${last.webgpu.first_loss.toFixed(6)}, CPU ${last.cpu.first_loss.toFixed(6)} (relative difference ${Math.abs(last.webgpu.first_loss / last.cpu.first_loss - 1).toExponential(1)}); ${LLAMA_STEPS} steps per round.`,
    );
  }

  log('sd: writing the tiny model and images…');
  const sdFolder = join(temp, 'tiny-sd');
  await trainer.writeTinySdModel(sdFolder);
  {
    // Each side gets its own copy of the images: the latent cache lives beside them, keyed by the VAE, not the device.
    const imagesFor = async (side) => {
      const images = join(temp, `shapes-${side}`);
      await trainer.writeShapeImages(images, { count: SD_IMAGES });
      return images;
    };
    const images = {};
    for (const side of ['cpu', 'webgpu', 'cpu-placement', 'webgpu-placement'])
      images[side] = await imagesFor(side);
    const { seconds, last, nodes } = await compare(
      'sd',
      (side) => [sdFolder, images[side], join(temp, `run-sd-${side}`)],
      SD_STEPS,
      temp,
    );
    const rate = (s) => s.map((value) => (BATCH * SD_STEPS) / value);
    rows.push(
      row({
        id: '5',
        name: `SD tiny UNet + CLIP LoRA step (blocks 32/64), batch ${BATCH}, 8×8 latents, rank 8 on to_q/to_v, fp32: WebGPU vs CPU provider`,
        unit: 'images/s',
        ours: rate(seconds.webgpu),
        oursLabel: `WebGPU (${adapterLabel}), ${ms(seconds.webgpu, SD_STEPS)}; nodes ${placementText(nodes.webgpu)}`,
        base: rate(seconds.cpu),
        baseLabel: `CPU provider, 2 threads, ${ms(seconds.cpu, SD_STEPS)}; nodes ${placementText(nodes.cpu)}`,
      }),
    );
    notes.push(
      `sd tiny: nodes per session, WebGPU side: ${placementText(nodes.webgpu, true)}; CPU side: ${placementText(nodes.cpu, true)}.`,
      `sd tiny: first-step loss WebGPU ${last.webgpu.first_loss.toFixed(6)}, CPU ${last.cpu.first_loss.toFixed(6)} (its noise and timesteps are drawn from the same seed; latents encoded on each side's device); ${SD_STEPS} steps per round.`,
    );
  }

  report({
    title: 'webgpu-step',
    versions: {
      'onnxruntime-node': JSON.parse(
        readFileSync(
          join(ROOT, 'packages', 'trainer-ort', 'node_modules', 'onnxruntime-node', 'package.json'),
          'utf8',
        ),
      ).version,
      'WebGPU adapter': adapter.name,
    },
    rows,
    notes: [
      "ratio = WebGPU ÷ CPU provider (higher = WebGPU faster); both run the trainer's loop in their own process, fp32, AdamW (lr 1e-4), 2 intra-op threads with spinning off; a round is the sum of the loop's step times (graph building, session start-up and the first run's shader compilation fall in the untimed warm-up round).",
      'nodes: onnxruntime\'s placement per session after its graph optimisations (verbose log, "Node(s) placed on [X]. Number of nodes: N"), by model file: gradients (the loss and LoRA gradients), vae_encoder (SD latents, encoded once before the loop), update (AdamW) and, on WebGPU, the sessions that keep the LoRA state on the device (accumulate, norm, upload, download).',
      ...notes,
    ],
  });
}

const args = process.argv.slice(2);
if (args[0] === '--worker') {
  const [, mode, device, kind, ...paths] = args;
  await worker(mode, device, kind === 'placement', paths);
} else {
  await harness();
}
