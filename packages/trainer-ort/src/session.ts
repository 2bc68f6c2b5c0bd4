/**
 * The one module that imports onnxruntime-node: execution-provider choice, session options,
 * tensors in and out, disposal. Everything else in the package speaks `HostTensor`.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { InferenceSession, listSupportedBackends, Tensor } from 'onnxruntime-node';
import { TrainerOrtError } from './errors.ts';
import type { DType } from './graph/dtype.ts';

/** `auto` takes CUDA when its provider is installed and works, else the CPU. */
export type Device = 'auto' | 'cpu' | 'cuda' | 'webgpu';

/** Element types that cross the JS boundary (bfloat16 has no JS tensor type: cast inside the graph). */
export type HostDType = Exclude<DType, 'bfloat16'>;

export interface HostArrayOf {
  float32: Float32Array;
  float64: Float64Array;
  /** IEEE half bits. */
  float16: Uint16Array;
  int64: BigInt64Array;
  int32: Int32Array;
  int8: Int8Array;
  uint8: Uint8Array;
  /** 0 or 1 per element. */
  bool: Uint8Array;
}

export type HostArray = HostArrayOf[HostDType];

export interface HostTensor<T extends HostDType = HostDType> {
  readonly dtype: T;
  readonly shape: readonly number[];
  readonly data: HostArrayOf[T];
}

export function hostTensor<T extends HostDType>(
  dtype: T,
  shape: readonly number[],
  data: HostArrayOf[T],
): HostTensor<T> {
  return { dtype, shape, data };
}

export interface SessionOptions {
  device?: Device;
  /** Intra-op threads; default: onnxruntime's choice (one per physical core). */
  threads?: number;
  /** Graph optimisation level; default `all`. */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Write the optimised model here (to see what onnxruntime fused). */
  optimizedModelPath?: string;
  /** Receives announcements such as "CUDA not installed, using the CPU". */
  onNotice?: (message: string) => void;
}

const CUDA_INSTALL_HINT =
  'install the CUDA provider with `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node` ' +
  '(it downloads the provider from NuGet; needs CUDA 12 and cuDNN 9), or use device: cpu';

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
    readonly device: Exclude<Device, 'auto'>,
    readonly modelPath: string,
  ) {}

  get inputNames(): readonly string[] {
    return this.inner.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.inner.outputNames;
  }

  /**
   * Loads `modelPath` (a file: external data resolves against its folder). With `device: 'auto'`
   * a failed CUDA start falls back to the CPU and says why through `onNotice`.
   */
  static async create(modelPath: string, options: SessionOptions = {}): Promise<Session> {
    const requested = options.device ?? 'auto';
    const notice = options.onNotice ?? (() => {});
    if (requested === 'cuda' && !isCudaInstalled()) {
      throw new TrainerOrtError(
        'DEVICE_UNAVAILABLE',
        `device 'cuda' was asked for, but its provider is not installed: ${CUDA_INSTALL_HINT}`,
      );
    }
    if (requested === 'auto' && !isCudaInstalled()) {
      notice(`CUDA provider not installed, training on the CPU; for a GPU, ${CUDA_INSTALL_HINT}`);
    }
    const device = requested === 'auto' ? (isCudaInstalled() ? 'cuda' : 'cpu') : requested;
    try {
      return new Session(
        await InferenceSession.create(modelPath, sessionOptions(device, options)),
        device,
        modelPath,
      );
    } catch (error) {
      if (requested === 'auto' && device === 'cuda') {
        notice(`CUDA provider failed to start (${messageOf(error)}), training on the CPU`);
        return new Session(await load(modelPath, sessionOptions('cpu', options)), 'cpu', modelPath);
      }
      if (device !== 'cpu') {
        throw new TrainerOrtError(
          'DEVICE_UNAVAILABLE',
          `device '${device}' failed to start for ${modelPath}: ${messageOf(error)}`,
          {
            cause: error,
          },
        );
      }
      throw sessionFailed(modelPath, error);
    }
  }

  /** Runs the model; `outputs` defaults to all of them. */
  async run(
    feeds: Readonly<Record<string, HostTensor>>,
    outputs?: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    if (this.disposed) throw new TrainerOrtError('RUN_FAILED', `session for ${this.modelPath} was disposed`);
    const ortFeeds: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      const size = t.shape.reduce((a, b) => a * b, 1);
      if (t.data.length !== size) {
        throw new TrainerOrtError(
          'RUN_FAILED',
          `feed '${name}': ${t.data.length} values for shape [${t.shape.join(', ')}]`,
        );
      }
      ortFeeds[name] = new Tensor(t.dtype, t.data, t.shape);
    }
    let results: InferenceSession.ReturnType;
    try {
      results = await (outputs ? this.inner.run(ortFeeds, [...outputs]) : this.inner.run(ortFeeds));
    } catch (error) {
      throw new TrainerOrtError('RUN_FAILED', `running ${this.modelPath} failed: ${messageOf(error)}`, {
        cause: error,
      });
    }
    const out: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(results)) {
      out[name] = { dtype: t.type as HostDType, shape: [...t.dims], data: t.data as HostArray };
    }
    return out;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.inner.release();
  }
}

function sessionOptions(
  device: Exclude<Device, 'auto'>,
  options: SessionOptions,
): InferenceSession.SessionOptions {
  return {
    executionProviders: [device],
    graphOptimizationLevel: options.optimization ?? 'all',
    ...(options.threads === undefined ? {} : { intraOpNumThreads: options.threads, interOpNumThreads: 1 }),
    ...(options.optimizedModelPath === undefined
      ? {}
      : { optimizedModelFilePath: options.optimizedModelPath }),
    logSeverityLevel: 3,
  };
}

async function load(modelPath: string, options: InferenceSession.SessionOptions): Promise<InferenceSession> {
  try {
    return await InferenceSession.create(modelPath, options);
  } catch (error) {
    throw sessionFailed(modelPath, error);
  }
}

function sessionFailed(modelPath: string, error: unknown): TrainerOrtError {
  return new TrainerOrtError(
    'SESSION_FAILED',
    `onnxruntime could not load ${modelPath}: ${messageOf(error)}`,
    {
      cause: error,
    },
  );
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
