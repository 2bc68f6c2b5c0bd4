#!/usr/bin/env node
// What a GPU machine offers this package, and how fast the LoRA step runs on it (not run in CI).
//
// Part 1, inventory (never throws; printed, and written with the results to --out): nvidia-smi
// (GPUs, memory, driver, CUDA version), the Vulkan ICD files WebGPU needs, the WebGPU adapters
// Dawn finds and whether onnxruntime's WebGPU provider starts on them, the CUDA / cuDNN / NVIDIA
// libraries the dynamic linker knows, and onnxruntime-node's providers.
//
// Part 2, steps: for every GPU provider found (cuda when its provider is installed and starts;
// webgpu when an adapter exists, a software one only with --allow-software) and for fp32 and
// fp16, a LoRA training step of
//   - LLaMA at Llama-3.2-1B shapes (hidden 2048, 16 layers, 32 heads, 8 KV heads, intermediate
//     8192, vocab 128256, tied embeddings), seq 512, batch 1 then 4, LoRA rank 16 on
//     q/k/v/o_proj;
//   - the SD 1.5 UNet (+ CLIP text encoder, not trained) at 512 px (64×64 latents), batch 1 then
//     4, LoRA rank 16 on to_q/to_k/to_v/to_out (a model whose graph builds no float16 op under
//     fp16 has that case skipped: it would measure the fp32 computation again);
// with random weights written here, F16 for the fp16 cases and the same values as F32 for the
// fp32 ones (so no session casts weights), through the trainer's own loop (`runTrainingLoop`,
// with the engine it picks for the device), one child process per case. Each case prints, as
// they happen, its steps' losses and times, then ms/step, tokens/s or images/s, model FLOP
// utilisation against the card's peak, peak device memory (nvidia-smi every 100 ms) and
// onnxruntime's node placement per provider. The first 3 losses (batch 1) are compared with the
// CPU provider's on the same weights and batch (at full size the CPU runs only those 3 steps).
//
// Every case has its own share of the time budget (default 470 s, so one call fits a 600 s
// limit): a case over its share is stopped (what it printed stays), and a case whose share would
// be too small is skipped with the reason. Random checkpoints go to a temp folder, removed at exit.
//
//   npx -y pnpm@10.34.9 run build          # at the repository root: the tool imports dist/
//   node packages/trainer-ort/tools/device-check.mjs --out device-report.json
//   node packages/trainer-ort/tools/device-check.mjs --small --allow-software   # tiny shapes, CPU + lavapipe
//   options: --only llama|sd, --device cuda,webgpu,cpu (which providers; cpu alone at full size:
//            the CPU references only), --budget <seconds>, --steps <timed steps at the big batch>,
//            --allow-software (use a software WebGPU adapter such as Mesa lavapipe),
//            --logs <dir> (keep each case's onnxruntime verbose log), --out <report.json>
//
// Exit status: 0 every case ran, 1 some case failed or was cut short, 2 nothing to measure.
import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const SELF = fileURLToPath(import.meta.url);
const PACKAGE = join(dirname(SELF), '..');
const DIST = pathToFileURL(join(PACKAGE, 'dist', 'index.js')).href;
/** Resolves the package's own dependencies (onnxruntime-node, webgpu) as the package does. */
const requirePackage = createRequire(join(PACKAGE, 'package.json'));
/** Lines a child process sends to this one start with this; everything else is its own output. */
const TAG = '@device-check ';

const { values: args } = parseArgs({
  options: {
    small: { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string' },
    'allow-software': { type: 'boolean', default: false },
    budget: { type: 'string' },
    steps: { type: 'string' },
    logs: { type: 'string' },
    device: { type: 'string' },
    child: { type: 'string' },
  },
});

// ---------------------------------------------------------------------------------------------
// Sizes, budgets, peaks
// ---------------------------------------------------------------------------------------------

/** Llama-3.2-1B's config.json as published (the package's table of real configs), weights in fp16. */
const LLAMA_3_2_1B = {
  ...(await import(DIST)).REAL_CONFIGS['Llama-3.2-1B'],
  model_type: 'llama',
  torch_dtype: 'float16',
};

/** The same architecture, tiny (GQA and tied embeddings kept), for --small. */
const LLAMA_TINY = {
  ...LLAMA_3_2_1B,
  hidden_size: 128,
  intermediate_size: 256,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 32,
  vocab_size: 1024,
  max_position_embeddings: 512,
  rope_scaling: { ...LLAMA_3_2_1B.rope_scaling, original_max_position_embeddings: 256 },
};

const MODES = {
  full: {
    budget: 470,
    /** A case whose share of the budget is below this is skipped. */
    minCase: 20,
    /** No case gets more than this, however much is left. */
    maxCase: 180,
    llama: { config: LLAMA_3_2_1B, seq: 512, batch: 4, label: 'Llama-3.2-1B shapes' },
    sd: { latent: 64, batch: 4, label: 'SD 1.5 UNet + CLIP, 512 px' },
    timedSteps: 5,
    /** At full size the CPU reference runs only the steps whose losses are compared. */
    cpuStepsOnlyLosses: true,
  },
  small: {
    budget: 240,
    minCase: 8,
    maxCase: 90,
    llama: { config: LLAMA_TINY, seq: 64, batch: 2, label: 'tiny LLaMA (2 layers, hidden 128)' },
    sd: { latent: 8, batch: 2, label: 'tiny SD (UNet blocks 32/64), 64 px' },
    timedSteps: 2,
    cpuStepsOnlyLosses: false,
  },
};
const LORA_RANK = 16;
const LOSS_STEPS = 3;
/** Budget share of each kind of case (a LLaMA step on the GPU takes longest to set up). */
const WEIGHTS = { 'llama-gpu': 3, 'llama-cpu': 2, 'sd-gpu': 2, 'sd-cpu': 1.5 };
/** What writing the SD checkpoint and counting its FLOPs take, kept back while LLaMA cases run. */
const SD_PREPARE_SECONDS = { full: 40, small: 5 };
/** After a case's share runs out it gets this long to stop by itself before it is killed. */
const GRACE_SECONDS = 10;
const MIB = 2 ** 20;

/**
 * Dense peak TFLOPS by nvidia-smi name (first match wins): fp32 on the CUDA cores, TF32 and fp16
 * on the tensor cores, without sparsity. From NVIDIA's data sheets; H200 has H100 SXM's compute.
 */
const PEAKS = [
  { match: /H100.*PCIe/i, label: 'H100 PCIe', fp32: 51, tf32: 378, fp16: 756 },
  { match: /H100 NVL|H200 NVL/i, label: 'H100/H200 NVL', fp32: 60, tf32: 418, fp16: 835 },
  { match: /H100|H200|GH200/i, label: 'H100/H200 SXM', fp32: 67, tf32: 495, fp16: 989 },
  { match: /A100/i, label: 'A100', fp32: 19.5, tf32: 156, fp16: 312 },
  { match: /L40S/i, label: 'L40S', fp32: 91.6, tf32: 183, fp16: 362 },
  { match: /A10G|A10\b/i, label: 'A10/A10G', fp32: 31.2, tf32: 62.5, fp16: 125 },
  { match: /L4\b/i, label: 'L4', fp32: 30.3, tf32: 60, fp16: 121 },
];

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

const say = (line = '') => process.stdout.write(`${line}\n`);
const messageOf = (error) => (error instanceof Error ? error.message : String(error));
const round = (value, digits = 1) => (Number.isFinite(value) ? Number(value.toFixed(digits)) : null);
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const fmtInt = (value) => Math.round(value).toLocaleString('en-US');
const fmtFlops = (flops) =>
  flops >= 1e12 ? `${(flops / 1e12).toFixed(2)} TFLOP` : `${(flops / 1e9).toFixed(2)} GFLOP`;

/** A command's stdout, or `{ error }`; never throws. */
function tryRun(command, commandArgs, timeout = 20_000) {
  try {
    return {
      stdout: execFileSync(command, commandArgs, {
        encoding: 'utf8',
        timeout,
        stdio: ['ignore', 'pipe', 'pipe'],
        maxBuffer: 64 * MIB,
      }),
    };
  } catch (error) {
    const stderr = error.stderr ? String(error.stderr).trim().split('\n').slice(-2).join(' ') : '';
    return {
      error: error.code === 'ENOENT' ? `${command}: not found` : `${messageOf(error)} ${stderr}`.trim(),
    };
  }
}

/** The version in a package's package.json, found by walking up from its entry point (exports may hide the file). */
function packageVersion(name, from = requirePackage) {
  try {
    let dir = dirname(from.resolve(name));
    for (let up = 0; up < 6; up++, dir = dirname(dir)) {
      const file = join(dir, 'package.json');
      if (!existsSync(file)) continue;
      const json = JSON.parse(readFileSync(file, 'utf8'));
      if (json.name === name) return json.version;
    }
    return 'unknown';
  } catch (error) {
    return `unknown (${messageOf(error)})`;
  }
}

// ---------------------------------------------------------------------------------------------
// Part 1: inventory
// ---------------------------------------------------------------------------------------------

const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
/** The libraries the CUDA provider (CUDA 12, cuDNN 9) and the NVIDIA Vulkan driver load. */
const GPU_LIBRARY =
  /^(libonnxruntime_providers_|libcuda\.so|libcudart|libcublas|libcublasLt|libcudnn|libcufft|libcurand|libnvrtc|libnvJitLink|libnvidia|libGLX_nvidia|libEGL_nvidia)/;

function nvidiaSmiInventory() {
  const query = tryRun('nvidia-smi', [
    '--query-gpu=index,name,memory.total,memory.used,driver_version,pci.bus_id',
    '--format=csv,noheader,nounits',
  ]);
  if (query.error) return { available: false, error: query.error };
  const gpus = query.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [index, name, total, used, driver, bus] = line.split(',').map((s) => s.trim());
      return {
        index: Number(index),
        name,
        memoryTotalMiB: Number(total),
        memoryUsedMiB: Number(used),
        driver,
        pciBusId: bus,
      };
    });
  const capability = tryRun('nvidia-smi', ['--query-gpu=compute_cap', '--format=csv,noheader']);
  if (!capability.error) {
    capability.stdout
      .trim()
      .split('\n')
      .forEach((cap, i) => {
        if (gpus[i]) gpus[i].computeCapability = cap.trim();
      });
  }
  const banner = tryRun('nvidia-smi', []);
  const cuda = banner.stdout?.match(/CUDA Version:\s*([\d.]+)/)?.[1];
  return { available: true, gpus, driverCudaVersion: cuda ?? null };
}

