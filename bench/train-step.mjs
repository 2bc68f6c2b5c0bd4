// Issue 12, item 1: a LoRA training step (forward + backward + AdamW, fp32, 2 threads), PyTorch
// eager against @lora/trainer-ort, on
// - the LLaMA-architecture configs in bench/llama-configs.json (batch 4 × seq 256, rank 8 on
//   q_proj / v_proj): both sides read the same config.json, random weights (model.safetensors)
//   and token ids, written here; the first step's loss must agree;
// - the tiny SD 1.x of `writeTinySdModel` (batch 4, 64 px → 8×8 latents, rank 8 on to_q / to_v):
//   both sides read the same checkpoint; PyTorch uses every UNet tensor of it (checked).
// Each side runs in its own process per model (its own peak RSS): torch_llama_lora_step.py /
// torch_sd_unet_step.py, and ort_train_step.mjs (the trainer's own loop).
// Run: node bench/train-step.mjs (installs python3-torch and libopenblas0-pthread with apt when
// missing: without OpenBLAS, Debian's torch falls back to reference BLAS, ~10× slower).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  debianVersion,
  ensureDebianPackages,
  interleave,
  log,
  NodeWorker,
  PythonWorker,
  pythonVersion,
  ROOT,
  report,
  requireBuilt,
  row,
  temporaryDir,
  writeLlamaFolder,
} from './lib.mjs';

const BATCH = 4;
const SEQ = 256;
const LLAMA = [
  { name: 'small', label: '4 layers, hidden 256, 4 heads', steps: 3, target: 1.5 },
  { name: '25m', label: '6 layers, hidden 512, 8 heads', steps: 1, target: 1.0 },
];
/** Tiny SD steps take ~20 ms; 20 per round keep each round well above timer and event noise. */
const SD_STEPS = 20;
const SD_IMAGES = 16;
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
// PyTorch runs element-wise ops on its OpenMP pool and matmuls on OpenBLAS's own pthread pool;
// with OpenMP's default spin-waiting the two pools fight over the 2 cores (steps measured 3–10×
// slower under load). ort_train_step.mjs turns onnxruntime's intra-op spinning off likewise.
const TORCH_ENV = { OPENBLAS_NUM_THREADS: '2', OMP_WAIT_POLICY: 'PASSIVE' };

ensureDebianPackages(['python3-torch', 'libopenblas0-pthread']);
for (const pkg of ['trainer-ort', 'safetensors', 'dataset', 'config']) requireBuilt(pkg);
const { writeShapeImages, writeTinySdModel } = await import('../packages/trainer-ort/dist/index.js');
const temp = temporaryDir('train-step');

/** A Hugging Face LLaMA folder: config.json, random F32 weights (N(0, 0.02), norms 1), token ids. */

/**
 * Interleaved rounds of `torch` and `ort` (each a LineWorker answering {cmd: 'run', steps}),
 * both closed at the end. Returns both sides' seconds per round, peak RSS and last replies.
 */
async function compare(torch, ort, steps) {
  try {
    const info = { pytorch: await torch.request({ cmd: 'info' }), ort: await ort.request({ cmd: 'info' }) };
    const peak = { pytorch: 0, ort: 0 };
    const last = {};
    const side = (name, worker) => async () => {
      const reply = await worker.request({ cmd: 'run', steps });
      peak[name] = Math.max(peak[name], reply.peak_rss);
      last[name] = reply;
      return reply.seconds;
    };
    const seconds = await interleave({ pytorch: side('pytorch', torch), ort: side('ort', ort) });
    return { info, seconds, peak, last };
  } finally {
    await Promise.all([torch.close(), ort.close()]);
  }
}

