/**
 * LoKr (LyCORIS's Kronecker product): `ΔW = w1 ⊗ w2`, `w1` `[out_l, in_m]` the small factor and
 * `w2` `[out_k, in_n(, k…)]`, out = out_l · out_k and in = in_m · in_n split by LyCORIS's
 * `factorization`. Either factor may be a low-rank pair (`lokr_w1_a @ lokr_w1_b`, `lokr_w2_a @ lokr_w2_b`, a
 * convolution's kernel flattened into `lokr_w2_b`); trained here as LyCORIS does by default: `lokr_w1` full,
 * `lokr_w2` as a pair when the rank is under half its larger side, else full. Starts with `w2` (or
 * `lokr_w2_b`) zero. Scale alpha / r with r the rows of `lokr_w2_b` (else of `lokr_w1_b`); with both factors full,
 * alpha is ignored and the scale is 1, as A1111, ComfyUI and LyCORIS read it.
 * Merge: `W + multiplier · scale · ΔW`.
 */
import { add, matmul, mul, reshape, type Tensor } from '@lora/engine';
import type { TensorData } from '@lora/safetensors';
import { AdapterError } from '../errors.ts';
import { frozenLayer } from './low-rank.ts';
import type { LayerInputs, ModuleValues, Variant } from './variant.ts';

/**
 * LyCORIS's `factorization(dimension, factor = -1)`: the divisor pair (m ≤ n) with the smallest
 * sum, so 128 → (8, 16), 320 → (16, 20), 127 → (1, 127).
 */
export function factorization(dimension: number): [number, number] {
  let [m, n] = [1, dimension];
  while (m < n) {
    let next = m + 1;
    while (dimension % next !== 0) next++;
    const pair = dimension / next;
    if (next + pair > m + n) break;
    [m, n] = [next, pair];
  }
  return m > n ? [n, m] : [m, n];
}

/** A factor's value: full, or its low-rank pair's product, as `[rows, columns]`. */
function factor(full: Tensor | undefined, a: Tensor | undefined, b: Tensor | undefined): Tensor {
  return full ? reshape(full, [full.shape[0] as number, -1]) : matmul(a!, b!);
}

/** ΔW = w1 ⊗ w2 in the frozen weight's shape. */
function kronDelta(inputs: LayerInputs): Tensor {
  const p = inputs.parameters;
  const w1 = factor(p['lokr_w1'], p['lokr_w1_a'], p['lokr_w1_b']);
  const w2 = factor(p['lokr_w2'], p['lokr_w2_a'], p['lokr_w2_b']);
  const [outL, inM] = w1.shape as [number, number];
  const [out, inputs_, ...kernel] = inputs.weight.shape as number[];
  const [outK, inN] = [out! / outL, inputs_! / inM];
  const k = kernel.reduce((a, b) => a * b, 1);
  // kron[(i·outK + p), (j·inN + q), kernel] = w1[i, j] · w2[p, q, kernel].
  const product = mul(reshape(w1, [outL, 1, inM, 1, 1]), reshape(w2, [1, outK, 1, inN, k]));
  return reshape(product, inputs.weight.shape as number[]);
}

/** `a @ b` for row-major `[m, r]` and `[r, n]`, or a full factor as it is. */
function hostFactor(module: ModuleValues, name: 'lokr_w1' | 'lokr_w2'): { rows: number; data: Float64Array } {
  const full = module[name];
  if (full) return { rows: full.shape[0]!, data: Float64Array.from(full.data) };
  const a = module[`${name}_a`]!;
  const b = module[`${name}_b`]!;
  const [m, r] = a.shape as [number, number];
  const n = b.data.length / r;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < r; t++) {
      const x = a.data[i * r + t]!;
      for (let j = 0; j < n; j++) out[i * n + j]! += x * b.data[t * n + j]!;
    }
  }
  return { rows: m, data: out };
}

function merge(
  weight: Float32Array | Float64Array,
  weightShape: readonly number[],
  module: ModuleValues,
  scale: number,
  multiplier: number,
): void {
  const w1 = hostFactor(module, 'lokr_w1');
  const w2 = hostFactor(module, 'lokr_w2');
  const [out, inputs] = weightShape as [number, number];
  const k = weight.length / (out * inputs);
  const [outL, outK] = [w1.rows, w2.rows];
  const [inM, inN] = [w1.data.length / outL, w2.data.length / outK / k];
  if (outL * outK !== out || inM * inN !== inputs) {
    throw new AdapterError(
      'E_MERGE_MISMATCH',
      `the LoKr factors [${outL}, ${inM}] ⊗ [${outK}, ${inN}] do not make a [${out}, ${inputs}] weight`,
    );
  }
  for (let i = 0; i < outL; i++) {
    for (let j = 0; j < inM; j++) {
      const a = multiplier * scale * w1.data[i * inM + j]!;
      if (a === 0) continue;
      for (let p = 0; p < outK; p++) {
        for (let q = 0; q < inN; q++) {
          const target = ((i * outK + p) * inputs + (j * inN + q)) * k;
          const source = (p * inN + q) * k;
          for (let c = 0; c < k; c++) weight[target + c]! += a * w2.data[source + c]!;
        }
      }
    }
  }
}

