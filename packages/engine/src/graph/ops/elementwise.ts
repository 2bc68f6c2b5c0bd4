import { type DType, ONNX_DTYPE } from '../dtype.ts';
import { attr, type Tensor } from '../graph.ts';
import { broadcastShapes } from '../shape.ts';
import { asTensor, describe, graphOf, type Operand, requireFloat, requireSameDtype } from './common.ts';

function binary(op: string, a: Operand, b: Operand, outDtype?: DType): Tensor {
  const graph = graphOf(op, a, b);
  const dtype = typeof a === 'number' ? (b as Tensor).dtype : a.dtype;
  const x = asTensor(graph, a, dtype);
  const y = asTensor(graph, b, dtype);
  requireSameDtype(graph, op, [x, y]);
  const shape = broadcastShapes(x.shape, y.shape);
  if (typeof shape === 'string')
    throw graph.error('E_SHAPE_MISMATCH', op, `cannot broadcast ${describe(x, y)}: ${shape}`);
  return graph.addNode(op, [x, y], [{ dtype: outDtype ?? dtype, shape }])[0]!;
}

function unary(op: string, x: Tensor, float = true): Tensor {
  if (float) requireFloat(x.graph, op, x);
  return x.graph.addNode(op, [x], [{ dtype: x.dtype, shape: x.shape }])[0]!;
}

export const add = (a: Operand, b: Operand): Tensor => binary('Add', a, b);
export const sub = (a: Operand, b: Operand): Tensor => binary('Sub', a, b);
export const mul = (a: Operand, b: Operand): Tensor => binary('Mul', a, b);
export const div = (a: Operand, b: Operand): Tensor => binary('Div', a, b);
/** `a ** b`, both of one floating type. */
export const pow = (a: Operand, b: Operand): Tensor => binary('Pow', a, b);
export const equal = (a: Operand, b: Operand): Tensor => binary('Equal', a, b, 'bool');
export const less = (a: Operand, b: Operand): Tensor => binary('Less', a, b, 'bool');
export const greater = (a: Operand, b: Operand): Tensor => binary('Greater', a, b, 'bool');
export const and = (a: Tensor, b: Tensor): Tensor => binary('And', a, b);

export const neg = (x: Tensor): Tensor => unary('Neg', x, false);
export const sqrt = (x: Tensor): Tensor => unary('Sqrt', x);
export const reciprocal = (x: Tensor): Tensor => unary('Reciprocal', x);
export const exp = (x: Tensor): Tensor => unary('Exp', x);
export const log = (x: Tensor): Tensor => unary('Log', x);
export const tanh = (x: Tensor): Tensor => unary('Tanh', x);
export const sigmoid = (x: Tensor): Tensor => unary('Sigmoid', x);
export const erf = (x: Tensor): Tensor => unary('Erf', x);
export const not = (x: Tensor): Tensor => {
  if (x.dtype !== 'bool') throw x.graph.error('E_DTYPE_MISMATCH', 'Not', `needs a bool tensor, got ${x}`);
  return unary('Not', x, false);
};
export const identity = (x: Tensor): Tensor => unary('Identity', x, false);

/** `condition ? a : b` elementwise with broadcasting; `condition` is bool. */
export function where(condition: Tensor, a: Operand, b: Operand): Tensor {
  const graph = condition.graph;
  if (condition.dtype !== 'bool')
    throw graph.error('E_DTYPE_MISMATCH', 'Where', `condition must be bool, got ${condition}`);
  const dtype = typeof a === 'number' ? (typeof b === 'number' ? undefined : b.dtype) : a.dtype;
  if (dtype === undefined) throw graph.error('E_INVALID_ARGUMENT', 'Where', 'one branch must be a tensor');
  const x = asTensor(graph, a, dtype);
  const y = asTensor(graph, b, dtype);
  requireSameDtype(graph, 'Where', [x, y]);
  const xy = broadcastShapes(x.shape, y.shape);
  const shape = typeof xy === 'string' ? xy : broadcastShapes(condition.shape, xy);
  if (typeof shape === 'string') {
    throw graph.error('E_SHAPE_MISMATCH', 'Where', `cannot broadcast ${describe(condition, x, y)}: ${shape}`);
  }
  return graph.addNode('Where', [condition, x, y], [{ dtype, shape }])[0]!;
}

export function cast(x: Tensor, to: DType): Tensor {
  if (x.dtype === to) return x;
  return x.graph.addNode('Cast', [x], [{ dtype: to, shape: x.shape }], {
    to: attr.int(ONNX_DTYPE[to]),
  })[0]!;
}

/** 1/√x. */
export const rsqrt = (x: Tensor): Tensor => reciprocal(sqrt(x));
