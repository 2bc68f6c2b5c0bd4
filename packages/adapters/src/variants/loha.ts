/**
 * LoHa (LyCORIS's Hadamard-product low rank): `ΔW = (hada_w1_a @ hada_w1_b) ⊙ (hada_w2_a @ hada_w2_b)`, each factor of
 * rank r, so the update reaches rank r² for the parameters of two rank-r LoRAs. `hada_w1_a` / `hada_w2_a` are
 * `[out, r]`, `hada_w1_b` / `hada_w2_b` `[r, in·k…]` (a convolution's kernel flattened in, as LyCORIS stores
 * it without Tucker factors). Starts as LyCORIS does: `hada_w2_a` zero (so the update is zero), `hada_w1_a`
 * normal(0.1), `hada_w1_b` and `hada_w2_b` normal(1). Scale alpha / r with r = `hada_w1_b`'s first dimension,
 * as A1111 and ComfyUI read it. Merge: `W + multiplier · scale · ΔW`.
 */
import { add, matmul, mul, reshape, type Tensor } from '@lora/engine';
import type { TensorData } from '@lora/safetensors';
import { AdapterError } from '../errors.ts';
import { frozenLayer } from './low-rank.ts';
import type { LayerInputs, ModuleValues, Variant } from './variant.ts';

const ROLES = ['hada_w1_a', 'hada_w1_b', 'hada_w2_a', 'hada_w2_b'] as const;

/** ΔW in the graph, in the frozen weight's shape. */
function hadamardDelta(inputs: LayerInputs): Tensor {
  const { hada_w1_a, hada_w1_b, hada_w2_a, hada_w2_b } = inputs.parameters as Record<
    (typeof ROLES)[number],
    Tensor
  >;
  const delta = mul(matmul(hada_w1_a, hada_w1_b), matmul(hada_w2_a, hada_w2_b));
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
  const { hada_w1_a, hada_w1_b, hada_w2_a, hada_w2_b } = tensors as Record<
    (typeof ROLES)[number],
    TensorData
  >;
  const fits =
    [hada_w1_a, hada_w1_b, hada_w2_a, hada_w2_b].every((t) => t.shape.length === 2) &&
    hada_w1_a.shape[1] === hada_w1_b.shape[0] &&
    hada_w2_a.shape[1] === hada_w2_b.shape[0] &&
    hada_w1_a.shape[0] === hada_w2_a.shape[0] &&
    hada_w1_b.shape[1] === hada_w2_b.shape[1];
  if (!fits) {
    const shapes = ROLES.map((role) => `${role} [${tensors[role]!.shape.join(', ')}]`).join(', ');
    throw new AdapterError(
      'E_INVALID_LORA',
      `LoHa module ${JSON.stringify(name)} has ${shapes}; expected hada_w1_a, hada_w2_a [out, r] and hada_w1_b, hada_w2_b [r, in] (LyCORIS's form without hada_t1 / hada_t2)`,
    );
  }
}

export const loha: Variant = {
  id: 'loha',
  name: 'LoHa',
  roles: ROLES,
  keys: {
    kohya: {
      hada_w1_a: '.hada_w1_a',
      hada_w1_b: '.hada_w1_b',
      hada_w2_a: '.hada_w2_a',
      hada_w2_b: '.hada_w2_b',
    },
  },
  kohyaNetwork: () => ({ module: 'lycoris.kohya', args: { algo: 'loha' } }),
  parameters: (weightShape, { rank }) => {
    const [out, ...rest] = weightShape as [number, ...number[]];
    const inner = rest.reduce((a, b) => a * b, 1);
    return [
      { role: 'hada_w1_a', shape: [out, rank], init: { kind: 'normal', std: 0.1 } },
      { role: 'hada_w1_b', shape: [rank, inner], init: { kind: 'normal', std: 1 } },
      { role: 'hada_w2_a', shape: [out, rank], init: { kind: 'zeros' } },
      { role: 'hada_w2_b', shape: [rank, inner], init: { kind: 'normal', std: 1 } },
    ];
  },
  forward: (inputs) =>
    add(
      frozenLayer(inputs, inputs.x, true),
      mul(frozenLayer(inputs, inputs.dropped, false, hadamardDelta(inputs)), inputs.scale),
    ),
  weightShape: (tensors) => [tensors['hada_w1_a']!.shape[0]!, tensors['hada_w1_b']!.shape[1]!],
  rank: (tensors) => tensors['hada_w1_b']?.shape[0] ?? 0,
  checkShapes,
  merge(weight, _shape, module, scale, multiplier) {
    const first = product(module['hada_w1_a']!, module['hada_w1_b']!);
    const second = product(module['hada_w2_a']!, module['hada_w2_b']!);
    if (first.length !== weight.length) {
      throw new AdapterError(
        'E_MERGE_MISMATCH',
        `the LoHa update has ${first.length} values, which does not fit a weight of ${weight.length}`,
      );
    }
    for (let i = 0; i < weight.length; i++) weight[i]! += multiplier * scale * first[i]! * second[i]!;
  },
};