function ldconfigLibraries() {
  for (const command of ['ldconfig', '/sbin/ldconfig', '/usr/sbin/ldconfig']) {
    const result = tryRun(command, ['-p']);
    if (result.error) continue;
    const found = {};
    for (const line of result.stdout.split('\n')) {
      const match = line.trim().match(/^(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)/);
      if (!match || !GPU_LIBRARY.test(match[1])) continue;
      found[match[1]] ??= [];
      found[match[1]].push(match[3]);
    }
    return { command, found };
  }
  return { command: null, found: {}, error: 'ldconfig not found' };
}

/** GPU libraries outside the linker cache: LD_LIBRARY_PATH, /usr/local/cuda*, pip's nvidia-* wheels. */
function otherLibraryFolders() {
  const folders = new Set((process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean));
  const list = (dir) => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };
  for (const entry of list('/usr/local')) {
    if (entry.startsWith('cuda')) {
      folders.add(join('/usr/local', entry, 'lib64'));
      folders.add(join('/usr/local', entry, 'targets', 'x86_64-linux', 'lib'));
    }
  }
  for (const root of ['/usr/local/lib', '/usr/lib', '/opt/conda/lib']) {
    for (const python of list(root).filter((e) => e.startsWith('python3'))) {
      for (const packages of ['site-packages', 'dist-packages']) {
        const nvidia = join(root, python, packages, 'nvidia');
        for (const part of list(nvidia)) folders.add(join(nvidia, part, 'lib'));
        // A Python onnxruntime-gpu wheel carries the CUDA provider onnxruntime-node downloads.
        folders.add(join(root, python, packages, 'onnxruntime', 'capi'));
      }
    }
  }
  const found = {};
  for (const folder of folders) {
    const libraries = list(folder).filter((name) => GPU_LIBRARY.test(name) && name.includes('.so'));
    if (libraries.length > 0) found[folder] = libraries.sort();
  }
  return found;
}

function vulkanIcds(linkerCache) {
  const icds = [];
  for (const dir of ICD_DIRS) {
    let files = [];
    try {
      files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    } catch {
      continue;
    }
    for (const file of files.sort()) {
      const path = join(dir, file);
      try {
        const json = JSON.parse(readFileSync(path, 'utf8'));
        const library = json.ICD?.library_path ?? null;
        const resolvable =
          library === null
            ? false
            : library.includes('/')
              ? existsSync(library)
              : Object.keys(linkerCache).includes(library) || tryLinkerLookup(library);
        icds.push({
          file: path,
          library,
          apiVersion: json.ICD?.api_version ?? null,
          libraryFound: resolvable,
        });
      } catch (error) {
        icds.push({ file: path, error: messageOf(error) });
      }
    }
  }
  return icds;
}

let linkerListing;
/** Whether the dynamic linker cache lists `name` (ICDs name their library without a path). */
function tryLinkerLookup(name) {
  linkerListing ??= tryRun('ldconfig', ['-p']).stdout ?? tryRun('/sbin/ldconfig', ['-p']).stdout ?? '';
  return linkerListing.includes(`${name} (`);
}

/** The WebGPU and CUDA start checks, in a child process: a driver that crashes takes only the child. */
async function probeInChild() {
  const result = await runChild(
    { kind: 'probe' },
    120,
    () => {},
    join(tmpdir(), `lora-device-check-probe-${process.pid}.log`),
  );
  rmSync(join(tmpdir(), `lora-device-check-probe-${process.pid}.log`), { force: true });
  const probe = result.messages.find((m) => m.type === 'probe');
  if (probe) return probe;
  return {
    adapters: [],
    problem: `the probe process ${result.killed ? 'took over 120 s' : `exited with ${result.exit}`}: ${result.tail.slice(-3).join(' | ')}`,
    webgpuStart: null,
    cudaStart: null,
  };
}

async function inventory() {
  const inv = {
    date: new Date().toISOString(),
    host: {
      node: process.versions.node,
      platform: `${process.platform}-${process.arch}`,
      kernel: release(),
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      memoryGiB: round(totalmem() / 2 ** 30, 0),
    },
    env: Object.fromEntries(
      [
        'LD_LIBRARY_PATH',
        'CUDA_VISIBLE_DEVICES',
        'NVIDIA_VISIBLE_DEVICES',
        'NVIDIA_DRIVER_CAPABILITIES',
        'VK_ICD_FILENAMES',
        'VK_DRIVER_FILES',
        'XDG_RUNTIME_DIR',
      ].map((k) => [k, process.env[k] ?? null]),
    ),
  };
  try {
    inv.nvidiaSmi = nvidiaSmiInventory();
  } catch (error) {
    inv.nvidiaSmi = { available: false, error: messageOf(error) };
  }
  try {
    inv.libraries = { linker: ldconfigLibraries(), otherFolders: otherLibraryFolders() };
  } catch (error) {
    inv.libraries = { error: messageOf(error) };
  }
  try {
    inv.vulkanIcds = vulkanIcds(inv.libraries?.linker?.found ?? {});
  } catch (error) {
    inv.vulkanIcds = [{ error: messageOf(error) }];
  }
  inv.onnxruntime = {
    'onnxruntime-node': packageVersion('onnxruntime-node'),
    // onnxruntime-common is onnxruntime-node's dependency, not this package's.
    'onnxruntime-common': packageVersion(
      'onnxruntime-common',
      createRequire(requirePackage.resolve('onnxruntime-node')),
    ),
    webgpu: packageVersion('webgpu'),
  };
  try {
    const binary = join(
      dirname(requirePackage.resolve('onnxruntime-node')),
      '..',
      'bin',
      'napi-v6',
      process.platform,
      process.arch,
    );
    inv.onnxruntime.binaryFolder = binary;
    inv.onnxruntime.binaryFiles = readdirSync(binary).sort();
  } catch (error) {
    inv.onnxruntime.binaryFiles = `unreadable: ${messageOf(error)}`;
  }
  try {
    const trainer = await import(DIST);
    const info = trainer.onnxRuntimeInfo();
    inv.onnxruntime.version = info.version;
    inv.onnxruntime.providers = info.providers;
    inv.onnxruntime.cudaProviderInstalled = trainer.isCudaInstalled();
  } catch (error) {
    inv.onnxruntime.error = `${DIST} did not load (run \`npx -y pnpm@10.34.9 run build\` at the repository root): ${messageOf(error)}`;
  }
  try {
    inv.webgpu = await probeInChild();
  } catch (error) {
    inv.webgpu = { adapters: [], problem: messageOf(error), webgpuStart: null, cudaStart: null };
  }
  return inv;
}

