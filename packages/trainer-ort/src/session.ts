/**
 * The one module that imports onnxruntime-node: execution-provider choice, session options,
 * tensors in and out, disposal. Everything else in the package speaks `HostTensor`.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  add,
  Graph,
  type HostArray,
  type HostDType,
  type HostTensor,
  readDataRoot,
  serializeModel,
} from '@lora/engine';
import { env, InferenceSession, listSupportedBackends, Tensor } from 'onnxruntime-node';
import type { ConcreteDevice } from './device.ts';
import { TrainerOrtError } from './errors.ts';

/**
 * A tensor that stays in GPU memory between sessions (WebGPU only: onnxruntime-node 1.30 binds
 * outputs to the device for its WebGPU provider and for no other). It can be fed to any session
 * on the same device; its values reach the host only through a session whose output is on the
 * host (the binding's own download is not implemented and aborts the process). `dispose` frees
 * the GPU memory at once instead of at garbage collection.
 */
export interface DeviceTensor {
  readonly location: 'device';
  readonly dtype: HostDType;
  readonly shape: readonly number[];
  dispose(): void;
}

/**
 * Bytes of host tensors fed to and fetched from sessions, per device, since the process started.
 * On a GPU device that is the host↔device traffic; device tensors are not counted (they stay).
 */
const exchanged: Record<ConcreteDevice, { fed: number; fetched: number }> = {
  cpu: { fed: 0, fetched: 0 },
  cuda: { fed: 0, fetched: 0 },
  webgpu: { fed: 0, fetched: 0 },
};

/** A copy of the byte counts of `device`'s sessions (see `exchanged`). */
export function hostBytesExchanged(device: ConcreteDevice): { fed: number; fetched: number } {
  return { ...exchanged[device] };
}

/** The onnxruntime tensor behind each `DeviceTensor`, kept out of the public type. */
const deviceTensors = new WeakMap<DeviceTensor, Tensor>();

export interface SessionOptions {
  /** Default `cpu`; `chooseDevice` turns a config's `auto` into one of these. */
  device?: ConcreteDevice;
  /** Intra-op threads; default: onnxruntime's choice (one per physical core). */
  threads?: number;
  /** Graph optimisation level; default `all`. */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Write the optimised model here (to see what onnxruntime fused). */
  optimizedModelPath?: string;
  /** Outputs that stay on the device as `DeviceTensor`s (`device: 'webgpu'` only); see `runKeeping`. */
  deviceOutputs?: readonly string[];
}

/** onnxruntime-node's version and the providers its package holds (`bundled`) or can load. */
export function onnxRuntimeInfo(): { version: string; providers: { name: string; bundled: boolean }[] } {
  return {
    version: env.versions.node ?? 'unknown',
    providers: listSupportedBackends().map(({ name, bundled }) => ({ name, bundled })),
  };
}

