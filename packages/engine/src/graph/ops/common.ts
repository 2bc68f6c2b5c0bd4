import { type DType, isFloat } from '../dtype.ts';
import type { Graph, Tensor } from '../graph.ts';
import { type Dim, formatShape } from '../shape.ts';

/** A number operand becomes a scalar constant of the tensor operand's type. */
export type Operand = Tensor | number;

export function graphOf(op: string, ...operands: readonly Operand[]): Graph {
  for (const o of operands) if (typeof o !== 'number') return o.graph;
  throw new TypeError(`${op}: at least one operand must be a tensor`);
}

export function asTensor(graph: Graph, value: Operand, dtype: DType): Tensor {
  return typeof value === 'number' ? graph.scalar(value, dtype) : value;
}

/** `axis` in [-rank, rank) mapped to [0, rank). */
export function normalizeAxis(graph: Graph, op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw graph.error('E_INVALID_ARGUMENT', op, `axis ${axis} is out of range for rank ${rank}`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Sorted, distinct, non-negative axes. */
export function normalizeAxes(graph: Graph, op: string, axes: readonly number[], rank: number): number[] {
  const out = [...new Set(axes.map((a) => normalizeAxis(graph, op, a, rank)))].sort((a, b) => a - b);
  if (out.length !== axes.length)
    throw graph.error('E_INVALID_ARGUMENT', op, `repeated axis in [${axes.join(', ')}]`);
  return out;
}

export function int64s(graph: Graph, values: readonly number[]): Tensor {
  return graph.constant(values, 'int64', [values.length]);
}

/** The values of a small constant tensor (Reshape targets, Slice bounds, Resize scales), for builders and VJP rules. */
export function constantValues(tensor: Tensor, op: string): number[] {
  const data = tensor.graph.constants.get(tensor);
  const readers: Partial<Record<DType, [number, (view: DataView, at: number) => number]>> = {
    int64: [8, (view, at) => Number(view.getBigInt64(at, true))],
    int32: [4, (view, at) => view.getInt32(at, true)],
    float32: [4, (view, at) => view.getFloat32(at, true)],
    float64: [8, (view, at) => view.getFloat64(at, true)],
  };
  const reader = data && readers[data.dtype];
  if (!data || !reader) {
    throw tensor.graph.error(
      'E_INVALID_ARGUMENT',
      op,
      `'${tensor.name}' must be a constant (int64, int32, float32, float64)`,
    );
  }
  const [step, read] = reader;
  const view = new DataView(data.bytes.buffer, data.bytes.byteOffset, data.bytes.byteLength);
  const out: number[] = [];
  for (let at = 0; at < data.bytes.byteLength; at += step) out.push(read(view, at));
  return out;
}

export function requireSameDtype(graph: Graph, op: string, tensors: readonly Tensor[]): DType {
  const dtype = tensors[0]!.dtype;
  if (tensors.some((t) => t.dtype !== dtype)) {
    throw graph.error(
      'E_DTYPE_MISMATCH',
      op,
      `operands must share one element type, got ${tensors.map((t) => t.dtype).join(', ')}; cast first`,
    );
  }
  return dtype;
}

export function requireFloat(graph: Graph, op: string, tensor: Tensor): void {
  if (!isFloat(tensor.dtype)) {
    throw graph.error('E_DTYPE_MISMATCH', op, `needs a floating-point tensor, got ${tensor}`);
  }
}

export function requireRank(graph: Graph, op: string, tensor: Tensor, rank: number | [number, number]): void {
  const [lo, hi] = typeof rank === 'number' ? [rank, rank] : rank;
  if (tensor.rank < lo || tensor.rank > hi) {
    const want = lo === hi ? `rank ${lo}` : `rank ${lo}–${hi}`;
    throw graph.error(
      'E_SHAPE_MISMATCH',
      op,
      `needs ${want}, got ${tensor.name} ${formatShape(tensor.shape)}`,
    );
  }
}

/** True when the two dims are the same number or the same name. */
export function dimsEqual(a: Dim | undefined, b: Dim | undefined): boolean {
  return a !== undefined && a === b;
}

export function describe(...tensors: readonly Tensor[]): string {
  return tensors.map((t) => `${t.name} ${formatShape(t.shape)}`).join(', ');
}
