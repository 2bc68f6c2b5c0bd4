/**
 * Every op's vector-Jacobian product, in one table. An entry lists, per op input, how to turn
 * the output gradient(s) into that input's gradient; `null` marks inputs that carry no gradient
 * (shapes, indices, axes, conditions). The reverse pass calls only the entries of inputs that lie
 * on a path from a trainable tensor to the loss. Rules are built from the same op builders as the
 * forward graph, so they are ONNX nodes too, and are checked against finite differences.
 */
import type { Node, Tensor } from '../graph/graph.ts';
import { attr } from '../graph/graph.ts';
import { constantValues, int64s } from '../graph/ops/common.ts';
import {
  add,
  cast,
  div,
  equal,
  exp,
  log,
  mul,
  neg,
  pow,
  reciprocal,
  sqrt,
  sub,
  where,
} from '../graph/ops/elementwise.ts';
import {
  concat,
  expandAs,
  pad,
  reshape,
  reshapeAs,
  reshapeWith,
  SLICE_END,
  scatterNDAdd,
  shapeOf,
  slice,
  sliceBounds,
  splitBy,
  transpose,
  unsqueeze,
  zerosLike,
} from '../graph/ops/layout.ts';
import { gemm, matmul } from '../graph/ops/linalg.ts';
import { convTranspose } from '../graph/ops/nn.ts';
import { reduceMean, reduceSum } from '../graph/ops/reduce.ts';
import { type Dim, sameShape } from '../graph/shape.ts';

export interface VjpContext {
  readonly node: Node;
  /** The node's inputs (`undefined` for omitted optional ones). */
  readonly inputs: readonly (Tensor | undefined)[];
  readonly outputs: readonly Tensor[];
  /** Gradient of each output; `undefined` where none flows. */
  readonly grads: readonly (Tensor | undefined)[];
  /** Gradient of the first output. */
  readonly grad: Tensor;
  /** Builds `make()` once per node, for values several input rules share. */
  shared<T>(key: string, make: () => T): T;
}

export type InputVjp = (ctx: VjpContext) => Tensor;
/** Per input index; a function for variadic ops (Concat). */
export type VjpRule = readonly (InputVjp | null)[] | ((index: number) => InputVjp | null);

// ── helpers ────────────────────────────────────────────────────────────────

/** Sums `grad` over the dims that broadcasting added or stretched, back to `target`'s shape. */
export function unbroadcast(grad: Tensor, target: Tensor): Tensor {
  if (sameShape(grad.shape, target.shape)) return grad;
  const lead = grad.rank - target.rank;
  const stretched = target.shape.flatMap((d, i) => (d === 1 && grad.shape[i + lead] !== 1 ? [i + lead] : []));
  let out = grad;
  if (stretched.length > 0) out = reduceSum(out, stretched, true);
  if (lead > 0) out = reduceSum(out, [...Array(lead).keys()], false);
  return out;
}

const input = (ctx: VjpContext, i: number): Tensor => ctx.inputs[i]!;
const intAttr = (node: Node, name: string, fallback: number): number => {
  const a = node.attributes[name];
  return a?.type === 'int' ? a.value : fallback;
};
const intsAttr = (node: Node, name: string): readonly number[] => {
  const a = node.attributes[name];
  return a?.type === 'ints' ? a.value : [];
};
const floatAttr = (node: Node, name: string, fallback: number): number => {
  const a = node.attributes[name];
  // Float attributes are stored as float32; use the value onnxruntime sees.
  return Math.fround(a?.type === 'float' ? a.value : fallback);
};

/** Swaps the last two dims. */
const transposeLast = (x: Tensor): Tensor => {
  const perm = [...x.shape.keys()];
  perm.splice(-2, 2, x.rank - 1, x.rank - 2);
  return transpose(x, perm);
};

/** Reduction axes of a Reduce* node (its constant second input). */
const reducedAxes = (ctx: VjpContext): number[] => constantValues(input(ctx, 1), ctx.node.opType);

/** The output gradient with the reduced dims put back as size 1. */
const keptGrad = (ctx: VjpContext, value: Tensor): Tensor =>
  intAttr(ctx.node, 'keepdims', 1) ? value : unsqueeze(value, reducedAxes(ctx));

