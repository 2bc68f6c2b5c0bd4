/**
 * The one module that imports onnxruntime-node: execution-provider choice, session options,
 * tensors in and out, disposal. Everything else in the package speaks `HostTensor`.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { env, InferenceSession, listSupportedBackends, Tensor } from 'onnxruntime-node';
import type { ConcreteDevice } from './device.ts';
import { TrainerOrtError } from './errors.ts';
import type { DType } from './graph/dtype.ts';
import { Graph } from './graph/graph.ts';
import { serializeModel } from './graph/onnx.ts';
import { add } from './graph/ops/elementwise.ts';

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
  /** Default `cpu`; `chooseDevice` turns a config's `auto` into one of these. */
  device?: ConcreteDevice;
  /** Intra-op threads; default: onnxruntime's choice (one per physical core). */
  threads?: number;
  /** Graph optimisation level; default `all`. */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Write the optimised model here (to see what onnxruntime fused). */
  optimizedModelPath?: string;
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
    try {
      return new Session(
        await InferenceSession.create(modelPath, sessionOptions(device, options)),
        device,
        modelPath,
      );
    } catch (error) {
      if (device !== 'cpu') {
        throw new TrainerOrtError(
          'DEVICE_UNAVAILABLE',
          `device '${device}' failed to start for ${modelPath}: ${messageOf(error)}; \`lora doctor\` shows what this machine offers`,
          { cause: error },
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

function sessionOptions(device: ConcreteDevice, options: SessionOptions): InferenceSession.SessionOptions {
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

function sessionFailed(modelPath: string, error: unknown): TrainerOrtError {
  return new TrainerOrtError(
    'SESSION_FAILED',
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
