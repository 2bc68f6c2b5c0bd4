/**
 * LoHa (LyCORIS's Hadamard-product low rank): `ΔW = (w1a @ w1b) ⊙ (w2a @ w2b)`, each factor of
 * rank r, so the update reaches rank r² for the parameters of two rank-r LoRAs. `w1a` / `w2a` are
 * `[out, r]`, `w1b` / `w2b` `[r, in·k…]` (a convolution's kernel flattened in, as LyCORIS stores
 * it without Tucker factors). Starts as LyCORIS does: `w2a` zero (so the update is zero), `w1a`
 * normal(0.1), `w1b` and `w2b` normal(1). Scale alpha / r with r = `hada_w1_b`'s first dimension,
 * as A1111 and ComfyUI read it. Merge: `W + multiplier · scale · ΔW`.
 */
import { add, matmul, mul, reshape, type Tensor } from '@lora/engine';
import type { TensorData } from '@lora/safetensors';
import { AdapterError } from '../errors.ts';
import { frozenLayer } from './low-rank.ts';
import type { LayerInputs, ModuleValues, Variant } from './variant.ts';

const ROLES = ['w1a', 'w1b', 'w2a', 'w2b'] as const;

/** ΔW in the graph, in the frozen weight's shape. */
function hadamardDelta(inputs: LayerInputs): Tensor {
  const { w1a, w1b, w2a, w2b } = inputs.parameters as Record<(typeof ROLES)[number], Tensor>;
  const delta = mul(matmul(w1a, w1b), matmul(w2a, w2b));
  return inputs.conv
    ? reshape(
        delta,
        inputs.weight.shape.map((d) => d as number),
      )
    : delta;
}

/** `a @ b` for row-major `[m, r]` and `[r, n]`. */
function product(a: ModuleValues[string], b: ModuleValues[string]): Float64Array {
  const [m, r] = a.shape as [number, number];
  const n = b.shape[1]!;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let k = 0; k < r; k++) {
      const x = a.data[i * r + k]!;
      if (x === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j]! += x * b.data[k * n + j]!;
    }
  }
  return out;
}

function checkShapes(name: string, tensors: Readonly<Record<string, TensorData>>): void {
  const { w1a, w1b, w2a, w2b } = tensors as Record<(typeof ROLES)[number], TensorData>;
  const fits =
    [w1a, w1b, w2a, w2b].every((t) => t.shape.length === 2) &&
    w1a.shape[1] === w1b.shape[0] &&
    w2a.shape[1] === w2b.shape[0] &&
    w1a.shape[0] === w2a.shape[0] &&
    w1b.shape[1] === w2b.shape[1];
  if (!fits) {
    const shapes = ROLES.map((role) => `${role} [${tensors[role]!.shape.join(', ')}]`).join(', ');
    throw new AdapterError(
      'E_INVALID_LORA',
      `LoHa module ${JSON.stringify(name)} has ${shapes}; expected w1a, w2a [out, r] and w1b, w2b [r, in] (LyCORIS's form without hada_t1 / hada_t2)`,
    );
  }
}

export const loha: Variant = {
  id: 'loha',
  name: 'LoHa',
  roles: ROLES,
  keys: { kohya: { w1a: '.hada_w1_a', w1b: '.hada_w1_b', w2a: '.hada_w2_a', w2b: '.hada_w2_b' } },
  kohyaNetwork: () => ({ module: 'lycoris.kohya', args: { algo: 'loha' } }),
  parameters: (weightShape, { rank }) => {
    const [out, ...rest] = weightShape as [number, ...number[]];
    const inner = rest.reduce((a, b) => a * b, 1);
    return [
      { role: 'w1a', shape: [out, rank], init: { kind: 'normal', std: 0.1 } },
      { role: 'w1b', shape: [rank, inner], init: { kind: 'normal', std: 1 } },
      { role: 'w2a', shape: [out, rank], init: { kind: 'zeros' } },
      { role: 'w2b', shape: [rank, inner], init: { kind: 'normal', std: 1 } },
    ];
  },
  forward: (inputs) =>
    add(
      frozenLayer(inputs, inputs.x, true),
      mul(frozenLayer(inputs, inputs.dropped, false, hadamardDelta(inputs)), inputs.scale),
    ),
  weightShape: (tensors) => [tensors['w1a']!.shape[0]!, tensors['w1b']!.shape[1]!],
  rank: (tensors) => tensors['w1b']?.shape[0] ?? 0,
  checkShapes,
  merge(weight, _shape, module, scale, multiplier) {
    const first = product(module['w1a']!, module['w1b']!);
    const second = product(module['w2a']!, module['w2b']!);
    if (first.length !== weight.length) {
      throw new AdapterError(
        'E_MERGE_MISMATCH',
        `the LoHa update has ${first.length} values, which does not fit a weight of ${weight.length}`,
      );
    }
    for (let i = 0; i < weight.length; i++) weight[i]! += multiplier * scale * first[i]! * second[i]!;
  },
};