/** The element count over `axes` of `x` as a scalar of `x`'s type (runtime when a dim is named). */
function countOf(x: Tensor, axes: readonly number[]): Tensor {
  const dims = axes.map((a) => x.shape[a]!);
  if (dims.every((d) => typeof d === 'number')) {
    return x.graph.scalar(
      dims.reduce<number>((p, d) => p * (d as number), 1),
      x.dtype,
    );
  }
  const picked = x.graph.addNode(
    'Gather',
    [shapeOf(x), int64s(x.graph, axes)],
    [{ dtype: 'int64', shape: [axes.length] }],
  )[0]!;
  const product = x.graph.addNode('ReduceProd', [picked], [{ dtype: 'int64', shape: [] }], {
    keepdims: attr.int(0),
  })[0]!;
  return cast(product, x.dtype);
}

/**
 * Normalisation backward, shared by LayerNormalization and GroupNormalization: with
 * x̂ = (x − μ)·σ⁻¹ over `axes`, dx = σ⁻¹·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)).
 * Statistics are recomputed (in float32 for half types) rather than stashed.
 */
function normalized(x: Tensor, axes: readonly number[], epsilon: number): { xhat: Tensor; invStd: Tensor } {
  const centered = sub(x, reduceMean(x, axes, true));
  const variance = reduceMean(mul(centered, centered), axes, true);
  const invStd = reciprocal(sqrt(add(variance, epsilon)));
  return { xhat: mul(centered, invStd), invStd };
}

function normBackward(xhat: Tensor, invStd: Tensor, dxhat: Tensor, axes: readonly number[]): Tensor {
  const meanD = reduceMean(dxhat, axes, true);
  const meanDX = reduceMean(mul(dxhat, xhat), axes, true);
  return mul(invStd, sub(sub(dxhat, meanD), mul(xhat, meanDX)));
}

const computeType = (x: Tensor) => (x.dtype === 'float16' || x.dtype === 'bfloat16' ? 'float32' : x.dtype);

function layerNormParts(ctx: VjpContext) {
  return ctx.shared('layerNorm', () => {
    const x = input(ctx, 0);
    const axis = intAttr(ctx.node, 'axis', -1);
    const first = axis < 0 ? axis + x.rank : axis;
    const axes = [...Array(x.rank - first).keys()].map((i) => i + first);
    const wide = computeType(x);
    const { xhat, invStd } = normalized(cast(x, wide), axes, floatAttr(ctx.node, 'epsilon', 1e-5));
    return { axes, outer: [...Array(first).keys()], xhat, invStd, wide };
  });
}

function groupNormParts(ctx: VjpContext) {
  return ctx.shared('groupNorm', () => {
    const x = input(ctx, 0);
    const groups = intAttr(ctx.node, 'num_groups', 1);
    const wide = computeType(x);
    const grouped = reshape(cast(x, wide), [0, groups, -1]);
    const { xhat, invStd } = normalized(grouped, [2], floatAttr(ctx.node, 'epsilon', 1e-5));
    const perChannel = [0, ...[...Array(x.rank - 2).keys()].map((i) => i + 2)];
    return { groups, xhat, invStd, wide, perChannel, xhatFull: reshapeAs(xhat, x) };
  });
}

function convWeightGrad(ctx: VjpContext): Tensor {
  const [x, w] = [input(ctx, 0), input(ctx, 1)];
  const { node, grad } = ctx;
  if (intAttr(node, 'group', 1) !== 1) {
    throw x.graph.error(
      'E_GRADIENT_UNSUPPORTED',
      `Conv ${node.name}`,
      'weight gradient of a grouped convolution',
    );
  }
  const strides = intsAttr(node, 'strides');
  const dilations = intsAttr(node, 'dilations');
  const pads = intsAttr(node, 'pads');
  const kernel = w.shape.slice(2) as number[];
  const swap = [1, 0, ...[...Array(x.rank - 2).keys()].map((i) => i + 2)];
  // Correlating the input with the output gradient, batch as channels, strides and dilations swapped.
  const spatial = kernel.map((k, i) => {
    const h = x.shape[i + 2]!;
    const ho = grad.shape[i + 2]!;
    if (typeof h !== 'number' || typeof ho !== 'number') return k;
    return (
      Math.floor((h + pads[i]! + pads[i + kernel.length]! - strides[i]! * (ho - 1) - 1) / dilations[i]!) + 1
    );
  });
  // Only the spatial dims decide the crop: a named batch dim is fine.
  const spatialKnown = [x, grad].every((t) => t.shape.slice(2).every((d) => typeof d === 'number'));
  if (!spatialKnown && strides.some((s) => s !== 1)) {
    throw x.graph.error(
      'E_GRADIENT_UNSUPPORTED',
      `Conv ${node.name}`,
      'strided weight gradient needs static spatial dims',
    );
  }
  const correlated = x.graph.addNode(
    'Conv',
    [transpose(x, swap), transpose(grad, swap)],
    [{ dtype: x.dtype, shape: [x.shape[1]!, w.shape[0]!, ...spatial] }],
    { strides: attr.ints(dilations), dilations: attr.ints(strides), pads: attr.ints(pads) },
  )[0]!;
  const cropped = spatial.some((d, i) => d !== kernel[i])
    ? slice(correlated, { starts: kernel.map(() => 0), ends: kernel, axes: kernel.map((_, i) => i + 2) })
    : correlated;
  return transpose(cropped, swap);
}

