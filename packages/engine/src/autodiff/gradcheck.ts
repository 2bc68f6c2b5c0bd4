/**
 * Finite-difference check of the reverse pass: builds `loss = Σ f(inputs) · r` for a fixed
 * random `r`, asks autodiff for d loss / d input, and compares every element with the central
 * difference (loss(x + h) − loss(x − h)) / 2h. Used by this package's tests and by model tests.
 */
import type { DType } from '../graph/dtype.ts';
import { Graph, type Tensor } from '../graph/graph.ts';
import { cast, mul } from '../graph/ops/elementwise.ts';
import { reduceSum } from '../graph/ops/reduce.ts';
import { isStaticShape, staticSize } from '../graph/shape.ts';
import type { GraphLoader, HostTensor } from '../host-tensor.ts';
import { gradients } from './gradients.ts';

export type CheckDType = 'float64' | 'float32';

/**
 * Largest accepted error, relative to the largest numeric gradient entry. float64 uses
 * h = 1e-6 (errors ~1e-10 in practice); float32, for ops the CPU provider lacks in float64
 * (Conv, ConvTranspose, Erf, Resize), uses h = 1e-2, where truncation (~h²) and rounding
 * (~1e-7/h) each stay near 1e-5.
 */
export const GRADCHECK_TOLERANCE: Readonly<Record<CheckDType, number>> = { float64: 1e-7, float32: 1e-3 };
const STEP: Readonly<Record<CheckDType, number>> = { float64: 1e-6, float32: 1e-2 };

export interface GradCheckInput {
  shape: readonly number[];
  /** Default: the case's float type. Integer and bool inputs are held fixed. */
  dtype?: DType;
  /** Fixed values; needed for integer and bool inputs, else drawn at random. */
  values?: readonly number[];
  /** Range of the random values; default [-1, 1]. */
  range?: readonly [number, number];
  /** Hold this float input fixed (no gradient asked for it). */
  frozen?: boolean;
}

export interface GradCheckCase {
  name: string;
  dtype: CheckDType;
  inputs: Readonly<Record<string, GradCheckInput>>;
  build(inputs: Readonly<Record<string, Tensor>>): Tensor;
}

export interface GradCheckResult {
  name: string;
  dtype: CheckDType;
  /** max |analytic − numeric| / max |numeric|, over all checked elements. */
  maxRelError: number;
  /** Number of input elements compared. */
  checked: number;
}

/**
 * Checks `spec` on the runtime `load` prepares graphs for (which should not fuse ops: the check
 * is of this package's rules, not of a runtime's rewrites, some of which are float32-only).
 */
export async function checkGradients(
  spec: GradCheckCase,
  load: GraphLoader,
  seed = 1,
): Promise<GradCheckResult> {
  const rng = testValues(seed);
  const graph = new Graph(spec.name.replace(/\W+/g, '_'));
  const tensors: Record<string, Tensor> = {};
  const feeds: Record<string, HostTensor> = {};
  const trainable: string[] = [];
  for (const [name, input] of Object.entries(spec.inputs)) {
    const dtype = input.dtype ?? spec.dtype;
    tensors[name] = graph.input(name, dtype, input.shape);
    const size = staticSize(input.shape)!;
    const [low, high] = input.range ?? [-1, 1];
    const values = input.values ?? Array.from({ length: size }, () => low + (high - low) * rng.next());
    feeds[name] = hostData(dtype, input.shape, values);
    if ((dtype === 'float64' || dtype === 'float32') && !input.frozen) trainable.push(name);
  }
  const output = spec.build(tensors);
  if (!isStaticShape(output.shape)) throw new Error(`${spec.name}: grad check needs a static output shape`);
  const weights = graph.constant(
    Array.from({ length: staticSize(output.shape)! }, () => (0.5 + rng.next()) * (rng.next() < 0.5 ? -1 : 1)),
    'float64',
    output.shape,
  );
  // Accumulate in float64 so float32 checks lose no precision in the sum.
  const loss = graph.output(reduceSum(mul(cast(output, 'float64'), weights)), 'loss');
  const grads = gradients(
    loss,
    trainable.map((n) => tensors[n]!),
  );
  grads.forEach((g, i) => {
    graph.output(g, `grad_${trainable[i]}`);
  });

  const session = await load(graph);
  try {
    const analytic = await session.run(feeds);
    const lossAt = async (name: string, index: number, delta: number): Promise<number> => {
      const data = feeds[name]!.data as Float64Array | Float32Array;
      const saved = data[index]!;
      data[index] = saved + delta;
      const result = await session.run(feeds, ['loss']);
      data[index] = saved;
      return (result['loss']!.data as Float64Array)[0]!;
    };
    const h = STEP[spec.dtype];
    let worstDiff = 0;
    let largest = 0;
    let checked = 0;
    for (const name of trainable) {
      const g = analytic[`grad_${name}`]!.data as Float64Array | Float32Array;
      for (let i = 0; i < g.length; i++) {
        const x = (feeds[name]!.data as Float64Array | Float32Array)[i]!;
        // Step by an amount the input's type can represent exactly, so ±h is symmetric.
        const step = spec.dtype === 'float32' ? Math.fround(x + h) - x : h;
        const stepDown = spec.dtype === 'float32' ? x - Math.fround(x - h) : h;
        const numeric =
          ((await lossAt(name, i, step)) - (await lossAt(name, i, -stepDown))) / (step + stepDown);
        worstDiff = Math.max(worstDiff, Math.abs(numeric - g[i]!));
        largest = Math.max(largest, Math.abs(numeric));
        checked++;
      }
    }
    return { name: spec.name, dtype: spec.dtype, maxRelError: worstDiff / Math.max(largest, 1e-12), checked };
  } finally {
    await session.dispose();
  }
}

/** mulberry32: a small seeded generator of test values in [0, 1), the same on every platform. */
function testValues(seed: number): { next(): number } {
  let state = seed >>> 0;
  return {
    next() {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
    },
  };
}

function hostData(dtype: DType, shape: readonly number[], values: readonly number[]): HostTensor {
  switch (dtype) {
    case 'float64':
      return { dtype, shape, data: Float64Array.from(values) };
    case 'float32':
      return { dtype, shape, data: Float32Array.from(values) };
    case 'int64':
      return { dtype, shape, data: BigInt64Array.from(values, (v) => BigInt(v)) };
    case 'int32':
      return { dtype, shape, data: Int32Array.from(values) };
    case 'bool':
      return { dtype, shape, data: Uint8Array.from(values) };
    default:
      throw new Error(`grad check inputs of type ${dtype} are not supported`);
  }
}
