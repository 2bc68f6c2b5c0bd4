import { attr, type Tensor } from '../graph.ts';
import { int64s, normalizeAxes, normalizeAxis, requireFloat } from './common.ts';
import { sub } from './elementwise.ts';

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
/** log Σ exp over `axes` (all when omitted), computed stably by onnxruntime. */
export const reduceLogSumExp = (x: Tensor, axes?: readonly number[], keepDims = false): Tensor =>
  reduce('ReduceLogSumExp', x, axes, keepDims);

function softmaxLike(op: string, x: Tensor, axis: number): Tensor {
  requireFloat(x.graph, op, x);
  const a = normalizeAxis(x.graph, op, axis, x.rank);
  return x.graph.addNode(op, [x], [{ dtype: x.dtype, shape: x.shape }], { axis: attr.int(a) })[0]!;
}

/** Softmax along one axis (opset ≥ 13 semantics: only that axis is normalised). */
export const softmax = (x: Tensor, axis = -1): Tensor => softmaxLike('Softmax', x, axis);

/**
 * log softmax along one axis, as x − log Σ exp x: onnxruntime's WebGPU provider has no LogSoftmax
 * kernel (the node would run on the CPU, sending the logits to the host and back every step), but
 * it has ReduceLogSumExp, and so does every other provider.
 */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  requireFloat(x.graph, 'LogSoftmax', x);
  const a = normalizeAxis(x.graph, 'LogSoftmax', axis, x.rank);
  return sub(x, reduceLogSumExp(x, [a], true));
}