function convInputGrad(ctx: VjpContext): Tensor {
  const [x, w] = [input(ctx, 0), input(ctx, 1)];
  const { node, grad } = ctx;
  const strides = intsAttr(node, 'strides');
  const pads = intsAttr(node, 'pads');
  const dilations = intsAttr(node, 'dilations');
  const kernel = w.shape.slice(2) as number[];
  const outputPadding = kernel.map((k, i) => {
    if (strides[i] === 1) return 0;
    const [h, ho] = [x.shape[i + 2]!, grad.shape[i + 2]!];
    if (typeof h !== 'number' || typeof ho !== 'number') {
      throw x.graph.error(
        'E_GRADIENT_UNSUPPORTED',
        `Conv ${node.name}`,
        'strided input gradient needs static spatial dims',
      );
    }
    return h + pads[i]! + pads[i + kernel.length]! - (strides[i]! * (ho - 1) + dilations[i]! * (k - 1) + 1);
  });
  return convTranspose(grad, w, {
    strides,
    pads,
    dilations,
    group: intAttr(node, 'group', 1),
    outputPadding,
  });
}

function sliceGrad(ctx: VjpContext): Tensor {
  const x = input(ctx, 0);
  const [starts, ends, axes] = [1, 2, 3].map((i) => constantValues(input(ctx, i), 'Slice'));
  const steps = constantValues(input(ctx, 4), 'Slice');
  const pads = Array<number>(2 * x.rank).fill(0);
  axes!.forEach((axis, i) => {
    const [start, end, step] = [starts![i]!, ends![i]!, steps[i]!];
    const dim = x.shape[axis]!;
    if (step !== 1)
      throw x.graph.error(
        'E_GRADIENT_UNSUPPORTED',
        `Slice ${ctx.node.name}`,
        'gradient of a slice with step ≠ 1',
      );
    const bounds = sliceBounds(dim, start, end, step);
    pads[axis] = bounds ? bounds.start : start;
    pads[axis + x.rank] = bounds ? (dim as number) - bounds.end : end >= SLICE_END ? 0 : -end;
  });
  return pad(ctx.grad, pads, x.shape);
}

function gatherGrad(ctx: VjpContext): Tensor {
  const [x, indices] = [input(ctx, 0), input(ctx, 1)];
  const axis = intAttr(ctx.node, 'axis', 0);
  const ri = indices.rank;
  // Bring the gathered axis to the front, scatter-add rows, move it back.
  const front = [axis, ...[...x.shape.keys()].filter((i) => i !== axis)];
  const gradFront = [
    ...[...Array(ri).keys()].map((i) => i + axis),
    ...[...Array(axis).keys()],
    ...[...Array(x.rank - axis - 1).keys()].map((i) => i + axis + ri),
  ];
  const moved = axis === 0 ? x : transpose(x, front);
  const updates = axis === 0 ? ctx.grad : transpose(ctx.grad, gradFront);
  const rows = unsqueeze(cast(indices, 'int64'), [-1]);
  const scattered = scatterNDAdd(zerosLike(moved), rows, updates);
  if (axis === 0) return scattered;
  const back = front.map((_, i) => front.indexOf(i));
  return transpose(scattered, back);
}

function concatGrad(i: number): InputVjp {
  return (ctx) => {
    const axis = intAttr(ctx.node, 'axis', 0);
    const sizes: Dim[] = ctx.inputs.map((t) => t!.shape[axis]!);
    if (sizes.every((d) => typeof d === 'number')) {
      const start = (sizes as number[]).slice(0, i).reduce((a, b) => a + b, 0);
      return slice(ctx.grad, { starts: [start], ends: [start + (sizes[i] as number)], axes: [axis] });
    }
    const parts = ctx.shared('split', () => {
      const runtime = concat(
        ctx.inputs.map((t) => shapeOf(t!, axis, axis + 1)),
        0,
      );
      return splitBy(ctx.grad, runtime, sizes, axis);
    });
    return parts[i]!;
  };
}