function printInventory(inv) {
  say('== inventory ==');
  say(
    `host: ${inv.host.cpu}, ${inv.host.cores} cores, ${inv.host.memoryGiB} GiB, Linux ${inv.host.kernel}, Node ${inv.host.node}`,
  );
  const smi = inv.nvidiaSmi;
  if (smi.available) {
    for (const g of smi.gpus) {
      say(
        `GPU ${g.index} (nvidia-smi): ${g.name}, ${fmtInt(g.memoryTotalMiB)} MiB (${fmtInt(g.memoryUsedMiB)} used), driver ${g.driver}` +
          `${g.computeCapability ? `, compute ${g.computeCapability}` : ''}${smi.driverCudaVersion ? `, driver CUDA ${smi.driverCudaVersion}` : ''}`,
      );
    }
  } else {
    say(`nvidia-smi: ${smi.error} (no NVIDIA driver tools; device memory will read n/a)`);
  }
  if (inv.vulkanIcds.length === 0) say(`Vulkan ICDs: none in ${ICD_DIRS.join(', ')}`);
  for (const icd of inv.vulkanIcds) {
    say(
      icd.error
        ? `Vulkan ICD ${icd.file}: unreadable (${icd.error})`
        : `Vulkan ICD ${icd.file}: ${icd.library} (${icd.libraryFound ? 'library found' : 'library NOT found'}), API ${icd.apiVersion}`,
    );
  }
  if (smi.available && !inv.vulkanIcds.some((icd) => /nvidia/i.test(`${icd.file} ${icd.library}`))) {
    say(
      "  no NVIDIA Vulkan ICD (nvidia_icd.json → libGLX_nvidia.so.0): WebGPU cannot reach this GPU; in a container the driver's Vulkan part is mounted only when NVIDIA_DRIVER_CAPABILITIES includes graphics (or all)",
    );
  }
  const gpu = inv.webgpu;
  if (gpu.adapters.length === 0) say(`WebGPU adapters (Dawn): none (${gpu.problem ?? 'no reason given'})`);
  for (const a of gpu.adapters) {
    say(
      `WebGPU adapter: ${a.name} [${a.vendor}, ${a.architecture || 'no architecture'}, ${a.type === 'cpu' ? 'SOFTWARE' : 'gpu'}], ` +
        `shader-f16 ${a.fp16 ? 'yes' : 'no'}, max buffer ${fmtInt(a.maxBufferSize / MIB)} MiB, max storage binding ${fmtInt(a.maxStorageBufferBindingSize / MIB)} MiB` +
        `${a.usedByOnnxRuntime ? ' (the one onnxruntime takes)' : ''}`,
    );
  }
  if (gpu.webgpuStart)
    say(
      `onnxruntime WebGPU provider: ${gpu.webgpuStart.ok ? 'starts' : `does not start: ${gpu.webgpuStart.error}`}`,
    );
  const linker = inv.libraries.linker ?? { found: {} };
  const names = Object.keys(linker.found);
  const cudaNames = names.filter((n) => !/nvidia/i.test(n));
  const nvidiaNames = names.filter((n) => /nvidia/i.test(n));
  say(
    `CUDA libraries (${linker.command ?? 'ldconfig'} -p): ${cudaNames.length ? cudaNames.join(', ') : 'none'}`,
  );
  say(`NVIDIA driver libraries (ldconfig -p): ${nvidiaNames.length ? nvidiaNames.join(', ') : 'none'}`);
  for (const [folder, libs] of Object.entries(inv.libraries.otherFolders ?? {}))
    say(`  also in ${folder}: ${libs.join(', ')}`);
  const ort = inv.onnxruntime;
  if (ort.error) say(`onnxruntime: ${ort.error}`);
  else {
    say(
      `onnxruntime-node ${ort['onnxruntime-node']} (runtime ${ort.version}, onnxruntime-common ${ort['onnxruntime-common']}, webgpu ${ort.webgpu}): providers ` +
        ort.providers.map((p) => `${p.name}${p.bundled ? '' : ' (not bundled)'}`).join(', ') +
        `; CUDA provider installed: ${ort.cudaProviderInstalled ? 'yes' : 'no'}`,
    );
  }
  if (gpu.cudaStart)
    say(
      `onnxruntime CUDA provider: ${gpu.cudaStart.ok ? 'starts' : `does not start: ${gpu.cudaStart.error}`}`,
    );
}

/** The GPU providers to measure, and why the others are not. */
function planDevices(inv) {
  const devices = [];
  const skipped = [];
  if (inv.onnxruntime.error) skipped.push({ device: 'all', reason: inv.onnxruntime.error });
  else if (!inv.onnxruntime.cudaProviderInstalled) {
    skipped.push({
      device: 'cuda',
      reason:
        "onnxruntime-node's CUDA provider is not installed (it is downloaded by the package's install script: ONNXRUNTIME_NODE_INSTALL=cuda12, needs network once; then CUDA 12 + cuDNN 9 libraries)",
    });
  } else if (!inv.webgpu.cudaStart?.ok) {
    skipped.push({
      device: 'cuda',
      reason: `installed but does not start: ${inv.webgpu.cudaStart?.error ?? 'not probed'}`,
    });
  } else devices.push({ device: 'cuda', name: inv.nvidiaSmi.gpus?.[0]?.name ?? 'CUDA device 0', fp16: true });

  const adapter = inv.webgpu.adapters.find((a) => a.usedByOnnxRuntime) ?? inv.webgpu.adapters[0];
  if (!adapter)
    skipped.push({ device: 'webgpu', reason: `no adapter: ${inv.webgpu.problem ?? 'none found'}` });
  else if (adapter.type === 'cpu' && !args['allow-software']) {
    skipped.push({
      device: 'webgpu',
      reason: `the adapter ${adapter.name} is a software one (run with --allow-software to measure it anyway)`,
    });
  } else if (!inv.webgpu.webgpuStart?.ok) {
    skipped.push({
      device: 'webgpu',
      reason: `the provider does not start on ${adapter.name}: ${inv.webgpu.webgpuStart?.error ?? 'not probed'}`,
    });
  } else {
    devices.push({
      device: 'webgpu',
      name: adapter.name,
      fp16: adapter.fp16,
      software: adapter.type === 'cpu',
    });
  }
  return { devices, skipped };
}

// ---------------------------------------------------------------------------------------------
// Random checkpoints
// ---------------------------------------------------------------------------------------------

/**
 * Random weights, fast: each tensor is copied from a pool of N(0, std²) values rounded to
 * float16 (a prime length, so rows of power-of-two widths do not repeat), starting at an offset
 * of its own. F16 and F32 files from the same pools hold the same values, so an fp16 case (F16
 * weights) and an fp32 one (F32 weights) load without any cast — onnxruntime constant-folds a
 * weight cast at session creation, single-threaded, which took 131 s for Llama-3.2-1B F16 → F32
 * on a 2-core machine — and compute on the same model. Speed and scale matter here, not statistics.
 */
class WeightPools {
  static LENGTH = 1_048_573;
  pools = new Map();

  constructor(rng, { toFloat16Bits, fromFloat16Bits }) {
    this.normals = Float32Array.from({ length: WeightPools.LENGTH }, () => rng.normal());
    this.toFloat16Bits = toFloat16Bits;
    this.widen = Float32Array.from({ length: 65536 }, (_, bits) => fromFloat16Bits(bits));
  }

  /** A safetensors entry of `dtype` (F16 or F32): N(0, std²), or all `constant` when given. */
  tensor(dtype, shape, { std = 0, constant, offset = 0 }) {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = () => {
      const bits = this.bits(constant === undefined ? std : constant, constant !== undefined);
      const out = dtype === 'F16' ? new Uint16Array(size) : new Float32Array(size);
      const pool = dtype === 'F16' ? bits : this.widened(bits);
      if (constant !== undefined) return out.fill(pool[0]);
      let at = 0;
      let from = offset % pool.length;
      while (at < size) {
        const n = Math.min(pool.length - from, size - at);
        out.set(pool.subarray(from, from + n), at);
        at += n;
        from = 0;
      }
      return out;
    };
    return { dtype, shape, data };
  }

