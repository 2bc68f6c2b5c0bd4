/**
 * Layers built from primitive ops, so autodiff differentiates them through the VJP table and
 * they need no rules of their own. Formulas follow transformers / diffusers.
 */
import type { DType } from '../dtype.ts';
import type { Tensor } from '../graph.ts';
import { describe, dimsEqual, requireFloat } from './common.ts';
import {
  add,
  cast,
  div,
  equal,
  erf,
  greater,
  mul,
  neg,
  not,
  rsqrt,
  sigmoid,
  sub,
  tanh,
  where,
} from './elementwise.ts';
import { checkpoint } from './gradient-marks.ts';
import {
  concat,
  constantOfShape,
  SLICE_END,
  shapeOf,
  slice,
  split,
  transpose,
  trilu,
  unsqueeze,
} from './layout.ts';
import { matmul } from './linalg.ts';
import { logSoftmax, reduceMean, reduceSum, softmax } from './reduce.ts';

/** Half types compute reductions in float32, as transformers does. */
const wideType = (dtype: DType): DType => (dtype === 'float16' || dtype === 'bfloat16' ? 'float32' : dtype);

/** The most negative finite value of a float type, for masking logits. */
const LOWEST: Partial<Record<DType, number>> = {
  float16: -65504,
  float32: -3.4028234663852886e38,
  float64: -Number.MAX_VALUE,
};

/** x · sigmoid(x) (a.k.a. swish). */
export const silu = (x: Tensor): Tensor => mul(x, sigmoid(x));

/** Exact GELU: x/2 · (1 + erf(x/√2)). */
export const gelu = (x: Tensor): Tensor => mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1));

/** GELU, tanh approximation: x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export const geluTanh = (x: Tensor): Tensor => {
  const cube = mul(mul(x, x), x);
  return mul(mul(x, 0.5), add(tanh(mul(add(x, mul(cube, 0.044715)), Math.sqrt(2 / Math.PI))), 1));
};

/** CLIP's x · sigmoid(1.702·x). */
export const quickGelu = (x: Tensor): Tensor => mul(x, sigmoid(mul(x, 1.702)));

/** LLaMA RMSNorm: x / √(mean(x²) + ε) in float32, cast back, times `weight`. */
export function rmsNorm(x: Tensor, weight: Tensor, epsilon = 1e-6): Tensor {
  requireFloat(x.graph, 'RMSNorm', x);
  const wide = cast(x, wideType(x.dtype));
  const normalized = mul(wide, rsqrt(add(reduceMean(mul(wide, wide), [-1], true), epsilon)));
  return mul(cast(normalized, x.dtype), cast(weight, x.dtype));
}

/** LLaMA's default inverse frequencies θ^(−2i/d) for i < d/2 (scaled variants come from the model config). */
export function ropeInverseFrequencies(headDim: number, theta: number): number[] {
  return Array.from({ length: headDim / 2 }, (_, i) => 1 / theta ** ((2 * i) / headDim));
}

/**
 * Rotary position tables for `positions` (int64, any shape): cos and sin of shape
 * `[...positions, 2·frequencies]`, as LLaMA computes them (in float32, frequencies repeated for
 * both halves, then cast to `dtype`).
 */
export function ropeTables(
  positions: Tensor,
  inverseFrequencies: ArrayLike<number>,
  dtype: DType,
): { cos: Tensor; sin: Tensor } {
  const graph = positions.graph;
  const freqs = mul(
    unsqueeze(cast(positions, 'float32'), [-1]),
    graph.constant(Array.from(inverseFrequencies), 'float32'),
  );
  const angles = concat([freqs, freqs], -1);
  const [c, s] = ['Cos', 'Sin'].map(
    (op) => graph.addNode(op, [angles], [{ dtype: 'float32', shape: angles.shape }])[0]!,
  );
  return { cos: cast(c!, dtype), sin: cast(s!, dtype) };
}

/** Applies rotary embeddings: x·cos + rotate_half(x)·sin; cos/sin broadcast against x (`[…, seq, headDim]`). */
export function rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const d = x.shape[x.rank - 1];
  if (typeof d !== 'number' || d % 2 !== 0) {
    throw x.graph.error('E_SHAPE_MISMATCH', 'RoPE', `last dim must be static and even: ${describe(x)}`);
  }
  const x1 = slice(x, { starts: [0], ends: [d / 2], axes: [-1] });
  const x2 = slice(x, { starts: [d / 2], ends: [SLICE_END], axes: [-1] });
  return add(mul(x, cos), mul(concat([neg(x2), x1], -1), sin));
}

