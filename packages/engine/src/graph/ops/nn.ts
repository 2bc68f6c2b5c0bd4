import { ONNX_DTYPE } from '../dtype.ts';
import { attr, type Tensor } from '../graph.ts';
import type { Dim } from '../shape.ts';
import { describe, dimsEqual, normalizeAxis, requireFloat, requireRank, requireSameDtype } from './common.ts';

export interface ConvOptions {
  /** Per spatial axis; default 1. */
  strides?: readonly number[];
  /** `[begin_0 … begin_n, end_0 … end_n]`; default 0. */
  pads?: readonly number[];
  dilations?: readonly number[];
  group?: number;
}

interface ConvGeometry {
  strides: number[];
  pads: number[];
  dilations: number[];
  group: number;
}

export function convGeometry(spatial: number, options: ConvOptions): ConvGeometry {
  return {
    strides: [...(options.strides ?? Array(spatial).fill(1))],
    pads: [...(options.pads ?? Array(2 * spatial).fill(0))],
    dilations: [...(options.dilations ?? Array(spatial).fill(1))],
    group: options.group ?? 1,
  };
}

function convAttributes(geometry: ConvGeometry, kernel: readonly number[]) {
  return {
    strides: attr.ints(geometry.strides),
    pads: attr.ints(geometry.pads),
    dilations: attr.ints(geometry.dilations),
    group: attr.int(geometry.group),
    kernel_shape: attr.ints(kernel),
  };
}

function checkConvOperands(
  op: string,
  x: Tensor,
  w: Tensor,
  b: Tensor | undefined,
  geometry: ConvGeometry,
): number[] {
  const graph = x.graph;
  requireSameDtype(graph, op, b ? [x, w, b] : [x, w]);
  requireFloat(graph, op, x);
  requireRank(graph, op, x, [3, 5]);
  if (w.rank !== x.rank)
    throw graph.error('E_SHAPE_MISMATCH', op, `weight rank must equal input rank: ${describe(x, w)}`);
  const kernel = w.shape.slice(2);
  if (!kernel.every((k): k is number => typeof k === 'number')) {
    throw graph.error('E_SHAPE_MISMATCH', op, `kernel dims must be static: ${describe(w)}`);
  }
  const spatial = x.rank - 2;
  const { strides, pads, dilations } = geometry;
  if (strides.length !== spatial || dilations.length !== spatial || pads.length !== 2 * spatial) {
    throw graph.error(
      'E_INVALID_ARGUMENT',
      op,
      `strides/dilations need ${spatial} entries and pads ${2 * spatial}`,
    );
  }
  return kernel;
}

/** One spatial output dim of a convolution; a named input dim stays named only when conv keeps its size. */
function convDim(
  input: Dim,
  k: number,
  stride: number,
  padBegin: number,
  padEnd: number,
  dilation: number,
): Dim {
  const reach = dilation * (k - 1) + 1;
  if (typeof input === 'number') return Math.floor((input + padBegin + padEnd - reach) / stride) + 1;
  if (stride === 1 && padBegin + padEnd === reach - 1) return input;
  return `conv(${input},k${k},s${stride},p${padBegin}+${padEnd},d${dilation})`;
}

/** N-D convolution (NCHW): `x [N, C, …]`, `w [M, C/group, k…]`, optional bias `[M]`. */
export function conv(x: Tensor, w: Tensor, b?: Tensor, options: ConvOptions = {}): Tensor {
  const graph = x.graph;
  const geometry = convGeometry(x.rank - 2, options);
  const kernel = checkConvOperands('Conv', x, w, b, geometry);
  const channels = x.shape[1]!;
  if (
    typeof channels !== 'number' ||
    typeof w.shape[1] !== 'number' ||
    w.shape[1] * geometry.group !== channels
  ) {
    throw graph.error(
      'E_SHAPE_MISMATCH',
      'Conv',
      `input channels ≠ weight channels × group ${geometry.group}: ${describe(x, w)}`,
    );
  }
  if (b && (b.rank !== 1 || !dimsEqual(b.shape[0], w.shape[0]))) {
    throw graph.error('E_SHAPE_MISMATCH', 'Conv', `bias must be [${w.shape[0]}]: ${describe(b)}`);
  }
  const { strides, pads, dilations } = geometry;
  const spatial = kernel.map((k, i) =>
    convDim(x.shape[i + 2]!, k, strides[i]!, pads[i]!, pads[i + kernel.length]!, dilations[i]!),
  );
  const shape = [x.shape[0]!, w.shape[0]!, ...spatial];
  const inputs = b ? [x, w, b] : [x, w];
  return graph.addNode('Conv', inputs, [{ dtype: x.dtype, shape }], convAttributes(geometry, kernel))[0]!;
}

export interface ConvTransposeOptions extends ConvOptions {
  outputPadding?: readonly number[];
}

/** Transposed convolution (the adjoint of `conv` in its input): `w [C, M/group, k…]`. */
export function convTranspose(x: Tensor, w: Tensor, options: ConvTransposeOptions = {}): Tensor {
  const graph = x.graph;
  const geometry = convGeometry(x.rank - 2, options);
  const kernel = checkConvOperands('ConvTranspose', x, w, undefined, geometry);
  if (!dimsEqual(x.shape[1], w.shape[0])) {
    throw graph.error(
      'E_SHAPE_MISMATCH',
      'ConvTranspose',
      `input channels ≠ weight dim 0: ${describe(x, w)}`,
    );
  }
  const outputPadding = [...(options.outputPadding ?? kernel.map(() => 0))];
  const { strides, pads, dilations, group } = geometry;
  const spatial = kernel.map((k, i) => {
    const input = x.shape[i + 2]!;
    const grow = outputPadding[i]! + dilations[i]! * (k - 1) + 1 - pads[i]! - pads[i + kernel.length]!;
    if (typeof input === 'number') return strides[i]! * (input - 1) + grow;
    return strides[i] === 1 && grow === 1 ? input : `convT(${input},s${strides[i]},+${grow - 1})`;
  });
  const channels = typeof w.shape[1] === 'number' ? w.shape[1] * group : w.shape[1]!;
  const shape = [x.shape[0]!, channels, ...spatial];
  const attributes = { ...convAttributes(geometry, kernel), output_padding: attr.ints(outputPadding) };
  return graph.addNode('ConvTranspose', [x, w], [{ dtype: x.dtype, shape }], attributes)[0]!;
}

