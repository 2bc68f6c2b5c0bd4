/**
 * Where sessions run. `auto` takes CUDA when its provider is installed and starts, else a WebGPU
 * adapter that is a real GPU (a software adapter such as Mesa lavapipe is slower than the CPU
 * provider), else the CPU, and says in one line why it passed the faster ones over.
 */
import { TrainerOrtError } from './errors.ts';
import { isCudaInstalled, providerStartFailure } from './session.ts';
import { probeWebGpuAdapters, type WebGpuAdapter, type WebGpuProbe } from './webgpu-adapters.ts';

export type Device = 'auto' | 'cpu' | 'cuda' | 'webgpu';
export type ConcreteDevice = Exclude<Device, 'auto'>;

export interface DeviceChoice {
  device: ConcreteDevice;
  /** The adapter onnxruntime's WebGPU provider uses (`webgpu` only). */
  adapter?: WebGpuAdapter;
  /** `auto` only: why it did not take a faster device (absent when it took the first choice). */
  fallback?: string;
}

/** How to get onnxruntime-node's CUDA provider (the `GPU` section of the README says more). */
export const CUDA_INSTALL_HINT =
  'install the CUDA provider (needs CUDA 12 and cuDNN 9): with pnpm `pnpm approve-builds` (pick onnxruntime-node), ' +
  'then `ONNXRUNTIME_NODE_INSTALL=cuda12 pnpm rebuild onnxruntime-node`; with npm ' +
  '`ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node`';

const WEBGPU_HINT =
  'WebGPU needs a GPU driver with Vulkan (Linux, Windows), Metal (macOS) or D3D12 (Windows); `lora doctor` lists the adapters found';

/** What the decision reads from the machine; tests give their own. */
export interface DeviceProbes {
  platform: NodeJS.Platform;
  cudaInstalled(): boolean;
  /** `undefined` when the provider runs a test graph, else why not. */
  startFailure(device: 'cuda' | 'webgpu'): Promise<string | undefined>;
  adapters(): Promise<WebGpuProbe>;
}

const MACHINE: DeviceProbes = {
  platform: process.platform,
  cudaInstalled: isCudaInstalled,
  startFailure: providerStartFailure,
  adapters: probeWebGpuAdapters,
};

const chosen = new Map<Device, Promise<DeviceChoice>>();

/**
 * The device `requested` resolves to on this machine, decided once per process (every session
 * of a run lands on the same device). `cuda` and `webgpu` throw `DEVICE_UNAVAILABLE` with what to
 * do when they cannot start; `webgpu` accepts any adapter, software ones included.
 */
export function chooseDevice(requested: Device): Promise<DeviceChoice> {
  let choice = chosen.get(requested);
  if (choice === undefined) {
    choice = decideDevice(requested, MACHINE);
    chosen.set(requested, choice);
    // A failed decision is not cached: the user may fix the driver and call again.
    choice.catch(() => chosen.delete(requested));
  }
  return choice;
}

/** One line for logs: `webgpu (NVIDIA H100 80GB HBM3)`, `cpu (auto: …)`. */
export function describeDevice(choice: DeviceChoice): string {
  const where = choice.adapter === undefined ? choice.device : `${choice.device} (${choice.adapter.name})`;
  return choice.fallback === undefined
    ? where
    : `${where}; auto passed over faster devices: ${choice.fallback}`;
}

/** The decision itself, uncached (`chooseDevice` caches it per process). */
export async function decideDevice(requested: Device, probes: DeviceProbes): Promise<DeviceChoice> {
  switch (requested) {
    case 'cpu':
      return { device: 'cpu' };
    case 'cuda':
      return { device: await startCuda(probes) };
    case 'webgpu':
      return { device: 'webgpu', adapter: await startWebGpu(probes) };
    case 'auto':
      return decideAuto(probes);
  }
}

async function startCuda(probes: DeviceProbes): Promise<'cuda'> {
  if (!probes.cudaInstalled()) {
    throw new TrainerOrtError(
      'E_DEVICE_UNAVAILABLE',
      `device 'cuda' was asked for, but onnxruntime-node's CUDA provider is not installed: ${CUDA_INSTALL_HINT}; or use device: webgpu or auto`,
    );
  }
  const failure = await probes.startFailure('cuda');
  if (failure !== undefined) {
    throw new TrainerOrtError(
      'E_DEVICE_UNAVAILABLE',
      `device 'cuda': the CUDA provider is installed but did not start (${failure}); check the NVIDIA driver, CUDA 12 and cuDNN 9 libraries (\`nvidia-smi\`, LD_LIBRARY_PATH), or use device: webgpu or auto`,
    );
  }
  return 'cuda';
}

async function startWebGpu(probes: DeviceProbes): Promise<WebGpuAdapter> {
  const { adapters, problem } = await probes.adapters();
  const adapter = adapters.find((a) => a.usedByOnnxRuntime) ?? adapters[0];
  if (adapter === undefined) {
    throw new TrainerOrtError('E_DEVICE_UNAVAILABLE', `device 'webgpu': ${problem}. ${WEBGPU_HINT}`);
  }
  const failure = await probes.startFailure('webgpu');
  if (failure !== undefined) {
    throw new TrainerOrtError(
      'E_DEVICE_UNAVAILABLE',
      `device 'webgpu': onnxruntime's WebGPU provider did not start on ${adapter.name} (${failure}). ${WEBGPU_HINT}`,
    );
  }
  return adapter;
}

async function decideAuto(probes: DeviceProbes): Promise<DeviceChoice> {
  const passed: string[] = [];
  if (probes.cudaInstalled()) {
    const failure = await probes.startFailure('cuda');
    if (failure === undefined) return { device: 'cuda' };
    passed.push(`the CUDA provider is installed but did not start (${failure})`);
  } else if (probes.platform !== 'darwin') {
    passed.push(
      'the CUDA provider is not installed (for an NVIDIA GPU, `lora doctor` shows how to install it)',
    );
  }
  const { adapters, problem } = await probes.adapters();
  const adapter = adapters.find((a) => a.usedByOnnxRuntime);
  if (adapter === undefined) {
    passed.push(`WebGPU found no adapter (${problem ?? 'none answered the high-performance request'})`);
  } else if (adapter.type === 'cpu') {
    passed.push(
      `the only WebGPU adapter, ${adapter.name}, is a software (CPU) one, slower than the CPU provider (device: webgpu uses it anyway)`,
    );
  } else {
    const failure = await probes.startFailure('webgpu');
    if (failure === undefined) {
      return { device: 'webgpu', adapter, ...(passed.length > 0 ? { fallback: passed.join('; ') } : {}) };
    }
    passed.push(`onnxruntime's WebGPU provider did not start on ${adapter.name} (${failure})`);
  }
  return { device: 'cpu', fallback: passed.join('; ') };
}
