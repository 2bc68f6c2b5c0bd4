import { attr, type Tensor } from '../graph.ts';
import { int64s, normalizeAxes, normalizeAxis, requireFloat } from './common.ts';

function reduce(op: string, x: Tensor, axes: readonly number[] | undefined, keepDims: boolean): Tensor {
  const graph = x.graph;
  const all = axes ?? x.shape.map((_, i) => i);
  const normalized = normalizeAxes(graph, op, all, x.rank);
  const shape = keepDims
    ? x.shape.map((d, i) => (normalized.includes(i) ? 1 : d))
    : x.shape.filter((_, i) => !normalized.includes(i));
  return graph.addNode(op, [x, int64s(graph, normalized)], [{ dtype: x.dtype, shape }], {
    keepdims: attr.int(keepDims ? 1 : 0),
  })[0]!;
}

/** Sum over `axes` (all when omitted). */
export const reduceSum = (x: Tensor, axes?: readonly number[], keepDims = false): Tensor =>
  reduce('ReduceSum', x, axes, keepDims);
export const reduceMean = (x: Tensor, axes?: readonly number[], keepDims = false): Tensor =>
  reduce('ReduceMean', x, axes, keepDims);
export const reduceMax = (x: Tensor, axes?: readonly number[], keepDims = false): Tensor =>
  reduce('ReduceMax', x, axes, keepDims);

function softmaxLike(op: string, x: Tensor, axis: number): Tensor {
  requireFloat(x.graph, op, x);
  const a = normalizeAxis(x.graph, op, axis, x.rank);
  return x.graph.addNode(op, [x], [{ dtype: x.dtype, shape: x.shape }], { axis: attr.int(a) })[0]!;
}

/** Softmax along one axis (opset ≥ 13 semantics: only that axis is normalised). */
export const softmax = (x: Tensor, axis = -1): Tensor => softmaxLike('Softmax', x, axis);
export const logSoftmax = (x: Tensor, axis = -1): Tensor => softmaxLike('LogSoftmax', x, axis);
