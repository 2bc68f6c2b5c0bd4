/**
 * The WebGPU adapters of this machine, as Dawn (the WebGPU implementation inside onnxruntime's
 * WebGPU provider) sees them. onnxruntime-node reports nothing about the adapter its WebGPU
 * provider took, so the adapters are asked for through Dawn's own Node binding (the `webgpu`
 * package) with the same request onnxruntime makes first, `powerPreference: 'high-performance'`,
 * then the low-power and the software (fallback) request, which between them reach a laptop's
 * integrated GPU and a CPU adapter.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** One adapter: what `lora doctor` shows and `device: auto` decides on. */
export interface WebGpuAdapter {
  /** Driver description, e.g. `NVIDIA H100 80GB HBM3` or `llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)`. */
  name: string;
  vendor: string;
  architecture: string;
  /** `cpu` for software adapters (Mesa lavapipe, SwiftShader, WARP): slower than the CPU provider. */
  type: 'gpu' | 'cpu';
  /** `shader-f16`: half-precision arithmetic in shaders, needed for `mixed_precision: fp16`. */
  fp16: boolean;
  /** Largest buffer in bytes (a weight tensor or an activation must fit in one). */
  maxBufferSize: number;
  /** Largest storage buffer one shader binds, in bytes. */
  maxStorageBufferBindingSize: number;
  /** The adapter onnxruntime's WebGPU provider uses (its high-performance choice). */
  usedByOnnxRuntime: boolean;
}

export interface WebGpuProbe {
  adapters: WebGpuAdapter[];
  /** Why the list is empty, when it is. */
  problem?: string;
}

/** What the probe process prints per adapter: the fields of Dawn's `GPUAdapter` read here. */
interface DawnAdapter {
  info: {
    vendor: string;
    architecture: string;
    device: string;
    description: string;
    isFallbackAdapter?: boolean;
  };
  features: string[];
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number };
}

/**
 * The probe runs in a child process: Dawn prints driver warnings straight to the process's
 * stderr (lavapipe: "maxDynamicUniformBuffersPerPipelineLayout artificially reduced"), and a
 * driver fault must not take the trainer down with it.
 */
const PROBE_SCRIPT = `
const { create } = await import(process.argv[1]);
const gpu = create([]);
const requests = [{ powerPreference: 'high-performance' }, { powerPreference: 'low-power' }, { forceFallbackAdapter: true }];
const found = [];
for (const request of requests) {
  const adapter = await gpu.requestAdapter(request).catch(() => null);
  const info = adapter?.info;
  found.push(adapter === null ? null : {
    info: { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description, isFallbackAdapter: info.isFallbackAdapter },
    features: [...adapter.features],
    limits: { maxBufferSize: adapter.limits.maxBufferSize, maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize },
  });
}
process.stdout.write(JSON.stringify(found));
process.exit(0);
`;

/** Creating a Vulkan instance loads every installed driver; a healthy machine answers in well under a second. */
const PROBE_TIMEOUT_MS = 30_000;

let probed: Promise<WebGpuProbe> | undefined;

/** The adapters, asked for once per process. The first answers onnxruntime's own request (high-performance). */
export function probeWebGpuAdapters(): Promise<WebGpuProbe> {
  probed ??= probe();
  return probed;
}

async function probe(): Promise<WebGpuProbe> {
  let binding: string;
  try {
    binding = pathToFileURL(createRequire(import.meta.url).resolve('webgpu')).href;
  } catch (error) {
    return {
      adapters: [],
      problem: `Dawn's Node binding (the webgpu package) is not installed: ${messageOf(error)}`,
    };
  }
  let answers: (DawnAdapter | null)[];
  try {
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', PROBE_SCRIPT, binding], {
      timeout: PROBE_TIMEOUT_MS,
      maxBuffer: 1 << 20,
    });
    answers = JSON.parse(stdout) as (DawnAdapter | null)[];
  } catch (error) {
    return {
      adapters: [],
      problem: `the WebGPU probe (Dawn's Node binding, on ${process.platform}-${process.arch}) failed: ${probeFailure(error)}`,
    };
  }
  const adapters: WebGpuAdapter[] = [];
  answers.forEach((answer, index) => {
    if (answer === null) return;
    const found = describe(answer, index === 0);
    if (!adapters.some((a) => a.name === found.name && a.vendor === found.vendor)) adapters.push(found);
  });
  return adapters.length > 0
    ? { adapters }
    : { adapters: [], problem: 'no WebGPU adapter: the GPU driver offers no Vulkan, Metal or D3D12 device' };
}

/** The first line of the child's error output, or how it ended. */
function probeFailure(error: unknown): string {
  const { stderr, signal, killed } = error as { stderr?: string; signal?: string; killed?: boolean };
  if (killed) return `no answer within ${PROBE_TIMEOUT_MS / 1000} s`;
  const line = stderr
    ?.split('\n')
    .find((l) => /error/i.test(l))
    ?.trim();
  return line ?? (signal ? `the process ended with ${signal}` : messageOf(error));
}

function describe(adapter: DawnAdapter, usedByOnnxRuntime: boolean): WebGpuAdapter {
  const { info, limits } = adapter;
  return {
    name: (info.description || info.device || 'unnamed adapter').trim(),
    vendor: info.vendor,
    architecture: info.architecture,
    // Dawn marks CPU-type adapters as fallback adapters; Mesa's also report architecture "software".
    type: info.isFallbackAdapter === true || info.architecture === 'software' ? 'cpu' : 'gpu',
    fp16: adapter.features.includes('shader-f16'),
    maxBufferSize: limits.maxBufferSize,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    usedByOnnxRuntime,
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
