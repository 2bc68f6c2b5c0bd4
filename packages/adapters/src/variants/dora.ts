/**
 * DoRA (Liu et al., weight-decomposed LoRA): the adapted weight is `W' = m · V / ‖V‖` with
 * `V = W + scale · up @ down` and a trained magnitude `m`, initialised to `‖W‖` so training starts
 * from the base model. The norm is treated as a constant in the backward pass (the paper's §4.3,
 * as PEFT does). Which way the norm runs depends on who reads the file (`NormAxis`): PEFT and the
 * paper's code take one per output row; A1111 applies one per input column, so SD files use that.
 * The magnitude is held in LyCORIS's shapes, which say the axis: `[out, 1]` / `[out, 1, 1, 1]` or
 * `[1, in]` / `[1, in, 1, 1]` (kohya `dora_scale`); PEFT's `lora_magnitude_vector` is `[out]` /
 * `[1, out, 1, 1]`. Merge (A1111's and ComfyUI's formula): `W + multiplier · (W' − W)`.
 */
import { add, div, mul, reduceSum, reshape, sqrt, stopGradient, sub, type Tensor } from '@lora/engine';
import type { TensorData } from '@lora/safetensors';
import { AdapterError } from '../errors.ts';
import {
  addLowRank,
  checkLowRankShapes,
  coreShape,
  frozenLayer,
  lowRankDelta,
  lowRankParameters,
  lowRankPath,
  lowRankRank,
  lowRankWeightShape,
} from './low-rank.ts';
import type { LayerInputs, ModuleValues, NormAxis, Variant } from './variant.ts';

/** The magnitude's shape for a weight of `weightShape`: the axis's length, ones elsewhere. */
function magnitudeShape(weightShape: readonly number[], axis: NormAxis): number[] {
  return weightShape.map((d, i) => ((axis === 'output' ? i === 0 : i === 1) ? d : 1));
}

/** `[out, 1…]` is per output row; `[1, in, 1…]` per input column. */
function axisOf(shape: readonly number[]): NormAxis {
  return shape[0] === 1 && (shape[1] ?? 1) > 1 ? 'input' : 'output';
}

/** ‖V‖ per output row (`[out]`) or per input column (`[in]`), over every other axis. */
function norms(v: Tensor, axis: NormAxis): Tensor {
  const [out, inputs] = v.shape as number[];
  const squares = mul(v, v);
  return axis === 'output'
    ? sqrt(reduceSum(reshape(squares, [out!, -1]), [1]))
    : sqrt(reduceSum(reshape(squares, [out!, inputs!, -1]), [0, 2]));
}

/** A per-channel vector shaped to broadcast over a layer's features: last axis, or the channel axis of `[N, C, …]`. */
function overFeatures(r: Tensor, inputs: LayerInputs): Tensor {
  const spatial = inputs.weight.rank - 2;
  return inputs.conv ? reshape(r, [-1, ...new Array<number>(spatial).fill(1)]) : r;
}

function forward(inputs: LayerInputs): Tensor {
  const { x, dropped, weight, scale } = inputs;
  const magnitude = inputs.parameters['magnitude']!;
  const axis = axisOf(magnitude.shape as number[]);
  const adapted = add(weight, mul(lowRankDelta(inputs), scale));
  const ratio = overFeatures(div(reshape(magnitude, [-1]), stopGradient(norms(adapted, axis))), inputs);
  const bias = inputs.bias;
  const withBias = (y: Tensor) => (bias ? add(y, inputs.conv ? overFeatures(bias, inputs) : bias) : y);
  if (axis === 'output') {
    // W'·v = r ⊙ (W·v + scale · up(down(v))); with dropout, PEFT's form: the undropped base plus
    // (r − 1) ⊙ W·ṽ + r ⊙ scale · up(down(ṽ)).
    const update = mul(lowRankPath(inputs, dropped), scale);
    if (dropped === x) return withBias(mul(ratio, add(frozenLayer(inputs, x, false), update)));
    const droppedBase = frozenLayer(inputs, dropped, false);
    return add(frozenLayer(inputs, x, true), add(mul(sub(ratio, 1), droppedBase), mul(ratio, update)));
  }
  // Scaling input column j of V by r_j is scaling input feature j: W'·v = V·(r ⊙ v).
  const scaled = mul(dropped, ratio);
  const update = add(frozenLayer(inputs, scaled, false), mul(lowRankPath(inputs, scaled), scale));
  if (dropped === x) return withBias(update);
  return add(frozenLayer(inputs, x, true), sub(update, frozenLayer(inputs, dropped, false)));
}

