/**
 * `lora doctor`: what this machine offers for training, and which device `device: auto` takes.
 * Every probe is reported, never thrown: the command exists for machines where something is off.
 */
import { cpus, freemem, totalmem } from 'node:os';
import {
  chooseDevice,
  type DeviceChoice,
  describeDevice,
  isCudaInstalled,
  onnxRuntimeInfo,
  probeWebGpuAdapters,
  type WebGpuAdapter,
} from '@lora/trainer-ort';
import sharp from 'sharp';
import { formatBytes, formatTable, print, printJson } from '../format.ts';

export interface DoctorReport {
  node: string;
  platform: string;
  cpu: { model: string; cores: number; memory: number; freeMemory: number };
  onnxruntime: { version: string; providers: { name: string; bundled: boolean; installed: boolean }[] };
  sharp: string;
  cuda: {
    installed: boolean;
    /** Whether the provider ran a test graph; absent when not installed. */
    starts?: boolean;
    problem?: string;
    install: { pnpm: string[]; npm: string[] };
  };
  webgpu: { adapters: WebGpuAdapter[]; starts?: boolean; problem?: string };
  auto: { device: DeviceChoice['device']; adapter?: string; reason?: string; summary: string };
}

/** The commands that fetch onnxruntime-node's CUDA provider (README "GPU"). */
const CUDA_STEPS = {
  pnpm: [
    'pnpm approve-builds   # pick onnxruntime-node (or list it under onlyBuiltDependencies)',
    'ONNXRUNTIME_NODE_INSTALL=cuda12 pnpm rebuild onnxruntime-node',
  ],
  npm: ['ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node'],
};

export async function doctor(options: { json?: boolean } = {}): Promise<void> {
  const report = await collect();
  if (options.json) printJson(report);
  else print(render(report));
}

async function collect(): Promise<DoctorReport> {
  const ort = onnxRuntimeInfo();
  const cudaInstalled = isCudaInstalled();
  const cuda: DoctorReport['cuda'] = { installed: cudaInstalled, install: CUDA_STEPS };
  if (cudaInstalled) {
    const problem = await problemOf(chooseDevice('cuda'));
    cuda.starts = problem === undefined;
    if (problem !== undefined) cuda.problem = problem;
  }
  const probe = await probeWebGpuAdapters();
  const webgpu: DoctorReport['webgpu'] = {
    adapters: probe.adapters,
    ...(probe.problem === undefined ? {} : { problem: probe.problem }),
  };
  if (probe.adapters.length > 0) {
    const problem = await problemOf(chooseDevice('webgpu'));
    webgpu.starts = problem === undefined;
    if (problem !== undefined) webgpu.problem = problem;
  }
  const auto = await chooseDevice('auto');
  const cores = cpus();
  return {
    node: process.versions.node,
    platform: `${process.platform}-${process.arch}`,
    cpu: {
      model: cores[0]?.model.trim() ?? 'unknown',
      cores: cores.length,
      memory: totalmem(),
      freeMemory: freemem(),
    },
    onnxruntime: {
      version: ort.version,
      providers: ort.providers.map((p) => ({
        ...p,
        installed: p.bundled || (p.name === 'cuda' && cudaInstalled),
      })),
    },
    sharp: sharp.versions.sharp ?? 'unknown',
    cuda,
    webgpu,
    auto: {
      device: auto.device,
      ...(auto.adapter === undefined ? {} : { adapter: auto.adapter.name }),
      ...(auto.fallback === undefined ? {} : { reason: auto.fallback }),
      summary: describeDevice(auto),
    },
  };
}

async function problemOf(choice: Promise<unknown>): Promise<string | undefined> {
  try {
    await choice;
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

function render(r: DoctorReport): string {
  const yes = (flag: boolean) => (flag ? 'yes' : 'no');
  const lines = [
    `Node.js ${r.node} on ${r.platform}; sharp ${r.sharp}`,
    `CPU: ${r.cpu.model}, ${r.cpu.cores} cores; memory ${formatBytes(r.cpu.memory)} (${formatBytes(r.cpu.freeMemory)} free)`,
    '',
    `onnxruntime-node ${r.onnxruntime.version}, execution providers:`,
    formatTable([
      ['provider', 'in the npm package', 'installed'],
      ...r.onnxruntime.providers.map((p) => [p.name, yes(p.bundled), yes(p.installed)]),
    ]),
    '',
    `CUDA: ${
      !r.cuda.installed
        ? 'provider not installed'
        : r.cuda.starts
          ? 'provider installed and runs a test graph'
          : `provider installed but does not start: ${r.cuda.problem}`
    }`,
  ];
  if (!r.cuda.installed) {
    lines.push(
      '  to install it (NVIDIA GPU with CUDA 12 and cuDNN 9), in the folder that holds node_modules:',
      ...r.cuda.install.pnpm.map((step) => `    pnpm: ${step}`),
      ...r.cuda.install.npm.map((step) => `    npm:  ${step}`),
    );
  }
  lines.push(
    '',
    `WebGPU: ${r.webgpu.adapters.length} adapter(s)${r.webgpu.problem ? `; ${r.webgpu.problem}` : ''}`,
  );
  if (r.webgpu.adapters.length > 0) {
    lines.push(
      formatTable([
        ['adapter', 'vendor', 'type', 'fp16', 'max buffer', 'max binding', 'onnxruntime uses it'],
        ...r.webgpu.adapters.map((a) => [
          a.name,
          a.vendor || '-',
          a.type === 'cpu' ? 'cpu (software)' : 'gpu',
          yes(a.fp16),
          formatBytes(a.maxBufferSize),
          formatBytes(a.maxStorageBufferBindingSize),
          yes(a.usedByOnnxRuntime),
        ]),
      ]),
    );
    if (r.webgpu.starts) lines.push("  onnxruntime's WebGPU provider runs a test graph on it");
  }
  lines.push('', `device: auto → ${r.auto.summary}`);
  return lines.join('\n');
}