  /** The float16 pool of N(0, std²), or a one-value pool of `value`. */
  bits(value, constant) {
    const key = `${constant ? 'c' : 's'}${value.toPrecision(8)}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = constant
        ? Uint16Array.of(this.toFloat16Bits(value))
        : Uint16Array.from(this.normals, (v) => this.toFloat16Bits(v * value));
      this.pools.set(key, pool);
    }
    return pool;
  }

  widened(bits) {
    let pool = this.pools.get(bits);
    if (!pool) {
      pool = Float32Array.from(bits, (b) => this.widen[b]);
      this.pools.set(bits, pool);
    }
    return pool;
  }
}

const keyOffset = (key) => {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619) >>> 0;
  return h;
};

/**
 * A Hugging Face LLaMA folder per dtype (`<folder>-f16`, `<folder>-f32`): config.json and random
 * model.safetensors, N(0, 0.02²) as HF initialises, norms 1; the same values in every dtype.
 */
async function writeLlamaFolders(folder, config, dtypes, lib) {
  const { hidden_size: h, intermediate_size: inner, vocab_size: vocab, head_dim: headDim } = config;
  const q = config.num_attention_heads * headDim;
  const kv = config.num_key_value_heads * headDim;
  const pools = new WeightPools(lib.createRng(7, 1), lib);
  const shapes = [
    ['model.embed_tokens.weight', [vocab, h], { std: 0.02 }],
    ['model.norm.weight', [h], { constant: 1 }],
  ];
  if (!config.tie_word_embeddings) shapes.push(['lm_head.weight', [vocab, h], { std: 0.02 }]);
  const linears = {
    'self_attn.q_proj': [q, h],
    'self_attn.k_proj': [kv, h],
    'self_attn.v_proj': [kv, h],
    'self_attn.o_proj': [h, q],
    'mlp.gate_proj': [inner, h],
    'mlp.up_proj': [inner, h],
    'mlp.down_proj': [h, inner],
  };
  for (let layer = 0; layer < config.num_hidden_layers; layer++) {
    const prefix = `model.layers.${layer}.`;
    shapes.push([`${prefix}input_layernorm.weight`, [h], { constant: 1 }]);
    shapes.push([`${prefix}post_attention_layernorm.weight`, [h], { constant: 1 }]);
    for (const [module, shape] of Object.entries(linears))
      shapes.push([`${prefix}${module}.weight`, shape, { std: 0.02 }]);
  }
  const folders = {};
  for (const dtype of dtypes) {
    const out = `${folder}-${dtype.toLowerCase()}`;
    await mkdir(out, { recursive: true });
    const tensors = new Map(
      shapes.map(([key, shape, options]) => [
        key,
        pools.tensor(dtype, shape, { offset: keyOffset(key), ...options }),
      ]),
    );
    await lib.writeSafetensors(join(out, 'model.safetensors'), tensors, { format: 'pt' });
    const torchDtype = dtype === 'F16' ? 'float16' : 'float32';
    await writeFile(
      join(out, 'config.json'),
      JSON.stringify({ ...config, torch_dtype: torchDtype }, null, 2),
    );
    folders[dtype] = out;
  }
  return folders;
}

/**
 * An SD 1.5 single-file checkpoint (LDM keys) per dtype (`<stem>-f16.safetensors`, `-f32`) with
 * the UNet and the CLIP text encoder, random weights at the scales of `writeTinySdModel`: norms 1,
 * biases 0, embeddings N(0, 0.02²), the rest N(0, 1/fan_in). No VAE: the step takes latents.
 */
async function writeSd15Checkpoints(stem, dtypes, sd) {
  const pools = new WeightPools(sd.createRng(3, 1), sd);
  const parts = [
    [sd.LDM_PREFIXES.unet, sd.ldmUnet(sd.SD15.unet)],
    [sd.LDM_PREFIXES.text_encoder, sd.clipTextModel(sd.SD15.textEncoder)],
  ];
  await mkdir(dirname(stem), { recursive: true });
  const paths = {};
  for (const dtype of dtypes) {
    const tensors = new Map();
    for (const [prefix, shapes] of parts) {
      for (const [key, shape] of shapes) {
        const size = shape.reduce((a, b) => a * b, 1);
        const options = key.endsWith('.bias')
          ? { constant: 0 }
          : shape.length === 1
            ? { constant: 1 }
            : {
                std: key.includes('embedding') ? 0.02 : 1 / Math.sqrt(size / shape[0]),
                offset: keyOffset(key),
              };
        tensors.set(prefix + key, pools.tensor(dtype, shape, options));
      }
    }
    paths[dtype] = `${stem}-${dtype.toLowerCase()}.safetensors`;
    await sd.writeSafetensors(paths[dtype], tensors, { format: 'pt' });
  }
  return paths;
}

// ---------------------------------------------------------------------------------------------
// FLOPs
// ---------------------------------------------------------------------------------------------

/**
 * The step's FLOPs by the usual rule: 4 × matmul weights × tokens (forward 2·P·T; the backward
 * computes only input gradients, 2·P·T more: frozen weights get no weight gradient) plus
 * attention, 12 × layers × batch × seq² × (heads × head_dim) (QKᵀ and AV, 4·B·S²·d per layer
 * forward, twice that backward; the causal half is computed too). P counts every projection
 * and the LM head; the LoRA products (< 1 %) are left out.
 */
function llamaFlopsFormula(config, batch, seq) {
  const { hidden_size: h, intermediate_size: inner, vocab_size: vocab, head_dim: headDim } = config;
  const q = config.num_attention_heads * headDim;
  const kv = config.num_key_value_heads * headDim;
  const perLayer = h * q + 2 * h * kv + q * h + 3 * h * inner;
  const params = config.num_hidden_layers * perLayer + vocab * h;
  const tokens = batch * seq;
  const attention = 12 * config.num_hidden_layers * batch * seq * seq * q;
  return { params, flops: 4 * params * tokens + attention };
}

/**
 * 2 × the multiply-adds of every MatMul, Gemm, Conv and ConvTranspose of a built gradients graph
 * (forward, input gradients, LoRA weight gradients), with named dims (`batch`, `seq`, products
 * such as `batch*seq`) set from `dims`. Element-wise work is not counted.
 */
function graphFlops(graph, dims) {
  const value = (d) =>
    typeof d === 'number'
      ? d
      : String(d)
          .split('*')
          .reduce((a, part) => a * (/^\d+$/.test(part) ? Number(part) : (dims[part] ?? Number.NaN)), 1);
  const size = (shape) => shape.reduce((a, d) => a * value(d), 1);
  let total = 0;
  for (const node of graph.nodes) {
    const out = node.outputs[0];
    const [a, b] = node.inputs;
    if (node.opType === 'MatMul') total += 2 * size(out.shape) * value(a.shape.at(-1));
    else if (node.opType === 'Gemm') {
      const transA = node.attributes.transA?.value === 1;
      total += 2 * size(out.shape) * value(transA ? a.shape[0] : a.shape[1]);
    } else if (node.opType === 'Conv') total += 2 * size(out.shape) * size(b.shape.slice(1));
    else if (node.opType === 'ConvTranspose') total += 2 * size(a.shape) * size(b.shape.slice(1));
  }
  return total;
}

/** Whether a graph built with `computeDtype: 'float16'` computes anything in float16. */
const hasFloat16 = (graph) => graph.nodes.some((n) => n.outputs.some((t) => t.dtype === 'float16'));

// ---------------------------------------------------------------------------------------------
// Child processes: one case each (plus the inventory probe)
// ---------------------------------------------------------------------------------------------

const send = (message) => process.stdout.write(`${TAG}${JSON.stringify(message)}\n`);

/**
 * Every session this process creates logs verbosely under a log id naming its model file
 * (`gradients`, `update`, …), so the parent can read onnxruntime's node placement per provider
 * ("Node placements" … "placed on [X]. Number of nodes: N") from this process's stderr.
 */
function logPlacement() {
  const ort = requirePackage('onnxruntime-node');
  ort.env.logLevel = 'verbose';
  const create = ort.InferenceSession.create.bind(ort.InferenceSession);
  ort.InferenceSession.create = async (model, options = {}) => {
    const id = typeof model === 'string' ? basename(model).replace(/\.onnx$/, '') : 'in-memory';
    const started = performance.now();
    const session = await create(model, { ...options, logSeverityLevel: 0, logId: id });
    if (id !== 'in-memory') send({ type: 'session', id, seconds: (performance.now() - started) / 1000 });
    return session;
  };
}

async function childProbe() {
  const trainer = await import(DIST);
  const { adapters, problem } = await trainer.probeWebGpuAdapters();
  const start = async (device) => {
    try {
      await trainer.chooseDevice(device);
      return { ok: true };
    } catch (error) {
      return { ok: false, error: messageOf(error) };
    }
  };
  const webgpuStart = adapters.length > 0 ? await start('webgpu') : null;
  const cudaStart = trainer.isCudaInstalled() ? await start('cuda') : null;
  send({ type: 'probe', adapters, ...(problem ? { problem } : {}), webgpuStart, cudaStart });
}

const ADAMW = { type: 'adamw', betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 };

/**
 * Runs `spec.schedule` (one batch size per step) through the trainer's loop and reports each
 * step; stops early (after a step) when the next one would not end before `spec.deadline`.
 */
async function loopCase(runTrainingLoop, model, data, spec) {
  const controller = new AbortController();
  const started = performance.now();
  const lastSeconds = new Map();
  const result = await runTrainingLoop({
    seed: 0,
    maxSteps: spec.schedule.length,
    gradientAccumulationSteps: 1,
    learningRate: 1e-4,
    schedule: { scheduler: 'constant' },
    optimizer: ADAMW,
    maxGradNorm: 0,
    mixedPrecision: spec.precision === 'fp16' ? 'fp16' : 'no',
    device: spec.device,
    checkpoints: { keepLast: 1 },
    model,
    data,
    outputDir: spec.runDir,
    signal: controller.signal,
    onEvent: (event) => {
      if (event.type === 'warning') send({ type: 'warning', code: event.code, message: event.message });
      if (event.type !== 'step') return;
      const batch = spec.schedule[event.step - 1];
      const seconds = batch / event.examples_per_s;
      if (event.step === 1) send({ type: 'ready', seconds: (performance.now() - started) / 1000 - seconds });
      send({
        type: 'step',
        step: event.step,
        batch,
        seconds,
        loss: event.loss,
        ...(event.loss_scale === undefined ? {} : { lossScale: event.loss_scale }),
      });
      const previous = lastSeconds.get(batch);
      lastSeconds.set(batch, seconds);
      const next = spec.schedule[event.step];
      if (next === undefined) return;
      // The first step at a new batch size also compiles kernels / searches algorithms: allow 3×.
      const estimate = lastSeconds.get(next) ?? (previous ?? seconds) * (next / batch) * 3;
      if (Date.now() + estimate * 1000 > spec.deadline) {
        send({
          type: 'stopping',
          reason: `step ${event.step + 1} (~${estimate.toFixed(1)} s) would end after this case's time share`,
        });
        controller.abort();
      }
    },
  });
  send({
    type: 'done',
    precision: result.precision,
    steps: result.step,
    peakRssMiB: (process.resourceUsage().maxRSS * 1024) / MIB,
  });
}

