/**
 * `lora doctor`: what this machine offers for training, and which device `device: auto` takes.
 * Every probe is reported, never thrown: the command exists for machines where something is off.
 */
import { cpus, freemem, totalmem } from 'node:os';
import type { DeviceChoice, WebGpuAdapter } from '@lora/trainer-ort';
import { formatBytes, formatTable, print, printJson } from '../format.ts';

/** What a machine offers; `runtime` is absent, and `problem` says why, when onnxruntime-node does not load. */
export interface DoctorReport {
  node: string;
  platform: string;
  cpu: { model: string; cores: number; memory: number; freeMemory: number };
  /** sharp's version, or why its native binary did not load. */
  sharp: string;
  runtime?: RuntimeReport;
  problem?: string;
}

export interface RuntimeReport {
  onnxruntime: { version: string; providers: { name: string; bundled: boolean; installed: boolean }[] };
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
  const cores = cpus();
  const machine = {
    node: process.versions.node,
    platform: `${process.platform}-${process.arch}`,
    cpu: {
      model: cores[0]?.model.trim() ?? 'unknown',
      cores: cores.length,
      memory: totalmem(),
      freeMemory: freemem(),
    },
    sharp: await import('sharp').then(
      ({ default: sharp }) => sharp.versions.sharp ?? 'unknown',
      (error: unknown) => `did not load (${messageOf(error)})`,
    ),
  };
  // The trainer loads onnxruntime-node's native binding: a broken install is what this command reports.
  let runtime: RuntimeReport;
  try {
    runtime = await collectRuntime(await import('@lora/trainer-ort'));
  } catch (error) {
    return { ...machine, problem: `onnxruntime-node did not load: ${messageOf(error)}; reinstall @lora/cli` };
  }
  return { ...machine, runtime };
}

async function collectRuntime(trainer: typeof import('@lora/trainer-ort')): Promise<RuntimeReport> {
  const { chooseDevice, describeDevice, isCudaInstalled, onnxRuntimeInfo, probeWebGpuAdapters } = trainer;
  const ort = onnxRuntimeInfo();
  const cudaInstalled = isCudaInstalled();
  const cuda: RuntimeReport['cuda'] = { installed: cudaInstalled, install: CUDA_STEPS };
  if (cudaInstalled) {
    const problem = await problemOf(chooseDevice('cuda'));
    cuda.starts = problem === undefined;
    if (problem !== undefined) cuda.problem = problem;
  }
  const probe = await probeWebGpuAdapters();
  const webgpu: RuntimeReport['webgpu'] = {
    adapters: probe.adapters,
    ...(probe.problem === undefined ? {} : { problem: probe.problem }),
  };
  if (probe.adapters.length > 0) {
    const problem = await problemOf(chooseDevice('webgpu'));
    webgpu.starts = problem === undefined;
    if (problem !== undefined) webgpu.problem = problem;
  }
  const auto = await chooseDevice('auto');
  return {
    onnxruntime: {
      version: ort.version,
      providers: ort.providers.map((p) => ({
        ...p,
        installed: p.bundled || (p.name === 'cuda' && cudaInstalled),
      })),
    },
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
    return messageOf(error);
  }
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

function render(report: DoctorReport): string {
  const head = [
    `Node.js ${report.node} on ${report.platform}; sharp ${report.sharp}`,
    `CPU: ${report.cpu.model}, ${report.cpu.cores} cores; memory ${formatBytes(report.cpu.memory)} (${formatBytes(report.cpu.freeMemory)} free)`,
    '',
  ];
  return report.runtime === undefined
    ? [...head, report.problem].join('\n')
    : [...head, renderRuntime(report.runtime)].join('\n');
}

function renderRuntime(r: RuntimeReport): string {
  const yes = (flag: boolean) => (flag ? 'yes' : 'no');
  const lines = [
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
