import type { DType } from '../dtype.ts';
import { attr, type Tensor } from '../graph.ts';
import { broadcastShapes, type Dim, divideDims, formatShape, isStaticShape, type Shape } from '../shape.ts';
import { describe, dimsEqual, int64s, normalizeAxes, normalizeAxis, requireSameDtype } from './common.ts';

/** Slice ends at or past this mean "to the end of the axis" (ONNX clamps them). */
export const SLICE_END = Number.MAX_SAFE_INTEGER;

/**
 * Reshape with ONNX semantics: `0` copies the input dim at that index, `-1` (at most one) is
 * inferred. Works on named dims (`[batch, seq, 768] → [0, 0, 12, 64]`).
 */
export function reshape(x: Tensor, target: readonly number[]): Tensor {
  const graph = x.graph;
  const fail = (why: string) =>
    graph.error('E_SHAPE_MISMATCH', 'Reshape', `${describe(x)} → [${target.join(', ')}]: ${why}`);
  const dims: (Dim | undefined)[] = target.map((t, i) => {
    if (t === 0) {
      const d = x.shape[i];
      if (d === undefined) throw fail(`0 at index ${i} has no input dim to copy`);
      return d;
    }
    if (t === -1) return undefined;
    if (!Number.isInteger(t) || t < 0) throw fail(`${t} is not a dim`);
    return t;
  });
  const unknown = dims.filter((d) => d === undefined).length;
  if (unknown > 1) throw fail('more than one -1');
  const known = dims.filter((d): d is Dim => d !== undefined);
  const rest = divideDims(x.shape, known);
  if (rest === undefined) throw fail('the element counts do not match');
  if (unknown === 0 && rest !== 1) throw fail('the element counts do not match');
  const shape = dims.map((d) => d ?? rest);
  return graph.addNode('Reshape', [x, int64s(graph, target)], [{ dtype: x.dtype, shape }])[0]!;
}

/** The runtime shape of `x` (dims `start` to `end`), or a constant when they are all static. */
export function shapeOf(x: Tensor, start = 0, end = x.rank): Tensor {
  const dims = x.shape.slice(start, end);
  if (isStaticShape(dims)) return int64s(x.graph, dims);
  const attributes = { start: attr.int(start), end: attr.int(end) };
  return x.graph.addNode('Shape', [x], [{ dtype: 'int64', shape: [dims.length] }], attributes)[0]!;
}

/** Reshape `x` to the shape of `like` (same element count). */
export function reshapeAs(x: Tensor, like: Tensor): Tensor {
  if (isStaticShape(x.shape) && isStaticShape(like.shape) && divideDims(x.shape, like.shape) !== 1) {
    throw x.graph.error('E_SHAPE_MISMATCH', 'Reshape', `element counts differ: ${describe(x, like)}`);
  }
  return reshapeWith(x, shapeOf(like), like.shape);
}

/** Reshape to a runtime shape (an int64 tensor) whose build-time dims are `dims`. */
export function reshapeWith(x: Tensor, shape: Tensor, dims: Shape): Tensor {
  return x.graph.addNode('Reshape', [x, shape], [{ dtype: x.dtype, shape: dims }])[0]!;
}

export function transpose(
  x: Tensor,
  perm: readonly number[] = x.shape.map((_, i) => x.rank - 1 - i),
): Tensor {
  const sorted = [...perm].sort((a, b) => a - b);
  if (perm.length !== x.rank || sorted.some((p, i) => p !== i)) {
    throw x.graph.error(
      'E_INVALID_ARGUMENT',
      'Transpose',
      `perm [${perm.join(', ')}] is not a permutation for ${describe(x)}`,
    );
  }
  const shape = perm.map((p) => x.shape[p]!);
  return x.graph.addNode('Transpose', [x], [{ dtype: x.dtype, shape }], { perm: attr.ints(perm) })[0]!;
}

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  const first = xs[0];
  if (!first) throw new TypeError('Concat: needs at least one tensor');
  const graph = first.graph;
  requireSameDtype(graph, 'Concat', xs);
  const a = normalizeAxis(graph, 'Concat', axis, first.rank);
  for (const x of xs) {
    if (x.rank !== first.rank || x.shape.some((d, i) => i !== a && !dimsEqual(d, first.shape[i]))) {
      throw graph.error('E_SHAPE_MISMATCH', 'Concat', `dims other than axis ${a} differ: ${describe(...xs)}`);
    }
  }
  const parts = xs.map((x) => x.shape[a]!);
  const dim = parts.every((d) => typeof d === 'number')
    ? parts.reduce<number>((s, d) => s + (d as number), 0)
    : parts.join('+');
  const shape = first.shape.map((d, i) => (i === a ? dim : d));
  return graph.addNode('Concat', xs, [{ dtype: first.dtype, shape }], { axis: attr.int(a) })[0]!;
}