export interface AttentionOptions {
  /** Each query sees only keys at or before its position. */
  causal?: boolean;
  /** Added to the scores (e.g. a padding mask of 0 / large negative), broadcast to `[b, h, q, k]`. */
  mask?: Tensor;
  /** Default 1/√headDim. */
  scale?: number;
  /**
   * Attend in blocks of this many queries, each a gradient checkpoint: the backward pass
   * recomputes a block's scores when it needs them, so no more than one block's `[b, h, chunk, k]`
   * scores exist at a time instead of the whole `[b, h, q, k]` (memory-efficient attention).
   */
  queryChunk?: number;
}

/** softmax(q·kᵀ·scale + mask)·v with `q [b, h, q, d]`, `k [b, h, k, d]`, `v [b, h, k, dv]`. */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: AttentionOptions = {},
): Tensor {
  const graph = q.graph;
  const d = q.shape[q.rank - 1];
  if (!dimsEqual(d, k.shape[k.rank - 1]) || typeof d !== 'number') {
    throw graph.error('E_SHAPE_MISMATCH', 'Attention', `q and k need one static head dim: ${describe(q, k)}`);
  }
  const perm = [...k.shape.keys()];
  perm.splice(-2, 2, k.rank - 1, k.rank - 2);
  const keys = transpose(k, perm);
  const queries = q.shape[q.rank - 2];
  const chunk = options.queryChunk;
  if (chunk === undefined || typeof queries !== 'number' || queries <= chunk) {
    return attend(q, keys, v, options.mask, 0, d, options);
  }
  const sizes = Array.from({ length: Math.ceil(queries / chunk) }, (_, i) =>
    Math.min(chunk, queries - i * chunk),
  );
  const rows = options.mask && options.mask.rank >= 2 ? options.mask.shape[options.mask.rank - 2] : 1;
  const masks = options.mask && rows !== 1 ? split(options.mask, sizes, -2) : undefined;
  const parts = split(q, sizes, -2).map((part, i) =>
    checkpoint(part, (block) => attend(block, keys, v, masks?.[i] ?? options.mask, i * chunk, d, options)),
  );
  return concat(parts, -2);
}

/** One block of queries, the first at position `offset` (for the causal mask). */
function attend(
  q: Tensor,
  keys: Tensor,
  v: Tensor,
  mask: Tensor | undefined,
  offset: number,
  d: number,
  options: AttentionOptions,
): Tensor {
  let scores = mul(matmul(q, keys), options.scale ?? 1 / Math.sqrt(d));
  if (mask) scores = add(scores, mask);
  const wide = wideType(q.dtype);
  scores = cast(scores, wide);
  if (options.causal) {
    const ones = constantOfShape(shapeOf(scores, scores.rank - 2), scores.shape.slice(-2), 1, wide);
    const allowed = cast(trilu(ones, false, offset), 'bool');
    scores = where(allowed, scores, LOWEST[wide] ?? -1e30);
  }
  return matmul(cast(softmax(scores, -1), q.dtype), v);
}

/**
 * Mean cross entropy of `logits [..., V]` against integer `labels [...]`; labels equal to
 * `ignoreIndex` count neither in the sum nor in the mean (as PyTorch's ignore_index). Computed
 * in float32 for half logits. The vocabulary size V must be static.
 */
export function crossEntropy(logits: Tensor, labels: Tensor, ignoreIndex = -100): Tensor {
  const graph = logits.graph;
  const vocab = logits.shape[logits.rank - 1];
  if (typeof vocab !== 'number' || labels.rank !== logits.rank - 1) {
    throw graph.error(
      'E_SHAPE_MISMATCH',
      'CrossEntropy',
      `needs logits [..., V] with static V and labels [...]: ${describe(logits, labels)}`,
    );
  }
  const wide = wideType(logits.dtype);
  const logProbs = logSoftmax(cast(logits, wide), -1);
  const ids = cast(labels, 'int64');
  // One-hot by comparison instead of a gather: its gradient is a product, which every type supports.
  const oneHot = cast(
    equal(
      unsqueeze(ids, [-1]),
      graph.constant(
        Array.from({ length: vocab }, (_, i) => i),
        'int64',
      ),
    ),
    wide,
  );
  const picked = reduceSum(mul(logProbs, oneHot), [-1]);
  const valid = reduceSum(cast(not(equal(ids, graph.constant([ignoreIndex], 'int64', []))), wide));
  const count = where(greater(valid, 0), valid, 1);
  return neg(div(reduceSum(picked), count));
}

/** Mean squared error. */
export function mseLoss(prediction: Tensor, target: Tensor): Tensor {
  const diff = sub(prediction, target);
  return reduceMean(mul(diff, diff));
}