/** Nearest-neighbour upsampling of the spatial dims (NCHW) by an integer `factor`, as `F.interpolate` does. */
export function resizeNearest(x: Tensor, factor: number): Tensor {
  const graph = x.graph;
  requireRank(graph, 'Resize', x, [3, 5]);
  if (!Number.isInteger(factor) || factor < 1) {
    throw graph.error('E_INVALID_ARGUMENT', 'Resize', `factor must be a positive integer, got ${factor}`);
  }
  const scales = graph.constant(
    x.shape.map((_, i) => (i < 2 ? 1 : factor)),
    'float32',
  );
  const shape = x.shape.map((d, i) => (i < 2 ? d : typeof d === 'number' ? d * factor : `${d}*${factor}`));
  return graph.addNode('Resize', [x, undefined, scales], [{ dtype: x.dtype, shape }], {
    mode: attr.string('nearest'),
    coordinate_transformation_mode: attr.string('asymmetric'),
    nearest_mode: attr.string('floor'),
  })[0]!;
}

export interface NormOptions {
  epsilon?: number;
}

/** LayerNormalization over the dims from `axis` on; `scale` (and `bias`) have those dims. */
export function layerNorm(
  x: Tensor,
  scale: Tensor,
  bias?: Tensor,
  options: NormOptions & { axis?: number } = {},
): Tensor {
  const graph = x.graph;
  const { epsilon = 1e-5 } = options;
  requireFloat(graph, 'LayerNormalization', x);
  requireSameDtype(graph, 'LayerNormalization', bias ? [x, scale, bias] : [x, scale]);
  const axis = normalizeAxis(graph, 'LayerNormalization', options.axis ?? -1, x.rank);
  const normalized = x.shape.slice(axis);
  for (const p of bias ? [scale, bias] : [scale]) {
    if (p.rank !== normalized.length || !p.shape.every((d, i) => dimsEqual(d, normalized[i]))) {
      throw graph.error(
        'E_SHAPE_MISMATCH',
        'LayerNormalization',
        `scale/bias must be [${normalized.join(', ')}]: ${describe(p)}`,
      );
    }
  }
  const inputs = bias ? [x, scale, bias] : [x, scale];
  return graph.addNode('LayerNormalization', inputs, [{ dtype: x.dtype, shape: x.shape }], {
    axis: attr.int(axis),
    epsilon: attr.float(epsilon),
  })[0]!;
}

/** GroupNormalization (opset 21: per-channel `scale` and `bias` of shape `[C]`). */
export function groupNorm(
  x: Tensor,
  scale: Tensor,
  bias: Tensor,
  groups: number,
  options: NormOptions = {},
): Tensor {
  const graph = x.graph;
  const { epsilon = 1e-5 } = options;
  requireFloat(graph, 'GroupNormalization', x);
  requireSameDtype(graph, 'GroupNormalization', [x, scale, bias]);
  requireRank(graph, 'GroupNormalization', x, [3, 5]);
  const channels = x.shape[1];
  if (typeof channels !== 'number' || channels % groups !== 0) {
    throw graph.error(
      'E_SHAPE_MISMATCH',
      'GroupNormalization',
      `channels of ${describe(x)} must be a multiple of ${groups}`,
    );
  }
  for (const p of [scale, bias]) {
    if (p.rank !== 1 || p.shape[0] !== channels) {
      throw graph.error(
        'E_SHAPE_MISMATCH',
        'GroupNormalization',
        `scale/bias must be [${channels}]: ${describe(p)}`,
      );
    }
  }
  return graph.addNode('GroupNormalization', [x, scale, bias], [{ dtype: x.dtype, shape: x.shape }], {
    num_groups: attr.int(groups),
    epsilon: attr.float(epsilon),
    // Statistics in float64 for float64 input (the default, float32, would blunt gradient checks).
    stash_type: attr.int(x.dtype === 'float64' ? ONNX_DTYPE.float64 : ONNX_DTYPE.float32),
  })[0]!;
}

/**
 * Training-mode dropout: zeroes each element with probability `ratio` and scales the rest by
 * 1 / (1 − ratio). Returns the output and the keep mask (bool), which the VJP reuses.
 */
export function dropout(x: Tensor, ratio: number, seed?: number): { output: Tensor; mask: Tensor } {
  const graph = x.graph;
  requireFloat(graph, 'Dropout', x);
  if (!(ratio >= 0 && ratio < 1))
    throw graph.error('E_INVALID_ARGUMENT', 'Dropout', `ratio must be in [0, 1), got ${ratio}`);
  const inputs = [x, graph.scalar(ratio, x.dtype), graph.constant([1], 'bool', [])];
  const [output, mask] = graph.addNode(
    'Dropout',
    inputs,
    [
      { dtype: x.dtype, shape: x.shape },
      { dtype: 'bool', shape: x.shape },
    ],
    seed === undefined ? {} : { seed: attr.int(seed) },
  );
  return { output: output!, mask: mask! };
}