/** Split along `axis` into pieces of the given static sizes. */
export function split(x: Tensor, sizes: readonly number[], axis: number): Tensor[] {
  const a = normalizeAxis(x.graph, 'Split', axis, x.rank);
  const total = sizes.reduce((s, d) => s + d, 0);
  const dim = x.shape[a]!;
  if (sizes.some((s) => !Number.isInteger(s) || s < 0) || (typeof dim === 'number' && total !== dim)) {
    throw x.graph.error(
      'E_SHAPE_MISMATCH',
      'Split',
      `sizes [${sizes.join(', ')}] do not add up to dim ${a} of ${describe(x)}`,
    );
  }
  return splitBy(x, int64s(x.graph, sizes), sizes, a);
}

/** Split with runtime sizes (`sizes` is an int64 tensor); `dims` are their build-time values. */
export function splitBy(x: Tensor, sizes: Tensor, dims: readonly Dim[], axis: number): Tensor[] {
  const outputs = dims.map((d) => ({ dtype: x.dtype, shape: x.shape.map((s, i) => (i === axis ? d : s)) }));
  return x.graph.addNode('Split', [x, sizes], outputs, { axis: attr.int(axis) });
}

export interface SliceSpec {
  starts: readonly number[];
  /** Use `SLICE_END` for "to the end". */
  ends: readonly number[];
  axes?: readonly number[];
  steps?: readonly number[];
}

/** Static slice bounds for one axis, clamped as ONNX clamps them; undefined for a named dim. */
export function sliceBounds(
  dim: Dim,
  start: number,
  end: number,
  step: number,
): { start: number; end: number; size: number } | undefined {
  if (typeof dim !== 'number') return undefined;
  const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v < 0 ? v + dim : v, lo), hi);
  const s = step > 0 ? clamp(start, 0, dim) : clamp(start, -1, dim - 1);
  const e = step > 0 ? clamp(end, 0, dim) : clamp(end, -1, dim - 1);
  return { start: s, end: e, size: Math.max(0, Math.ceil((e - s) / step)) };
}

/** A size expression for a slice of a named dim: `seq-1` for `[1:]` and `[:-1]`, so shifted slices match. */
function namedSliceDim(dim: string, start: number, end: number): Dim | undefined {
  if (start < 0) return undefined;
  if (end >= SLICE_END) return start === 0 ? dim : `${dim}-${start}`;
  if (end < 0) return `${dim}-${start - end}`;
  return undefined;
}

export function slice(x: Tensor, spec: SliceSpec): Tensor {
  const graph = x.graph;
  const axes = normalizeAxes(graph, 'Slice', spec.axes ?? spec.starts.map((_, i) => i), x.rank);
  const steps = spec.steps ?? axes.map(() => 1);
  if (
    spec.starts.length !== axes.length ||
    spec.ends.length !== axes.length ||
    steps.length !== axes.length
  ) {
    throw graph.error(
      'E_INVALID_ARGUMENT',
      'Slice',
      'starts, ends, axes and steps must have one entry per sliced axis',
    );
  }
  const shape = [...x.shape];
  axes.forEach((axis, i) => {
    const [start, end, step] = [spec.starts[i]!, spec.ends[i]!, steps[i]!];
    if (step === 0) throw graph.error('E_INVALID_ARGUMENT', 'Slice', 'step 0');
    const dim = x.shape[axis]!;
    const size =
      sliceBounds(dim, start, end, step)?.size ??
      (step === 1 ? namedSliceDim(dim as string, start, end) : undefined);
    if (size === undefined) {
      throw graph.error(
        'E_SHAPE_MISMATCH',
        'Slice',
        `axis ${axis} of ${describe(x)} is named; slice it with step 1, start ≥ 0 and a negative end or SLICE_END`,
      );
    }
    shape[axis] = size;
  });
  const inputs = [
    x,
    int64s(graph, spec.starts),
    int64s(graph, spec.ends),
    int64s(graph, axes),
    int64s(graph, steps),
  ];
  return graph.addNode('Slice', inputs, [{ dtype: x.dtype, shape }])[0]!;
}

/** `x` indexed by integer `indices` along `axis` (embedding lookup when axis = 0). */
export function gather(x: Tensor, indices: Tensor, axis = 0): Tensor {
  const graph = x.graph;
  if (indices.dtype !== 'int64' && indices.dtype !== 'int32') {
    throw graph.error('E_DTYPE_MISMATCH', 'Gather', `indices must be int64 or int32, got ${indices}`);
  }
  const a = normalizeAxis(graph, 'Gather', axis, x.rank);
  const shape = [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)];
  return graph.addNode('Gather', [x, indices], [{ dtype: x.dtype, shape }], { axis: attr.int(a) })[0]!;
}