const rows = [];
const notes = [];
for (const config of LLAMA) {
  log(`llama ${config.name}: writing the model folder…`);
  const folder = await writeLlamaFolder(temp, config.name, { batch: BATCH, seq: SEQ });
  const torch = new PythonWorker('torch_llama_lora_step.py', [config.name, folder], TORCH_ENV);
  const ort = new NodeWorker('ort_train_step.mjs', ['llama', folder, join(temp, `run-llama-${config.name}`)]);
  const { info, seconds, peak, last } = await compare(torch, ort, config.steps);
  const rate = (s) => s.map((value) => (BATCH * SEQ * config.steps) / value);
  const { params, trainable, blas, first_loss: torchLoss } = info.pytorch;
  log(`llama ${config.name}: ${params} parameters, ${trainable} trainable, BLAS ${blas}`);
  const ortLoss = last.ort.first_loss;
  const lossError = Math.abs(ortLoss - torchLoss) / Math.abs(torchLoss);
  if (!(lossError < 1e-4))
    throw new Error(`llama ${config.name}: first-step loss differs: ORT ${ortLoss}, PyTorch ${torchLoss}`);
  notes.push(
    `llama ${config.name}: first-step loss ORT ${ortLoss.toFixed(6)}, PyTorch ${torchLoss.toFixed(6)} (relative difference ${lossError.toExponential(1)}); ${trainable} trainable parameters.`,
  );
  rows.push(
    row({
      id: '1',
      name: `LLaMA LoRA step, ${config.label} (${(params / 1e6).toFixed(1)} M params), batch ${BATCH} × seq ${SEQ}, rank 8 on q/v`,
      unit: 'tokens/s',
      ours: rate(seconds.ort),
      oursLabel: `\`@lora/trainer-ort\` \`runTrainingLoop\` (peak RSS ${mib(peak.ort)})`,
      base: rate(seconds.pytorch),
      baseLabel: `PyTorch eager (peak RSS ${mib(peak.pytorch)}, ${mib(info.pytorch.rss_before_first_step)} before the first step)`,
      target: config.target,
    }),
  );
}

log('sd: writing the tiny model and images…');
const sdFolder = join(temp, 'tiny-sd');
await writeTinySdModel(sdFolder);
const images = join(temp, 'shapes');
await writeShapeImages(images, { count: SD_IMAGES });
{
  const torch = new PythonWorker('torch_sd_unet_step.py', [sdFolder], TORCH_ENV);
  const ort = new NodeWorker('ort_train_step.mjs', ['sd', sdFolder, images, join(temp, 'run-sd')]);
  const { info, seconds, peak } = await compare(torch, ort, SD_STEPS);
  const rate = (s) => s.map((value) => (BATCH * SD_STEPS) / value);
  notes.push(
    `sd: ${info.pytorch.params} frozen parameters (UNet + CLIP), ${info.pytorch.trainable} trainable in ${info.pytorch.lora_modules} LoRA modules; ORT runs \`trainSd\` (latents cached before the loop; each step reads them, draws noise and timesteps, runs CLIP + UNet + MSE + backward, then AdamW); PyTorch draws noise and timesteps, runs CLIP under no_grad, the UNet, MSE, backward, AdamW.`,
  );
  rows.push(
    row({
      id: '1',
      name: `SD tiny UNet + CLIP LoRA step (blocks 32/64, ${(info.pytorch.params / 1e6).toFixed(2)} M params), batch ${BATCH}, 8×8 latents, 77 tokens, rank 8 on to_q/to_v`,
      unit: 'images/s',
      ours: rate(seconds.ort),
      oursLabel: `\`@lora/trainer-ort\` \`trainSd\` (peak RSS ${mib(peak.ort)})`,
      base: rate(seconds.pytorch),
      baseLabel: `PyTorch eager (peak RSS ${mib(peak.pytorch)}, ${mib(info.pytorch.rss_before_first_step)} before the first step)`,
    }),
  );
}

report({
  title: 'train-step',
  versions: {
    torch: debianVersion('python3-torch') ?? '?',
    OpenBLAS: debianVersion('libopenblas0-pthread') ?? '?',
    Python: pythonVersion(),
    'onnxruntime-node': JSON.parse(
      readFileSync(
        join(ROOT, 'packages', 'trainer-ort', 'node_modules', 'onnxruntime-node', 'package.json'),
        'utf8',
      ),
    ).version,
  },
  rows,
  notes: [
    `fp32, 2 threads on both sides, AdamW (lr 1e-4, weight decay 0.01) over the LoRA tensors only, no clipping; LLaMA vocab 4096, untied LM head, LoRA alpha 16; steps per round: ${LLAMA.map((c) => `${c.name} ${c.steps}`).join(', ')}, sd ${SD_STEPS}.`,
    "ORT times are the loop's own step times (micro-batch, gradients session, host-side gradient sums, update session); graph building and session start-up are not counted, as PyTorch's import and weight loading are not.",
    "peak RSS is each process's maximum: Python + torch + weights + activations; Node + onnxruntime + weights + the graphs' arena.",
    'PyTorch runs with OMP_WAIT_POLICY=PASSIVE and ORT with session.intra_op.allow_spinning = 0 (set on every InferenceSession the ORT process creates; `Session` has no option for it): spinning thread pools starve each other on the 2 shared cores.',
    ...notes,
  ],
});