/** True when the CUDA provider library was installed next to the onnxruntime-node binding. */
export function isCudaInstalled(): boolean {
  if (!listSupportedBackends().some((b) => b.name === 'cuda')) return false;
  const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
  const folder = join(dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
  const file =
    process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  return existsSync(join(folder, file));
}

/** A loaded model. `run` feeds host tensors and returns the requested outputs as host tensors. */
export class Session {
  private disposed = false;

  private constructor(
    private readonly inner: InferenceSession,
    readonly device: ConcreteDevice,
    readonly modelPath: string,
    private readonly kept: ReadonlySet<string>,
  ) {}

  get inputNames(): readonly string[] {
    return this.inner.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.inner.outputNames;
  }

  /** Loads `modelPath` (a file: external data resolves against its folder) on `options.device`. */
  static async create(modelPath: string, options: SessionOptions = {}): Promise<Session> {
    const device = options.device ?? 'cpu';
    const kept = options.deviceOutputs ?? [];
    if (kept.length > 0 && device !== 'webgpu') {
      throw new TrainerOrtError(
        'E_INVALID_ARGUMENT',
        `deviceOutputs needs device 'webgpu' (onnxruntime-node keeps outputs on no other device), got '${device}'`,
      );
    }
    try {
      const settings = sessionOptions(device, options);
      const dataRoot = await readDataRoot(modelPath);
      const inner =
        dataRoot === undefined
          ? await InferenceSession.create(modelPath, settings)
          : await InferenceSession.create(dataRoot.bytes, {
              ...settings,
              extra: { session: { model_external_initializers_file_folder_path: dataRoot.folder } },
            });
      return new Session(inner, device, modelPath, new Set(kept));
    } catch (error) {
      if (device !== 'cpu') {
        throw new TrainerOrtError(
          'E_DEVICE_UNAVAILABLE',
          `device '${device}' failed to start for ${modelPath}: ${messageOf(error)}; \`lora doctor\` shows what this machine offers`,
          { cause: error },
        );
      }
      throw sessionFailed(modelPath, error);
    }
  }

  /** Runs the model; `outputs` defaults to all of them. */
  async run(
    feeds: Readonly<Record<string, HostTensor | DeviceTensor>>,
    outputs?: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    if (this.kept.size > 0) {
      throw new TrainerOrtError(
        'E_RUN_FAILED',
        `${this.modelPath} keeps outputs on the device: use runKeeping`,
      );
    }
    return (await this.runKeeping(feeds, outputs)).host;
  }

  /**
   * Runs the model; the outputs named in `deviceOutputs` come back as `DeviceTensor`s (the
   * caller disposes them), the rest as host tensors.
   */
  async runKeeping(
    feeds: Readonly<Record<string, HostTensor | DeviceTensor>>,
    outputs?: readonly string[],
  ): Promise<{ host: Record<string, HostTensor>; device: Record<string, DeviceTensor> }> {
    if (this.disposed)
      throw new TrainerOrtError('E_RUN_FAILED', `session for ${this.modelPath} was disposed`);
    const ortFeeds: Record<string, Tensor> = {};
    const traffic = exchanged[this.device];
    for (const [name, t] of Object.entries(feeds)) {
      ortFeeds[name] = toOrt(name, t);
      if (!('location' in t)) traffic.fed += t.data.byteLength;
    }
    let results: InferenceSession.ReturnType;
    try {
      results = await (outputs ? this.inner.run(ortFeeds, [...outputs]) : this.inner.run(ortFeeds));
    } catch (error) {
      throw new TrainerOrtError('E_RUN_FAILED', `running ${this.modelPath} failed: ${messageOf(error)}`, {
        cause: error,
      });
    }
    const host: Record<string, HostTensor> = {};
    const device: Record<string, DeviceTensor> = {};
    for (const [name, t] of Object.entries(results)) {
      if (t.location === 'gpu-buffer') {
        const kept: DeviceTensor = {
          location: 'device',
          dtype: t.type as HostDType,
          shape: [...t.dims],
          dispose: () => t.dispose(),
        };
        deviceTensors.set(kept, t);
        device[name] = kept;
      } else {
        host[name] = { dtype: t.type as HostDType, shape: [...t.dims], data: t.data as HostArray };
        traffic.fetched += host[name].data.byteLength;
      }
    }
    return { host, device };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.inner.release();
  }
}

function toOrt(name: string, t: HostTensor | DeviceTensor): Tensor {
  if ('location' in t) {
    const tensor = deviceTensors.get(t);
    if (tensor === undefined) {
      throw new TrainerOrtError('E_RUN_FAILED', `feed '${name}': not a DeviceTensor of this package`);
    }
    return tensor;
  }
  const size = t.shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== size) {
    throw new TrainerOrtError(
      'E_RUN_FAILED',
      `feed '${name}': ${t.data.length} values for shape [${t.shape.join(', ')}]`,
    );
  }
  return new Tensor(t.dtype, t.data, t.shape);
}

function sessionOptions(device: ConcreteDevice, options: SessionOptions): InferenceSession.SessionOptions {
  const kept = options.deviceOutputs ?? [];
  return {
    executionProviders: [device],
    ...(kept.length === 0
      ? {}
      : { preferredOutputLocation: Object.fromEntries(kept.map((name) => [name, 'gpu-buffer' as const])) }),
    graphOptimizationLevel: options.optimization ?? 'all',
    ...(options.threads === undefined ? {} : { intraOpNumThreads: options.threads, interOpNumThreads: 1 }),
    ...(options.optimizedModelPath === undefined
      ? {}
      : { optimizedModelFilePath: options.optimizedModelPath }),
    logSeverityLevel: 3,
    // The memory pattern plans one block for all of a run's intermediates from the first run; on
    // the CPU it held 1.1–3 GiB more at the same speed (bench/sd-memory.ts sd15: 4.52 → 3.37 GiB;
    // bench/checkpointing-memory.ts, Llama-3.2-1B recomputed: 5.19 → 3.93 GiB). GPUs not measured.
    ...(device === 'cpu' ? { enableMemPattern: false } : {}),
  };
}

function sessionFailed(modelPath: string, error: unknown): TrainerOrtError {
  return new TrainerOrtError(
    'E_SESSION_FAILED',
    `onnxruntime could not load ${modelPath}: ${messageOf(error)}`,
    {
      cause: error,
    },
  );
}

/**
 * Whether `device`'s provider starts and runs a one-node graph here: `undefined` when it does,
 * else onnxruntime's reason (a missing CUDA library, no WebGPU adapter).
 */
export async function providerStartFailure(device: ConcreteDevice): Promise<string | undefined> {
  const graph = new Graph('device_probe');
  const x = graph.input('x', 'float32', [4]);
  graph.output(add(x, x), 'y');
  try {
    const session = await InferenceSession.create(serializeModel(graph), sessionOptions(device, {}));
    try {
      const { y } = await session.run({ x: new Tensor('float32', Float32Array.of(1, 2, 3, 4), [4]) });
      const values = [...(y!.data as Float32Array)];
      if (values.join() !== '2,4,6,8')
        return `a test graph computed [${values.join(', ')}] instead of [2, 4, 6, 8]`;
    } finally {
      await session.release();
    }
    return undefined;
  } catch (error) {
    return messageOf(error);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