async function childLlama(spec) {
  logPlacement();
  const trainer = await import(DIST);
  const { createRng } = await import('@lora/dataset');
  const lora = {
    targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
    rank: LORA_RANK,
    alpha: LORA_RANK,
    seed: 0,
  };
  const model = await trainer.createLlamaWorkerModel({ folder: spec.folder, lora });
  const rows = Math.max(...spec.schedule);
  const rng = createRng(11, 0x1d5);
  const ids = Int32Array.from({ length: rows * spec.seq }, () => rng.nextInt(spec.vocab));
  const data = {
    microBatchesPerEpoch: spec.schedule.length,
    // Step k takes the first schedule[k] sequences; labels are the ids (the model shifts them).
    batch: async (_epoch, index) => {
      const b = spec.schedule[index];
      const x = ids.slice(0, b * spec.seq);
      return {
        batchSize: b,
        seqLen: spec.seq,
        inputIds: x,
        labels: x,
        attentionMask: new Int32Array(x.length).fill(1),
      };
    },
    count: (b) => ({ examples: b.batchSize, tokens: b.batchSize * b.seqLen }),
  };
  await loopCase(trainer.runTrainingLoop, model, data, spec);
}

async function childSd(spec) {
  logPlacement();
  const { openSdCheckpoint, SdTrainableModel, runTrainingLoop } = await import(DIST);
  const { createRng } = await import('@lora/dataset');
  const opened = await openSdCheckpoint(spec.checkpoint, spec.sdConfig);
  try {
    const model = new SdTrainableModel(opened.checkpoint, {
      prediction: 'epsilon',
      lora: {
        rank: LORA_RANK,
        alpha: LORA_RANK,
        seed: 0,
        unet: ['to_q', 'to_k', 'to_v', 'to_out'],
        textEncoder: [],
      },
    });
    const rows = Math.max(...spec.schedule);
    const { inChannels } = spec.sdConfig.unet;
    const { vocabSize, maxPositions } = spec.sdConfig.textEncoder;
    const latentShape = [inChannels, spec.latent, spec.latent];
    const per = inChannels * spec.latent * spec.latent;
    const rng = createRng(13, 0x5d);
    const latents = Float32Array.from({ length: rows * per }, () => rng.normal());
    const noise = Float32Array.from({ length: rows * per }, () => rng.normal());
    const timesteps = BigInt64Array.from({ length: rows }, (_, i) => BigInt([500, 250, 750, 100][i % 4]));
    // CLIP layout: BOS, 20 caption tokens, EOS, EOS padding (the special tokens are the last two ids).
    const [bos, eos] = [vocabSize - 2, vocabSize - 1];
    const inputIds = new BigInt64Array(rows * maxPositions).fill(BigInt(eos));
    for (let r = 0; r < rows; r++) {
      inputIds[r * maxPositions] = BigInt(bos);
      for (let t = 1; t <= 20; t++) inputIds[r * maxPositions + t] = BigInt(rng.nextInt(bos));
    }
    const data = {
      microBatchesPerEpoch: spec.schedule.length,
      batch: async (_epoch, index) => {
        const b = spec.schedule[index];
        return {
          size: b,
          latentShape,
          latents: latents.slice(0, b * per),
          noise: noise.slice(0, b * per),
          timesteps: timesteps.slice(0, b),
          inputIds: inputIds.slice(0, b * maxPositions),
          captions: Array.from({ length: b }, () => ''),
        };
      },
      count: (b) => ({ examples: b.size, images: b.size }),
    };
    await loopCase(runTrainingLoop, model, data, spec);
  } finally {
    await opened.close();
  }
}

async function child(spec) {
  try {
    if (spec.kind === 'probe') await childProbe();
    else if (spec.kind === 'llama') await childLlama(spec);
    else if (spec.kind === 'sd') await childSd(spec);
    else throw new Error(`unknown case kind ${spec.kind}`);
  } catch (error) {
    send({ type: 'error', message: messageOf(error), code: error?.code });
    process.exitCode = 1;
  }
}

/** Child processes running now, killed when this process is interrupted. */
const active = new Set();

const PLACEMENT =
  /\[V:onnxruntime:([^,\]]*),.*(?:All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)/;