/** Inserts size-1 dims at `axes` (positions in the result). */
export function unsqueeze(x: Tensor, axes: readonly number[]): Tensor {
  const rank = x.rank + axes.length;
  const normalized = normalizeAxes(x.graph, 'Unsqueeze', axes, rank);
  const rest = [...x.shape];
  const shape = Array.from({ length: rank }, (_, i) => (normalized.includes(i) ? 1 : rest.shift()!));
  return x.graph.addNode('Unsqueeze', [x, int64s(x.graph, normalized)], [{ dtype: x.dtype, shape }])[0]!;
}

/** Removes the size-1 dims at `axes`. */
export function squeeze(x: Tensor, axes: readonly number[]): Tensor {
  const normalized = normalizeAxes(x.graph, 'Squeeze', axes, x.rank);
  for (const a of normalized) {
    if (x.shape[a] !== 1)
      throw x.graph.error('E_SHAPE_MISMATCH', 'Squeeze', `dim ${a} of ${describe(x)} is not 1`);
  }
  const shape = x.shape.filter((_, i) => !normalized.includes(i));
  return x.graph.addNode('Squeeze', [x, int64s(x.graph, normalized)], [{ dtype: x.dtype, shape }])[0]!;
}

/** Broadcasts `x` against `shape` (numpy rules, like ONNX Expand). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  return expandWith(x, int64s(x.graph, shape), shape);
}

/** Broadcasts `x` to the shape of `like`. */
export function expandAs(x: Tensor, like: Tensor): Tensor {
  return expandWith(x, shapeOf(like), like.shape);
}

function expandWith(x: Tensor, shapeTensor: Tensor, target: Shape): Tensor {
  const shape = broadcastShapes(x.shape, target);
  if (typeof shape === 'string') {
    throw x.graph.error(
      'E_SHAPE_MISMATCH',
      'Expand',
      `cannot broadcast ${describe(x)} to ${formatShape(target)}: ${shape}`,
    );
  }
  return x.graph.addNode('Expand', [x, shapeTensor], [{ dtype: x.dtype, shape }])[0]!;
}

/** A tensor of `shape` (an int64 shape tensor) filled with `value`; `dims` are its build-time dims. */
export function constantOfShape(shape: Tensor, dims: Shape, value: number, dtype: DType): Tensor {
  const graph = shape.graph;
  const fill = graph.constant([value], dtype, [1]);
  const data = graph.constants.get(fill)!;
  return graph.addNode('ConstantOfShape', [shape], [{ dtype, shape: dims }], {
    value: attr.tensor(data),
  })[0]!;
}

/** Zeros with the type and (runtime) shape of `like`. */
export function zerosLike(like: Tensor): Tensor {
  return constantOfShape(shapeOf(like), like.shape, 0, like.dtype);
}

/** Zero padding; `pads` is `[begin_0 … begin_n, end_0 … end_n]`, an int64 tensor or static numbers. */
export function pad(x: Tensor, pads: readonly number[] | Tensor, shape?: Shape): Tensor {
  const graph = x.graph;
  let out: Shape;
  let padsTensor: Tensor;
  if (Array.isArray(pads)) {
    const p = pads as readonly number[];
    if (p.length !== 2 * x.rank)
      throw graph.error('E_INVALID_ARGUMENT', 'Pad', `needs ${2 * x.rank} pads for ${describe(x)}`);
    out = x.shape.map((d, i) => {
      const grow = p[i]! + p[i + x.rank]!;
      if (grow === 0) return d;
      if (typeof d !== 'number')
        throw graph.error('E_SHAPE_MISMATCH', 'Pad', `cannot pad named dim ${i} of ${describe(x)}`);
      return d + grow;
    });
    padsTensor = int64s(graph, p);
  } else {
    if (!shape) throw graph.error('E_INVALID_ARGUMENT', 'Pad', 'runtime pads need the result shape');
    out = shape;
    padsTensor = pads as Tensor;
  }
  return graph.addNode('Pad', [x, padsTensor], [{ dtype: x.dtype, shape: out }], {
    mode: attr.string('constant'),
  })[0]!;
}

/** `data` with `updates` added at `indices` (ScatterND, reduction add). */
export function scatterNDAdd(data: Tensor, indices: Tensor, updates: Tensor): Tensor {
  requireSameDtype(data.graph, 'ScatterND', [data, updates]);
  return data.graph.addNode(
    'ScatterND',
    [data, indices, updates],
    [{ dtype: data.dtype, shape: data.shape }],
    {
      reduction: attr.string('add'),
    },
  )[0]!;
}

/** Upper (or lower) triangle of the last two dims; the rest is zeroed. */
export function trilu(x: Tensor, upper: boolean, k = 0): Tensor {
  return x.graph.addNode(
    'Trilu',
    [x, x.graph.constant([k], 'int64', [])],
    [{ dtype: x.dtype, shape: x.shape }],
    {
      upper: attr.int(upper ? 1 : 0),
    },
  )[0]!;
}
