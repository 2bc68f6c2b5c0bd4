/**
 * The pieces LoRA and DoRA share: the frozen layer, the low-rank path up·down, its weight-shaped
 * product ΔW (in the graph and on the host), and the shapes of down and up.
 */
import { add, conv, matmul, reshape, type Tensor, transpose } from '@lora/engine';
import type { TensorData } from '@lora/safetensors';
import { AdapterError } from '../errors.ts';
import type { LayerInputs, ModuleValues, ParameterSpec } from './variant.ts';

/** The frozen layer on `v`: `v·Wᵀ (+ b)`, or the convolution; with `weight`, the same layer with another weight of W's shape. */
export function frozenLayer(
  inputs: LayerInputs,
  v: Tensor,
  withBias: boolean,
  weight = inputs.weight,
): Tensor {
  const bias = withBias ? inputs.bias : undefined;
  if (inputs.conv) return conv(v, weight, bias, inputs.conv);
  const y = matmul(v, transpose(weight));
  return bias ? add(y, bias) : y;
}

/** `up(down(v))`: two thin matmuls, or kohya's k×k convolution down to `rank` channels and a 1×1 back up. */
export function lowRankPath(inputs: LayerInputs, v: Tensor): Tensor {
  const { down, up } = inputs.parameters as { down: Tensor; up: Tensor };
  if (inputs.conv) return conv(conv(v, down, undefined, inputs.conv), up);
  return matmul(matmul(v, transpose(down)), transpose(up));
}

/** ΔW = up @ down in the frozen weight's shape. */
export function lowRankDelta(inputs: LayerInputs): Tensor {
  const { down, up } = inputs.parameters as { down: Tensor; up: Tensor };
  if (!inputs.conv) return matmul(up, down);
  const [out, rank] = up.shape as number[];
  const product = matmul(reshape(up, [out!, rank!]), reshape(down, [rank!, -1]));
  return reshape(
    product,
    inputs.weight.shape.map((d) => d as number),
  );
}

/** down `[r, in]` (kaiming-uniform) and up `[out, r]` (zeros); for a convolution `[r, in, k…]` and `[out, r, 1…]`. */
export function lowRankParameters(weightShape: readonly number[], rank: number): ParameterSpec[] {
  const [out, inputs, ...kernel] = weightShape as [number, number, ...number[]];
  const fanIn = inputs * kernel.reduce((a, b) => a * b, 1);
  return [
    { role: 'down', shape: [rank, inputs, ...kernel], init: { kind: 'kaiming-uniform', fanIn } },
    { role: 'up', shape: [out, rank, ...kernel.map(() => 1)], init: { kind: 'zeros' } },
  ];
}

/** down `[r, in]` or `[r, in, k, k]`; up `[out, r]` or `[out, r, 1, 1]`. */
export function checkLowRankShapes(name: string, tensors: Readonly<Record<string, TensorData>>): void {
  const { down, up } = tensors as { down: TensorData; up: TensorData };
  const rank = down.shape[0];
  const upOk =
    up.shape[1] === rank &&
    (up.shape.length === 2 || (up.shape.length === 4 && up.shape[2] === 1 && up.shape[3] === 1));
  if (rank === undefined || rank === 0 || (down.shape.length !== 2 && down.shape.length !== 4) || !upOk) {
    throw new AdapterError(
      'E_INVALID_LORA',
      `module ${JSON.stringify(name)} has down [${down.shape.join(', ')}] and up [${up.shape.join(', ')}]; ` +
        'expected down [r, in] or [r, in, k, k] and up [out, r] or [out, r, 1, 1]',
    );
  }
}

/** The weight a down/up pair adapts: `[out, in, k…]`. */
export function lowRankWeightShape(tensors: Readonly<Record<string, TensorData>>): number[] {
  const { down, up } = tensors as { down: TensorData; up: TensorData };
  return [up.shape[0]!, ...down.shape.slice(1)];
}

/** The rank of a down/up pair: down's first dimension. */
export function lowRankRank(tensors: Readonly<Record<string, TensorData>>): number {
  return tensors['down']?.shape[0] ?? 0;
}

/** `target[o, k] += coefficient · Σ_r up[o, r] · down[r, k]`, row by row for cache locality. */
export function addLowRank(
  target: Float32Array | Float64Array,
  module: ModuleValues,
  coefficient: number,
): void {
  const { down, up } = module as { down: ModuleValues[string]; up: ModuleValues[string] };
  const rank = down.shape[0]!;
  const out = up.shape[0]!;
  const inner = down.data.length / rank;
  if (target.length !== out * inner) {
    throw new AdapterError(
      'E_MERGE_MISMATCH',
      `the update is [${out}, ${down.shape.slice(1).join(', ')}], which does not fit a weight of ${target.length} values`,
    );
  }
  for (let o = 0; o < out; o++) {
    const row = o * inner;
    for (let r = 0; r < rank; r++) {
      const scale = coefficient * up.data[o * rank + r]!;
      if (scale === 0) continue;
      const from = r * inner;
      for (let k = 0; k < inner; k++) target[row + k]! += scale * down.data[from + k]!;
    }
  }
}

/**
 * A shape without trailing ones, to compare shapes that differ only by them: a 1×1 convolution's
 * tensors may be stored 4-D (`[1, in, 1, 1]`) or as the linear layer they act as (`[1, in]`).
 */
export function coreShape(shape: readonly number[]): string {
  return shape.join(',').replace(/(,1)+$/, '');
}

/** alpha / rank, or alpha / √rank with rsLoRA. */
export function scaleOf(options: { rank: number; alpha: number; rslora?: boolean }): number {
  return options.alpha / (options.rslora ? Math.sqrt(options.rank) : options.rank);
}