/** Rows × columns of a factor as stored (a pair's product for `lokr_w1_a` / `lokr_w1_b`). */
function factorShape(
  t: Readonly<Record<string, { readonly shape: readonly number[] }>>,
  name: 'lokr_w1' | 'lokr_w2',
) {
  const full = t[name];
  if (full) return [full.shape[0]!, full.shape.slice(1).reduce((a, b) => a * b, 1)];
  const [a, b] = [t[`${name}_a`], t[`${name}_b`]];
  if (!a || !b || a.shape[1] !== b.shape[0]) return undefined;
  return [a.shape[0]!, b.shape.slice(1).reduce((x, y) => x * y, 1)];
}

export const lokr: Variant = {
  id: 'lokr',
  name: 'LoKr',
  roles: ['lokr_w1', 'lokr_w1_a', 'lokr_w1_b', 'lokr_w2', 'lokr_w2_a', 'lokr_w2_b'],
  forms: [
    ['lokr_w1', 'lokr_w2'],
    ['lokr_w1', 'lokr_w2_a', 'lokr_w2_b'],
    ['lokr_w1_a', 'lokr_w1_b', 'lokr_w2'],
    ['lokr_w1_a', 'lokr_w1_b', 'lokr_w2_a', 'lokr_w2_b'],
  ],
  keys: {
    kohya: {
      lokr_w1: '.lokr_w1',
      lokr_w1_a: '.lokr_w1_a',
      lokr_w1_b: '.lokr_w1_b',
      lokr_w2: '.lokr_w2',
      lokr_w2_a: '.lokr_w2_a',
      lokr_w2_b: '.lokr_w2_b',
    },
  },
  kohyaNetwork: () => ({ module: 'lycoris.kohya', args: { algo: 'lokr' } }),
  parameters: (weightShape, { rank }) => {
    const [out, inputs, ...kernel] = weightShape as [number, number, ...number[]];
    const [outL, outK] = factorization(out);
    const [inM, inN] = factorization(inputs);
    const k = kernel.reduce((a, b) => a * b, 1);
    const w1 = {
      role: 'lokr_w1',
      shape: [outL, inM],
      init: { kind: 'kaiming-uniform', fanIn: inM },
    } as const;
    if (rank >= Math.max(outK, inN) / 2) {
      return [w1, { role: 'lokr_w2', shape: [outK, inN, ...kernel], init: { kind: 'zeros' } }];
    }
    return [
      w1,
      { role: 'lokr_w2_a', shape: [outK, rank], init: { kind: 'kaiming-uniform', fanIn: rank } },
      { role: 'lokr_w2_b', shape: [rank, inN * k], init: { kind: 'zeros' } },
    ];
  },
  forward: (inputs) =>
    add(
      frozenLayer(inputs, inputs.x, true),
      mul(frozenLayer(inputs, inputs.dropped, false, kronDelta(inputs)), inputs.scale),
    ),
  weightShape: (tensors) => {
    const [w1, w2] = [factorShape(tensors, 'lokr_w1')!, factorShape(tensors, 'lokr_w2')!];
    return [w1[0]! * w2[0]!, w1[1]! * w2[1]!];
  },
  rank: (tensors) => tensors['lokr_w2_b']?.shape[0] ?? tensors['lokr_w1_b']?.shape[0] ?? 0,
  scale: (tensors, alpha) => {
    const rank = tensors['lokr_w2_b']?.shape[0] ?? tensors['lokr_w1_b']?.shape[0];
    return rank === undefined ? 1 : alpha / rank;
  },
  checkShapes(name: string, tensors: Readonly<Record<string, TensorData>>) {
    if (factorShape(tensors, 'lokr_w1') === undefined || factorShape(tensors, 'lokr_w2') === undefined) {
      const shapes = Object.entries(tensors)
        .map(([role, t]) => `${role} [${t.shape.join(', ')}]`)
        .join(', ');
      throw new AdapterError(
        'E_INVALID_LORA',
        `LoKr module ${JSON.stringify(name)} has ${shapes}; each factor must be full or a pair whose inner sizes agree`,
      );
    }
  },
  merge,
};
