/**
 * The WebGPU adapters of this machine, as Dawn (the WebGPU implementation inside onnxruntime's
 * WebGPU provider) sees them. onnxruntime-node reports nothing about the adapter its WebGPU
 * provider took, so the adapters are asked for through Dawn's own Node binding (the `webgpu`
 * package) with the same request onnxruntime makes: `powerPreference: 'high-performance'`.
 */

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

/** The part of Dawn's `GPU` and `GPUAdapter` read here. */
interface DawnGpu {
  requestAdapter(options?: {
    powerPreference?: 'high-performance' | 'low-power';
    forceFallbackAdapter?: boolean;
  }): Promise<DawnAdapter | null>;
}
interface DawnAdapter {
  readonly info: {
    vendor: string;
    architecture: string;
    device: string;
    description: string;
    isFallbackAdapter?: boolean;
  };
  readonly features: ReadonlySet<string>;
  readonly limits: { maxBufferSize: number; maxStorageBufferBindingSize: number };
}

/** The requests that between them reach every kind of adapter Dawn ranks: discrete, integrated, software. */
const REQUESTS = [
  { powerPreference: 'high-performance' },
  { powerPreference: 'low-power' },
  { forceFallbackAdapter: true },
] as const;

let probed: Promise<WebGpuProbe> | undefined;

/** The adapters, asked for once per process (creating a Vulkan/Metal/D3D12 instance takes a while). */
export function probeWebGpuAdapters(): Promise<WebGpuProbe> {
  probed ??= probe();
  return probed;
}

async function probe(): Promise<WebGpuProbe> {
  let gpu: DawnGpu;
  try {
    const dawn = (await import('webgpu')) as unknown as { create(flags: string[]): DawnGpu };
    gpu = dawn.create([]);
  } catch (error) {
    return {
      adapters: [],
      problem: `Dawn's Node binding (the webgpu package) did not load on ${process.platform}-${process.arch}: ${messageOf(error)}`,
    };
  }
  const adapters: WebGpuAdapter[] = [];
  for (const request of REQUESTS) {
    const adapter = await gpu.requestAdapter(request).catch(() => null);
    if (adapter === null) continue;
    const found = describe(adapter, adapters.length === 0 && 'powerPreference' in request);
    if (!adapters.some((a) => a.name === found.name && a.vendor === found.vendor)) adapters.push(found);
  }
  return adapters.length > 0
    ? { adapters }
    : { adapters: [], problem: 'no WebGPU adapter: the GPU driver offers no Vulkan, Metal or D3D12 device' };
}

function describe(adapter: DawnAdapter, usedByOnnxRuntime: boolean): WebGpuAdapter {
  const { info, limits } = adapter;
  return {
    name: (info.description || info.device || 'unnamed adapter').trim(),
    vendor: info.vendor,
    architecture: info.architecture,
    // Dawn marks CPU-type adapters as fallback adapters; Mesa's also report architecture "software".
    type: info.isFallbackAdapter === true || info.architecture === 'software' ? 'cpu' : 'gpu',
    fp16: adapter.features.has('shader-f16'),
    maxBufferSize: limits.maxBufferSize,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    usedByOnnxRuntime,
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
