/**
 * Tensor values on the host, as graphs take and give them: whatever runs a graph (onnxruntime
 * in the trainer, a test runner here) speaks this type.
 */
import type { DType } from './graph/dtype.ts';
import type { Graph } from './graph/graph.ts';

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

/** A graph loaded into a runtime, run as often as needed, then disposed. */
export interface LoadedGraph {
  /** Every output by name, or only `outputs`. */
  run(feeds: Record<string, HostTensor>, outputs?: readonly string[]): Promise<Record<string, HostTensor>>;
  dispose(): Promise<void>;
}

/** Loads a graph into a runtime (the engine imports none: its users bring theirs). */
export type GraphLoader = (graph: Graph) => Promise<LoadedGraph>;