/** Host merge: `W += multiplier · (V · m / ‖V‖ − W)`, V = W + scale · up @ down. */
function merge(
  weight: Float32Array | Float64Array,
  weightShape: readonly number[],
  module: ModuleValues,
  scale: number,
  multiplier: number,
): void {
  const magnitude = module['magnitude']!;
  const axis = axisOf(magnitude.shape);
  const adapted = Float64Array.from(weight);
  addLowRank(adapted, module, scale);
  const out = weightShape[0]!;
  const inputs = weightShape[1] ?? 1;
  const inner = weight.length / out;
  const perInput = inner / inputs;
  const count = axis === 'output' ? out : inputs;
  const channel = (index: number) =>
    axis === 'output' ? Math.floor(index / inner) : Math.floor((index % inner) / perInput);
  const sums = new Float64Array(count);
  for (let i = 0; i < adapted.length; i++) sums[channel(i)]! += adapted[i]! * adapted[i]!;
  for (let i = 0; i < weight.length; i++) {
    const c = channel(i);
    const merged = (adapted[i]! * magnitude.data[c]!) / Math.sqrt(sums[c]!);
    weight[i]! += multiplier * (merged - weight[i]!);
  }
}

function checkShapes(name: string, tensors: Readonly<Record<string, TensorData>>): void {
  checkLowRankShapes(name, tensors);
  const { down, up, magnitude } = tensors as Record<'down' | 'up' | 'magnitude', TensorData>;
  const weightShape = [up.shape[0]!, down.shape[1]!, ...down.shape.slice(2)];
  const fits = (['output', 'input'] as const).some(
    (axis) => coreShape(magnitudeShape(weightShape, axis)) === coreShape(magnitude.shape),
  );
  if (!fits) {
    throw new AdapterError(
      'E_INVALID_LORA',
      `module ${JSON.stringify(name)} has a DoRA magnitude of [${magnitude.shape.join(', ')}]; for its weight ` +
        `[${weightShape.join(', ')}] expected [${magnitudeShape(weightShape, 'output').join(', ')}] (per output row) ` +
        `or [${magnitudeShape(weightShape, 'input').join(', ')}] (per input column)`,
    );
  }
}

/** PEFT's `lora_magnitude_vector` is `[out]` (linear) or `[1, out, 1, 1]` (conv), per output row only. */
function reshapeFor(
  layout: string,
  role: string,
  shape: readonly number[],
  direction: 'write' | 'read',
): readonly number[] {
  if (layout !== 'peft' || role !== 'magnitude') return shape;
  if (direction === 'read') return shape.length === 1 ? [shape[0]!, 1] : [shape[1]!, 1, ...shape.slice(2)];
  if (axisOf(shape) === 'input') {
    throw new AdapterError(
      'E_INVALID_LORA',
      'PEFT stores DoRA magnitudes per output row, and this adapter has them per input column (the form A1111 reads); write it in the kohya layout',
    );
  }
  return shape.length === 2 ? [shape[0]!] : [1, shape[0]!, ...shape.slice(2)];
}

export const dora: Variant = {
  id: 'dora',
  name: 'DoRA',
  roles: ['down', 'up', 'magnitude'],
  keys: {
    kohya: { down: '.lora_down.weight', up: '.lora_up.weight', magnitude: '.dora_scale' },
    peft: { down: '.lora_A.weight', up: '.lora_B.weight', magnitude: '.lora_magnitude_vector' },
  },
  kohyaNetwork: (options) => ({
    module: 'lycoris.kohya',
    args: {
      algo: 'lora',
      dora_wd: 'True',
      wd_on_output: (options.normAxis ?? 'output') === 'output' ? 'True' : 'False',
    },
  }),
  peftConfig: { use_dora: true },
  parameters: (weightShape, options) => {
    const axis = options.normAxis ?? 'output';
    return [
      ...lowRankParameters(weightShape, options.rank),
      { role: 'magnitude', shape: magnitudeShape(weightShape, axis), init: { kind: 'weight-norm', axis } },
    ];
  },
  forward,
  weightShape: lowRankWeightShape,
  rank: lowRankRank,
  checkShapes,
  merge,
  reshapeFor,
};