/** A node listed under its provider: `   MatMul (name)`. */
const NODE_LINE = /\[V:onnxruntime:([^,\]]*),.*VerifyEachNodeIsAssignedToAnEp\] {3}(\S+) \(/;
const PLACEMENT_START = /\[V:onnxruntime:([^,\]]*),.*VerifyEachNodeIsAssignedToAnEp\] Node placements/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: onnxruntime colours its warnings with ANSI escapes.
const ANSI = /\u001b\[[0-9;]*m/g;
/** Lines of a child's stderr worth showing when it fails (onnxruntime's verbose/info log is not). */
const INTERESTING = /error|fail|exception|abort|segmentation|\[E:|\[F:|\[W:|what\(\)/i;

/**
 * Runs a child process for `spec`, killing it `seconds` + grace after the start. `onMessage`
 * sees each tagged message as it arrives. Returns the messages, the node placement per session
 * (log id → provider → nodes), the interesting stderr lines and how it ended.
 *
 * The child's stderr goes to `logFile`, not to a pipe: onnxruntime writes its log from native
 * code, and once something in the child (Dawn's warnings) has made the pipe non-blocking, lines
 * written while the pipe is full are lost — the node placement among them.
 */
function runChild(spec, seconds, onMessage, logFile) {
  return new Promise((resolvePromise) => {
    const stderr = openSync(logFile, 'w');
    const childProcess = spawn(process.execPath, [SELF, '--child', JSON.stringify(spec)], {
      stdio: ['ignore', 'pipe', stderr],
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? tmpdir() },
    });
    closeSync(stderr);
    active.add(childProcess);
    const messages = [];
    const tail = [];
    let killed = false;
    const timer = setTimeout(
      () => {
        killed = true;
        childProcess.kill('SIGKILL');
      },
      (seconds + GRACE_SECONDS) * 1000,
    );
    createInterface({ input: childProcess.stdout }).on('line', (line) => {
      if (!line.startsWith(TAG)) {
        if (line.trim()) tail.push(line.slice(0, 400));
        if (tail.length > 20) tail.shift();
        return;
      }
      const message = JSON.parse(line.slice(TAG.length));
      messages.push(message);
      onMessage(message);
    });
    childProcess.on('close', async (code, signal) => {
      active.delete(childProcess);
      clearTimeout(timer);
      const { placement, cpuOps, interesting } = await readChildLog(logFile);
      resolvePromise({
        messages,
        placement,
        cpuOps,
        tail: [...tail, ...interesting],
        killed,
        exit: signal ?? code,
      });
    });
  });
}

/**
 * From a child's stderr: the node placement per session (log id → provider → node count), the
 * op types of the nodes on the CPU provider in sessions split across providers (onnxruntime lists
 * each node under its provider), and the last error-like lines.
 */
async function readChildLog(logFile) {
  const placement = {};
  const cpuOps = {};
  const interesting = [];
  let listing; // [session, provider] whose node list follows
  try {
    for await (const line of createInterface({ input: createReadStream(logFile) })) {
      const start = PLACEMENT_START.exec(line);
      if (start) {
        placement[start[1]] = {};
        delete cpuOps[start[1]];
        listing = undefined;
        continue;
      }
      const placed = PLACEMENT.exec(line);
      if (placed) {
        placement[placed[1]] ??= {};
        placement[placed[1]][placed[2]] = Number(placed[3]);
        listing = [placed[1], placed[2]];
        continue;
      }
      const node = listing && NODE_LINE.exec(line);
      if (node) {
        if (listing[1] === 'CPUExecutionProvider' && node[1] === listing[0]) {
          cpuOps[listing[0]] ??= {};
          const ops = cpuOps[listing[0]];
          ops[node[2]] = (ops[node[2]] ?? 0) + 1;
        }
        continue;
      }
      listing = undefined;
      const plain = line.replace(ANSI, '');
      if (
        INTERESTING.test(plain) &&
        !/\[(V|I):onnxruntime|Removing initializer|Some nodes were not assigned/.test(plain)
      ) {
        interesting.push(plain.slice(0, 400));
        if (interesting.length > 20) interesting.shift();
      }
    }
  } catch (error) {
    interesting.push(`(reading ${logFile}: ${messageOf(error)})`);
  }
  for (const id of Object.keys(cpuOps)) if (Object.keys(placement[id] ?? {}).length < 2) delete cpuOps[id];
  return { placement, cpuOps, interesting };
}

// ---------------------------------------------------------------------------------------------
// Device memory
// ---------------------------------------------------------------------------------------------

function gpuMemoryUsed() {
  const result = tryRun(
    'nvidia-smi',
    ['-i', '0', '--query-gpu=memory.used', '--format=csv,noheader,nounits'],
    10_000,
  );
  const value = Number(result.stdout?.trim());
  return Number.isFinite(value) ? value : undefined;
}

/** nvidia-smi's own 100 ms loop over GPU 0's used memory; `stop()` gives the peak (MiB). */
function sampleGpuMemory() {
  const sampler = spawn(
    'nvidia-smi',
    ['-i', '0', '--query-gpu=memory.used', '--format=csv,noheader,nounits', '-lms', '100'],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  sampler.on('error', () => {});
  let peak = 0;
  let samples = 0;
  createInterface({ input: sampler.stdout }).on('line', (line) => {
    const value = Number(line.trim());
    if (Number.isFinite(value)) {
      peak = Math.max(peak, value);
      samples++;
    }
  });
  return {
    stop() {
      sampler.kill();
      return samples > 0 ? { peakMiB: peak, samples } : undefined;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

function peakFor(inv, device) {
  if (device.device === 'webgpu' && device.software) return undefined;
  const name = inv.nvidiaSmi.gpus?.[0]?.name;
  if (!name) return undefined;
  const peak = PEAKS.find((p) => p.match.test(name));
  return peak ? { ...peak, gpu: name, match: undefined } : undefined;
}

/** "x % of fp16 tensor 989 TFLOPS" for fp16; fp32 against the CUDA cores and TF32 tensor cores. */
function mfuText(tflops, precision, peak) {
  if (!peak) return { text: 'MFU n/a (no peak known for this device)', values: null };
  if (precision === 'fp16') {
    const value = tflops / peak.fp16;
    return {
      text: `MFU ${(100 * value).toFixed(1)} % of ${peak.label} fp16 tensor ${peak.fp16} TFLOPS`,
      values: { fp16Tensor: value },
    };
  }
  const [fp32, tf32] = [tflops / peak.fp32, tflops / peak.tf32];
  return {
    text: `MFU ${(100 * fp32).toFixed(1)} % of ${peak.label} fp32 ${peak.fp32} TFLOPS (${(100 * tf32).toFixed(1)} % of TF32 tensor ${peak.tf32})`,
    values: { fp32: fp32, tf32Tensor: tf32 },
  };
}

function placementText(placement) {
  const sessions = Object.entries(placement).filter(([id]) => id !== 'in-memory');
  if (sessions.length === 0) return 'no node placement logged';
  return sessions
    .map(([id, providers]) => {
      const parts = Object.entries(providers).map(([p, n]) => `${p.replace('ExecutionProvider', '')} ${n}`);
      return `${id}: ${parts.join(' + ')}`;
    })
    .join('; ');
}

async function main() {
  const started = Date.now();
  const mode = args.small ? 'small' : 'full';
  const settings = MODES[mode];
  const budget = Number(args.budget ?? settings.budget);
  const deadline = started + budget * 1000;
  const timedSteps = Number(args.steps ?? settings.timedSteps);
  const models = args.only ? [args.only] : ['llama', 'sd'];
  if (!models.every((m) => m === 'llama' || m === 'sd')) {
    console.error(`--only takes llama or sd, got ${args.only}`);
    process.exit(2);
  }
  process.env.XDG_RUNTIME_DIR ??= tmpdir();
  const report = {
    tool: 'packages/trainer-ort/tools/device-check.mjs',
    mode,
    argv: process.argv.slice(2),
    budgetSeconds: budget,
  };
  const saveReport = () => {
    if (!args.out) return;
    try {
      writeFileSync(resolve(args.out), `${JSON.stringify(report, null, 2)}\n`);
    } catch (error) {
      say(`could not write ${args.out}: ${messageOf(error)}`);
    }
  };

  const inv = await inventory();
  report.inventory = inv;
  printInventory(inv);
  saveReport();

  const planned = planDevices(inv);
  const wanted = args.device?.split(',').map((d) => d.trim());
  const devices = wanted ? planned.devices.filter((d) => wanted.includes(d.device)) : planned.devices;
  const skipped = [
    ...planned.skipped,
    ...planned.devices
      .filter((d) => !devices.includes(d))
      .map((d) => ({ device: d.device, reason: 'not in --device' })),
  ];
  report.devices = devices;
  report.skippedDevices = skipped;
  say('');
  say('== plan ==');
  for (const s of skipped) say(`skip ${s.device}: ${s.reason}`);
  if (devices.length === 0 && mode === 'full' && !wanted?.includes('cpu')) {
    say('no GPU provider to measure: the inventory above says what this machine lacks.');
    saveReport();
    process.exit(2);
  }
  if (inv.onnxruntime.error) process.exit(2);
  // --small measures the CPU provider like a device (that is what runs here); at full size the
  // CPU only gives the reference losses.
  const all = mode === 'small' ? [{ device: 'cpu', name: 'CPU provider', fp16: false }, ...devices] : devices;
  say(
    `devices: ${all.map((d) => `${d.device} (${d.name})`).join(', ') || 'none (CPU reference only)'}; budget ${budget} s; mode ${mode}`,
  );

  const temp = mkdtempSync(join(tmpdir(), 'lora-device-check-'));
  const cleanup = () => rmSync(temp, { recursive: true, force: true });
  process.once('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      for (const running of active) running.kill('SIGKILL');
      process.exit(130);
    });
  }
  if (args.logs) mkdirSync(resolve(args.logs), { recursive: true });

  // Cases in order: per model, every GPU device × fp16, fp32, then the CPU reference.
  // Cases in order: every GPU device × fp16, fp32 per model (the throughput this is for), then the
  // CPU references, which get what is left of the budget.
  const cases = [];
  for (const model of models) {
    for (const d of all) {
      if (d.device === 'cpu') continue;
      for (const precision of ['fp16', 'fp32']) cases.push({ model, device: d, precision, reference: false });
    }
  }
  for (const model of models) {
    cases.push({
      model,
      device: { device: 'cpu', name: 'CPU provider', fp16: false },
      precision: 'fp32',
      reference: true,
    });
  }
  report.cases = [];
  const prepared = {};
  const libs = {
    trainer: await import(DIST),
    safetensors: await import('@lora/safetensors'),
    dataset: await import('@lora/dataset'),
  };

  const fp16Wanted = all.some((d) => d.device !== 'cpu' && d.fp16);
  const weightLib = {
    createRng: libs.dataset.createRng,
    toFloat16Bits: libs.trainer.toFloat16Bits,
    fromFloat16Bits: libs.trainer.fromFloat16Bits,
    writeSafetensors: libs.safetensors.writeSafetensors,
  };

  async function prepare(model) {
    const t0 = performance.now();
    const big = settings[model].batch;
    if (model === 'llama') {
      const { config, seq } = settings.llama;
      const dtypes = fp16Wanted ? ['F16', 'F32'] : ['F32'];
      const folders = await writeLlamaFolders(join(temp, 'llama'), config, dtypes, weightLib);
      const folder = folders.F32;
      const written = (performance.now() - t0) / 1000;
      const flops = {};
      const formula = {};
      let computesFp16;
      for (const b of [1, big]) formula[b] = llamaFlopsFormula(config, b, seq).flops;
      // The graph count, as a check of the formula.
      try {
        const m = await libs.trainer.createLlamaWorkerModel({
          folder,
          lora: {
            targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
            rank: LORA_RANK,
            alpha: LORA_RANK,
            seed: 0,
          },
        });
        // Built for fp16: the count is the same, and it shows whether the model computes in fp16.
        const graph = new libs.trainer.Graph('count');
        const built = m.build(graph, { computeDtype: 'float16' });
        libs.trainer.gradients(
          built.lossSum,
          built.parameters.map((p) => p.tensor),
        );
        for (const b of [1, big]) flops[b] = graphFlops(graph, { batch: b, seq });
        computesFp16 = hasFloat16(graph);
      } catch (error) {
        say(`llama: FLOP count from the graph failed (${messageOf(error)}); using the formula only`);
      }
      const { params } = llamaFlopsFormula(config, 1, seq);
      say(
        `llama: wrote ${settings.llama.label} (P = ${(params / 1e6).toFixed(1)} M matmul weights incl. LM head) as ${dtypes.join(' and ')} in ${written.toFixed(1)} s; ` +
          `FLOPs/step = 4·P·T + 12·L·B·S²·(heads·head_dim): ${[1, big].map((b) => `batch ${b}: ${fmtFlops(formula[b])}`).join(', ')}` +
          (flops[1] ? ` (graph count: ${[1, big].map((b) => fmtFlops(flops[b])).join(', ')})` : ''),
      );
      prepared.llama = {
        folders,
        flops: formula,
        graphFlops: flops,
        vocab: config.vocab_size,
        seq,
        computesFp16,
      };
    } else {
      const trainer = await import(DIST);
      const configs = { SD15: trainer.SD15 };
      const keys = { LDM_PREFIXES: trainer.LDM_PREFIXES };
      const layout = { ldmUnet: trainer.ldmUnet, clipTextModel: trainer.clipTextModel };
      const gradientsModule = { gradients: trainer.gradients };
      const trainable = { SdTrainableModel: trainer.SdTrainableModel };
      const graphModule = { Graph: trainer.Graph };
      const checkpointModule = { openSdCheckpoint: trainer.openSdCheckpoint };
      const tiny = { writeTinySdModel: trainer.writeTinySdModel };
      const sd15 = { ...keys, ...layout, SD15: configs.SD15, ...weightLib };
      let checkpoints;
      let sdConfig;
      if (mode === 'small') {
        const { checkpoint, config } = await tiny.writeTinySdModel(join(temp, 'sd'));
        checkpoints = { F16: checkpoint, F32: checkpoint };
        sdConfig = config;
      } else {
        sdConfig = configs.SD15;
        checkpoints = await writeSd15Checkpoints(join(temp, 'sd', 'sd15'), ['F32'], sd15);
      }
      let written = (performance.now() - t0) / 1000;
      const t1 = performance.now();
      const opened = await checkpointModule.openSdCheckpoint(checkpoints.F32, sdConfig);
      const flops = {};
      let computesFp16;
      try {
        const m = new trainable.SdTrainableModel(opened.checkpoint, {
          prediction: 'epsilon',
          lora: {
            rank: LORA_RANK,
            alpha: LORA_RANK,
            seed: 0,
            unet: ['to_q', 'to_k', 'to_v', 'to_out'],
            textEncoder: [],
          },
        });
        // Built for fp16: the count is the same, and it shows whether the model computes in fp16.
        const graph = new graphModule.Graph('count');
        const built = m.build(graph, {
          computeDtype: 'float16',
          shapeKey: `${settings.sd.latent}x${settings.sd.latent}`,
        });
        gradientsModule.gradients(
          built.lossSum,
          built.parameters.map((p) => p.tensor),
        );
        for (const b of [1, big]) flops[b] = graphFlops(graph, { batch: b });
        computesFp16 = hasFloat16(graph);
      } finally {
        await opened.close();
      }
      const counted = (performance.now() - t1) / 1000;
      // F16 weights only for a model that computes in fp16: an fp32 graph would cast them at load.
      if (mode === 'full' && fp16Wanted && computesFp16) {
        const t2 = performance.now();
        Object.assign(checkpoints, await writeSd15Checkpoints(join(temp, 'sd', 'sd15'), ['F16'], sd15));
        written += (performance.now() - t2) / 1000;
      }
      say(
        `sd: wrote ${settings.sd.label} (${mode === 'small' ? 'F32, writeTinySdModel' : Object.keys(checkpoints).join(' and ')}) in ${written.toFixed(1)} s; ` +
          `FLOPs/step counted from the gradients graph (2 × multiply-adds of its MatMul/Gemm/Conv/ConvTranspose; ${counted.toFixed(1)} s): ` +
          [1, big].map((b) => `batch ${b}: ${fmtFlops(flops[b])}`).join(', '),
      );
      prepared.sd = { checkpoints, sdConfig, flops, latent: settings.sd.latent, computesFp16 };
    }
  }

  const weightOf = (c) => WEIGHTS[`${c.model}-${c.reference || c.device.device === 'cpu' ? 'cpu' : 'gpu'}`];
  let failures = 0;
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i];
    const label = `${c.model} ${c.device.device} ${c.precision}${c.reference ? ' (CPU reference)' : ''}`;
    const entry = {
      model: c.model,
      device: c.device.device,
      deviceName: c.device.name,
      precision: c.precision,
      reference: c.reference,
    };
    report.cases.push(entry);
    if (!prepared[c.model]) {
      try {
        await prepare(c.model);
      } catch (error) {
        say(`${c.model}: preparing the random checkpoint failed: ${messageOf(error)}`);
        prepared[c.model] = { error: messageOf(error) };
      }
    }
    if (prepared[c.model].error) {
      Object.assign(entry, { status: 'skipped', reason: `no checkpoint: ${prepared[c.model].error}` });
      continue;
    }
    const noFp16 = `the ${c.model} graph built for fp16 has no float16 op (the model ignores the compute dtype)`;
    if (c.precision === 'fp16' && prepared[c.model].computesFp16 === false && mode === 'full') {
      Object.assign(entry, {
        status: 'skipped',
        reason: `${noFp16}: the fp32 case measures the same computation`,
      });
      say(`${label}: skipped, ${entry.reason}`);
      continue;
    }
    if (c.precision === 'fp16' && !c.device.fp16) {
      Object.assign(entry, { status: 'skipped', reason: `${c.device.name} has no shader-f16` });
      say(`${label}: skipped, ${entry.reason}`);
      continue;
    }
    // This case's share of what is left, by weight (at least minCase: most cases end before their
    // share, and what they leave goes to the next); SD's preparation is kept back while it is ahead.
    const rest = cases.slice(i);
    const reserve = models.includes('sd') && !prepared.sd ? SD_PREPARE_SECONDS[mode] : 0;
    const left = (deadline - Date.now()) / 1000 - reserve - GRACE_SECONDS;
    const fair = (left * weightOf(c)) / rest.reduce((a, r) => a + weightOf(r), 0);
    const share = Math.min(settings.maxCase, left, Math.max(settings.minCase, fair));
    if (!(left >= settings.minCase)) {
      Object.assign(entry, {
        status: 'skipped',
        reason: `out of time (${Math.max(0, left).toFixed(0)} s left of the ${budget} s budget, under the ${settings.minCase} s a case needs)`,
      });
      say(`${label}: skipped, ${entry.reason}`);
      continue;
    }
    const p = prepared[c.model];
    const big = settings[c.model].batch;
    const lossOnly = c.reference && settings.cpuStepsOnlyLosses;
    const schedule = [...Array(LOSS_STEPS).fill(1), ...(lossOnly ? [] : Array(1 + timedSteps).fill(big))];
    // Weights in the dtype the graph computes in, so that no session casts them (see WeightPools).
    const dtype = c.precision === 'fp16' && p.computesFp16 !== false ? 'F16' : 'F32';
    const spec = {
      kind: c.model,
      device: c.device.device,
      precision: c.precision,
      schedule,
      deadline: Date.now() + share * 1000,
      runDir: join(temp, `run-${i}`),
      ...(c.model === 'llama'
        ? { folder: p.folders[dtype], vocab: p.vocab, seq: p.seq }
        : { checkpoint: p.checkpoints[dtype], sdConfig: p.sdConfig, latent: p.latent }),
    };
    say('');
    say(`-- ${label}: batch ${schedule.join(',')} (${share.toFixed(0)} s share) --`);
    if (c.precision === 'fp16' && p.computesFp16 === false) {
      entry.note = `${noFp16}: this case computes in fp32, with fp16 loss scaling`;
      say(`  note: ${entry.note}`);
    }
    const baseline = c.device.device === 'cpu' ? undefined : gpuMemoryUsed();
    const sampler = c.device.device !== 'cpu' && baseline !== undefined ? sampleGpuMemory() : undefined;
    const t0 = performance.now();
    const created = [];
    const outcomeSessions = () => created.map((m) => `${m.id} ${m.seconds.toFixed(1)} s`).join(', ');
    const outcome = await runChild(
      spec,
      share,
      (m) => {
        if (m.type === 'session') created.push(m);
        // Slow sessions are said as they come (a kill during start-up then shows how far it got).
        if (m.type === 'session' && m.seconds >= 1)
          say(`  session ${m.id} created in ${m.seconds.toFixed(1)} s`);
        else if (m.type === 'ready') {
          const sessions = outcomeSessions(m);
          say(
            `  ready for the first step after ${m.seconds.toFixed(1)} s (graphs built and written; sessions: ${sessions})`,
          );
        } else if (m.type === 'step')
          say(
            `  step ${m.step} (batch ${m.batch}): loss ${m.loss.toFixed(6)}, ${(m.seconds * 1000).toFixed(1)} ms` +
              `${m.lossScale === undefined ? '' : `, loss scale ${m.lossScale}`}`,
          );
        else if (m.type === 'warning') say(`  warning ${m.code}: ${m.message}`);
        else if (m.type === 'stopping') say(`  stopping early: ${m.reason}`);
        else if (m.type === 'error') say(`  ERROR: ${m.message}`);
      },
      join(
        args.logs ? resolve(args.logs) : temp,
        `${i + 1}-${c.model}-${c.device.device}-${c.precision}.log`,
      ),
    );
    const memory = sampler?.stop();
    const steps = outcome.messages.filter((m) => m.type === 'step');
    const done = outcome.messages.find((m) => m.type === 'done');
    const error = outcome.messages.find((m) => m.type === 'error');
    entry.schedule = schedule;
    entry.wallSeconds = round((performance.now() - t0) / 1000);
    entry.setupSeconds = round(outcome.messages.find((m) => m.type === 'ready')?.seconds ?? Number.NaN);
    entry.steps = steps.map(({ step, batch, seconds, loss, lossScale }) => ({
      step,
      batch,
      seconds,
      loss,
      lossScale,
    }));
    entry.losses = steps.slice(0, LOSS_STEPS).map((s) => s.loss);
    // fp16 steps whose gradients overflowed: no update, so the next loss repeats this one.
    entry.skippedSteps = outcome.messages
      .filter((m) => m.type === 'warning' && m.code === 'loss_scale_reduced')
      .map((m) => Number(/step (\d+)/.exec(m.message)?.[1]));
    entry.precisionUsed = done?.precision ?? null;
    entry.peakRssMiB = round(done?.peakRssMiB ?? Number.NaN, 0);
    entry.placement = outcome.placement;
    entry.cpuOps = outcome.cpuOps;
    entry.deviceMemory =
      memory && baseline !== undefined ? { peakMiB: memory.peakMiB, beforeMiB: baseline } : null;
    entry.status = error
      ? 'failed'
      : outcome.killed
        ? 'killed'
        : done
          ? done.steps < schedule.length
            ? 'partial'
            : 'ok'
          : 'failed';
    if (error) entry.reason = error.message;
    else if (outcome.killed) {
      const phase = steps.length
        ? `during step ${steps.length + 1}`
        : outcome.messages.some((m) => m.type === 'session' && m.id.startsWith('gradients'))
          ? 'during the first step (sessions were created)'
          : 'while building the graphs or creating the gradients session (weight loading, constant folding, kernel setup)';
      entry.reason = `over its ${share.toFixed(0)} s share + ${GRACE_SECONDS} s: killed ${phase}`;
    } else if (!done) entry.reason = `exited with ${outcome.exit}: ${outcome.tail.slice(-5).join(' | ')}`;
    if (entry.status !== 'ok') failures++;
    if (!done && !error && outcome.tail.length > 0)
      for (const line of outcome.tail.slice(-5)) say(`  | ${line}`);

    // Throughput per batch size: the median of its steps after the first (the first of each size warms up).
    const unit = c.model === 'llama' ? 'tokens/s' : 'images/s';
    const peak = c.device.device === 'cpu' ? undefined : peakFor(inv, c.device);
    entry.throughput = [];
    for (const b of [...new Set(schedule)]) {
      const timed = steps.filter((s) => s.batch === b).slice(1);
      if (timed.length === 0) continue;
      const seconds = median(timed.map((s) => s.seconds));
      const flops = p.flops[b];
      const rate = (c.model === 'llama' ? b * p.seq : b) / seconds;
      const tflops = flops / seconds / 1e12;
      const mfu = mfuText(tflops, c.precision, peak);
      entry.throughput.push({
        batch: b,
        timedSteps: timed.length,
        msPerStep: round(seconds * 1000, 2),
        [unit.replace('/', '_per_')]: round(rate, 2),
        flopsPerStep: flops,
        tflopsPerS: Number(tflops.toPrecision(4)),
        mfu: mfu.values,
        peakUsed: peak
          ? { gpu: peak.gpu, table: peak.label, fp32: peak.fp32, tf32: peak.tf32, fp16: peak.fp16 }
          : null,
      });
      say(
        `  => batch ${b}: ${(seconds * 1000).toFixed(1)} ms/step (median of ${timed.length}), ${fmtInt(rate)} ${unit}, ` +
          `${fmtFlops(flops)}/step → ${tflops >= 1 ? `${tflops.toFixed(1)} TFLOP/s` : `${(tflops * 1000).toFixed(1)} GFLOP/s`}; ` +
          (c.device.device === 'cpu' ? 'MFU n/a (CPU)' : mfu.text),
      );
    }
    const memoryText = entry.deviceMemory
      ? `${fmtInt(entry.deviceMemory.peakMiB)} MiB (${fmtInt(entry.deviceMemory.beforeMiB)} MiB in use before; nvidia-smi, GPU 0)`
      : c.device.device === 'cpu'
        ? 'n/a (CPU)'
        : 'n/a (no nvidia-smi)';
    say(
      `  => ${entry.status}${entry.reason ? ` (${entry.reason})` : ''}; precision ${entry.precisionUsed ?? '?'}; peak device memory ${memoryText}; ` +
        `peak RSS ${entry.peakRssMiB ?? '?'} MiB; nodes: ${placementText(outcome.placement)}`,
    );
    for (const [id, ops] of Object.entries(outcome.cpuOps)) {
      say(
        `  => ${id}: on the CPU provider: ${Object.entries(ops)
          .map(([op, n]) => `${op} ${n}`)
          .join(', ')}`,
      );
    }
    saveReport();
  }

  // The first losses against the CPU provider's.
  say('');
  say(`== first ${LOSS_STEPS} losses (batch 1, same weights and batch) against the CPU provider ==`);
  report.lossComparison = [];
  for (const model of models) {
    const reference = report.cases.find((e) => e.model === model && e.reference);
    const refLosses = reference?.losses ?? [];
    say(
      `${model} cpu fp32 (reference): ${refLosses.length ? refLosses.map((l) => l.toFixed(6)).join(', ') : `none (${reference?.reason ?? reference?.status ?? 'not run'})`}`,
    );
    for (const e of report.cases.filter((x) => x.model === model && !x.reference)) {
      if (!e.losses?.length) {
        say(`${model} ${e.device} ${e.precision}: no losses (${e.reason ?? e.status})`);
        continue;
      }
      const diffs = e.losses.map((l, k) =>
        refLosses[k] === undefined ? null : Math.abs(l / refLosses[k] - 1),
      );
      const known = diffs.filter((d) => d !== null);
      const worst = known.length ? Math.max(...known) : null;
      report.lossComparison.push({
        model,
        device: e.device,
        precision: e.precision,
        losses: e.losses,
        reference: refLosses,
        maxRelativeDifference: worst,
        skippedSteps: e.skippedSteps,
      });
      const skipped = e.skippedSteps.filter((k) => k < LOSS_STEPS);
      say(
        `${model} ${e.device} ${e.precision}: ${e.losses.map((l) => l.toFixed(6)).join(', ')}` +
          (worst === null ? ' (no reference)' : `; largest relative difference ${worst.toExponential(2)}`) +
          (skipped.length
            ? ` (fp16 overflow skipped the update of step ${skipped.join(', ')}, so later losses repeat)`
            : ''),
      );
    }
  }
  report.totalSeconds = round((Date.now() - started) / 1000);
  saveReport();
  say('');
  say(
    `done in ${report.totalSeconds} s${args.out ? `; report: ${resolve(args.out)}` : ''}; temp folder ${temp} removed`,
  );
  process.exit(failures > 0 ? 1 : 0);
}

if (args.child) await child(JSON.parse(args.child));
else await main();