function resizeGrad(ctx: VjpContext): Tensor {
  const x = input(ctx, 0);
  const scales = constantValues(input(ctx, 2), 'Resize');
  const factor = scales[2]!;
  // Each input pixel fed a factor^n block of outputs: reshape to expose the blocks and sum them.
  const pieces: Tensor[] = [shapeOf(x, 0, 2)];
  const dims: Dim[] = [x.shape[0]!, x.shape[1]!];
  const blockAxes: number[] = [];
  for (let i = 2; i < x.rank; i++) {
    pieces.push(shapeOf(x, i, i + 1), int64s(x.graph, [factor]));
    dims.push(x.shape[i]!, factor);
    blockAxes.push(dims.length - 1);
  }
  const blocks = reshapeWith(ctx.grad, concat(pieces, 0), dims);
  return reduceSum(blocks, blockAxes, false);
}

// ── the table ──────────────────────────────────────────────────────────────

const gradOf = (ctx: VjpContext) => ctx.grad;
const reshapeBack: InputVjp = (ctx) => reshapeAs(ctx.grad, input(ctx, 0));

export const VJP: Readonly<Record<string, VjpRule>> = {
  Identity: [gradOf],
  Add: [(c) => unbroadcast(c.grad, input(c, 0)), (c) => unbroadcast(c.grad, input(c, 1))],
  Sub: [(c) => unbroadcast(c.grad, input(c, 0)), (c) => unbroadcast(neg(c.grad), input(c, 1))],
  Mul: [
    (c) => unbroadcast(mul(c.grad, input(c, 1)), input(c, 0)),
    (c) => unbroadcast(mul(c.grad, input(c, 0)), input(c, 1)),
  ],
  Div: [
    (c) => unbroadcast(div(c.grad, input(c, 1)), input(c, 0)),
    (c) => unbroadcast(neg(div(mul(c.grad, c.outputs[0]!), input(c, 1))), input(c, 1)),
  ],
  Pow: [
    (c) => unbroadcast(mul(c.grad, mul(input(c, 1), pow(input(c, 0), sub(input(c, 1), 1)))), input(c, 0)),
    (c) => unbroadcast(mul(c.grad, mul(c.outputs[0]!, log(input(c, 0)))), input(c, 1)),
  ],
  Neg: [(c) => neg(c.grad)],
  Sqrt: [(c) => div(mul(c.grad, 0.5), c.outputs[0]!)],
  Reciprocal: [(c) => neg(mul(c.grad, mul(c.outputs[0]!, c.outputs[0]!)))],
  Exp: [(c) => mul(c.grad, c.outputs[0]!)],
  Log: [(c) => div(c.grad, input(c, 0))],
  Tanh: [(c) => mul(c.grad, sub(1, mul(c.outputs[0]!, c.outputs[0]!)))],
  Sigmoid: [(c) => mul(c.grad, mul(c.outputs[0]!, sub(1, c.outputs[0]!)))],
  Erf: [(c) => mul(c.grad, mul(exp(neg(mul(input(c, 0), input(c, 0)))), 2 / Math.sqrt(Math.PI)))],
  Where: [
    null,
    (c) => unbroadcast(where(input(c, 0), c.grad, 0), input(c, 1)),
    (c) => unbroadcast(where(input(c, 0), 0, c.grad), input(c, 2)),
  ],
  Cast: [(c) => cast(c.grad, input(c, 0).dtype)],
  MatMul: [
    (c) => unbroadcast(matmul(c.grad, transposeLast(input(c, 1))), input(c, 0)),
    (c) => {
      const [a, b] = [input(c, 0), input(c, 1)];
      const [k, n] = [a.shape[a.rank - 1]!, b.shape[b.rank - 1]!];
      if (b.rank === 2 && a.rank > 2 && typeof k === 'number' && typeof n === 'number') {
        // x·W with batched x: fold the batch into rows for one 2-D product instead of a batched one.
        return matmul(transposeLast(reshape(a, [-1, k])), reshape(c.grad, [-1, n]));
      }
      return unbroadcast(matmul(transposeLast(a), c.grad), b);
    },
  ],
  Gemm: [
    (c) => {
      const [transA, transB, alpha] = [
        intAttr(c.node, 'transA', 0),
        intAttr(c.node, 'transB', 0),
        floatAttr(c.node, 'alpha', 1),
      ];
      return transA
        ? gemm(input(c, 1), c.grad, undefined, { alpha, transA: transB === 1, transB: true })
        : gemm(c.grad, input(c, 1), undefined, { alpha, transB: transB === 0 });
    },
    (c) => {
      const [transA, transB, alpha] = [
        intAttr(c.node, 'transA', 0),
        intAttr(c.node, 'transB', 0),
        floatAttr(c.node, 'alpha', 1),
      ];
      return transB
        ? gemm(c.grad, input(c, 0), undefined, { alpha, transA: true, transB: transA === 1 })
        : gemm(input(c, 0), c.grad, undefined, { alpha, transA: transA === 0 });
    },
    (c) => unbroadcast(mul(c.grad, floatAttr(c.node, 'beta', 1)), input(c, 2)),
  ],
  Softmax: [
    (c) => {
      const y = c.outputs[0]!;
      const axis = intAttr(c.node, 'axis', -1);
      return mul(y, sub(c.grad, reduceSum(mul(c.grad, y), [axis], true)));
    },
  ],
  // d/dx log Σ exp x = softmax(x) = exp(x − the output), along the reduced axes.
  ReduceLogSumExp: [
    (c) => mul(expandAs(keptGrad(c, c.grad), input(c, 0)), exp(sub(input(c, 0), keptGrad(c, c.outputs[0]!)))),
    null,
  ],
  ReduceSum: [(c) => expandAs(keptGrad(c, c.grad), input(c, 0)), null],
  ReduceMean: [
    (c) => expandAs(div(keptGrad(c, c.grad), countOf(input(c, 0), reducedAxes(c))), input(c, 0)),
    null,
  ],
  ReduceMax: [
    (c) => {
      // Ties share the gradient equally, as torch.amax does.
      const x = input(c, 0);
      const axes = reducedAxes(c);
      const hits = cast(equal(x, keptGrad(c, c.outputs[0]!)), x.dtype);
      return mul(keptGrad(c, c.grad), div(hits, reduceSum(hits, axes, true)));
    },
    null,
  ],
  Reshape: [reshapeBack, null],
  Unsqueeze: [reshapeBack, null],
  Squeeze: [reshapeBack, null],
  Transpose: [
    (c) => {
      const perm = intsAttr(c.node, 'perm');
      return transpose(
        c.grad,
        perm.map((_, i) => perm.indexOf(i)),
      );
    },
  ],
  Expand: [(c) => unbroadcast(c.grad, input(c, 0)), null],
  Concat: concatGrad,
  Split: [
    (c) =>
      concat(
        c.grads.map((g, i) => g ?? zerosLike(c.outputs[i]!)),
        intAttr(c.node, 'axis', 0),
      ),
    null,
  ],
  Slice: [sliceGrad, null, null, null, null],
  Gather: [gatherGrad, null],
  Conv: [
    convInputGrad,
    convWeightGrad,
    (c) => reduceSum(c.grad, [0, ...[...Array(c.grad.rank - 2).keys()].map((i) => i + 2)]),
  ],
  Resize: [resizeGrad, null, null, null],
  LayerNormalization: [
    (c) => {
      const { axes, xhat, invStd, wide } = layerNormParts(c);
      const dxhat = mul(cast(c.grad, wide), cast(input(c, 1), wide));
      return cast(normBackward(xhat, invStd, dxhat, axes), input(c, 0).dtype);
    },
    (c) => {
      const { outer, xhat } = layerNormParts(c);
      const dscale = mul(cast(c.grad, xhat.dtype), xhat);
      return cast(outer.length ? reduceSum(dscale, outer) : dscale, input(c, 1).dtype);
    },
    (c) => {
      const { outer } = layerNormParts(c);
      return outer.length ? reduceSum(c.grad, outer) : c.grad;
    },
  ],
  GroupNormalization: [
    (c) => {
      const x = input(c, 0);
      const { groups, xhat, invStd, wide } = groupNormParts(c);
      const scale = unsqueeze(
        cast(input(c, 1), wide),
        [...Array(x.rank - 2).keys()].map((i) => i + 1),
      );
      const dxhat = reshape(mul(cast(c.grad, wide), scale), [0, groups, -1]);
      return cast(reshapeAs(normBackward(xhat, invStd, dxhat, [2]), x), x.dtype);
    },
    (c) => {
      const { xhatFull, perChannel } = groupNormParts(c);
      return cast(reduceSum(mul(cast(c.grad, xhatFull.dtype), xhatFull), perChannel), input(c, 1).dtype);
    },
    (c) => reduceSum(c.grad, groupNormParts(c).perChannel),
  ],
  Dropout: [(c) => mul(c.grad, div(cast(c.outputs[1]!, c.grad.dtype), sub(1, input(c, 1)))), null, null],
};
