// Issue 12, item 1: a LLaMA-architecture LoRA training step (forward + backward + AdamW, fp32,
// 2 threads) on the configs in bench/llama-configs.json, PyTorch eager against @lora/trainer-ort.
// Run: node bench/train-step.mjs (installs python3-torch and libopenblas0-pthread with apt when
// missing: without OpenBLAS, Debian's torch falls back to reference BLAS, ~10× slower).
//
// TODO(trainer-ort): the ORT side is not written yet; @lora/trainer-ort cannot run a training
// step. When it can, add an `ort` side to `interleave` below on the same config, batch and
// token ids, report its tokens/s and peak RSS (a child process per config, as here), and the
// rows below get their ratios. Until then the rows print TODO instead of a number.
import {
  debianVersion,
  ensureDebianPackages,
  interleave,
  log,
  PythonWorker,
  pythonVersion,
  report,
  row,
} from './lib.mjs';

const BATCH = 4;
const SEQ = 256;
const CONFIGS = [
  { name: 'small', label: '4 layers, hidden 256, 4 heads', steps: 3, target: 1.5 },
  { name: '25m', label: '6 layers, hidden 512, 8 heads', steps: 1, target: 1.0 },
];
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

ensureDebianPackages(['python3-torch', 'libopenblas0-pthread']);
const rows = [];
let torchInfo;
for (const config of CONFIGS) {
  // One process per config, so each peak RSS is that config's alone. PyTorch runs element-wise
  // ops on its OpenMP pool and matmuls on OpenBLAS's own pthread pool; with OpenMP's default
  // spin-waiting the two pools fight over the 2 cores (steps measured 3–10× slower under load).
  const torch = new PythonWorker('torch_llama_lora_step.py', [config.name], {
    OPENBLAS_NUM_THREADS: '2',
    OMP_WAIT_POLICY: 'PASSIVE',
  });
  try {
    torchInfo = await torch.request({ cmd: 'info' });
    log(
      `${config.name}: ${torchInfo.params} parameters, ${torchInfo.trainable} trainable, BLAS ${torchInfo.blas}`,
    );
    let peak = 0;
    const times = await interleave({
      pytorch: async () => {
        const reply = await torch.request({ cmd: 'run', steps: config.steps });
        peak = Math.max(peak, reply.peak_rss);
        return reply.seconds;
      },
    });
    const tokensPerSecond = (seconds) => seconds.map((s) => (BATCH * SEQ * config.steps) / s);
    rows.push(
      row({
        id: '1',
        name: `LLaMA LoRA step, ${config.label} (${(torchInfo.params / 1e6).toFixed(1)} M params), batch ${BATCH} × seq ${SEQ}, rank 8 on q/v`,
        unit: 'tokens/s',
        ours: null,
        oursLabel: '`@lora/trainer-ort`',
        base: tokensPerSecond(times.pytorch),
        baseLabel: `PyTorch eager (peak RSS ${mib(peak)}, ${mib(torchInfo.rss_before_first_step)} before the first step)`,
        target: config.target,
        todo: 'trainer not ready',
      }),
    );
  } finally {
    await torch.close();
  }
}

report({
  title: 'train-step',
  versions: {
    torch: debianVersion('python3-torch') ?? torchInfo.torch,
    OpenBLAS: debianVersion('libopenblas0-pthread') ?? '?',
    Python: pythonVersion(),
  },
  rows,
  notes: [
    `fp32, ${torchInfo.threads} threads, vocab 4096, untied LM head, random frozen weights, PEFT initialisation of A and B, AdamW (lr 1e-4, weight decay 0.01); steps timed per run: ${CONFIGS.map((c) => `${c.name} ${c.steps}`).join(', ')}.`,
    'peak RSS is the Python process maximum (interpreter, torch, weights and activations); "before the first step" is the interpreter, torch and the weights.',
    'PyTorch runs with OMP_WAIT_POLICY=PASSIVE: its OpenMP pool otherwise spin-waits and starves the OpenBLAS pool on 2 cores (3–10× slower steps measured under load); the ORT side should likewise turn intra-op spinning off (`session.intra_op.allow_spinning` = 0) on this machine.',
    'the SD tiny UNet step comparison is not written yet.',
  ],
});
