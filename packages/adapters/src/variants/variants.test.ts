import { readFileSync } from 'node:fs';
import { add, Graph, gradients, hostTensor, mul, reduceSum } from '@lora/engine';
import { runGraph, valuesOf } from '@lora/engine/testing';
import { describe, expect, it } from 'vitest';
import { adaptLayer } from './layer.ts';
import { VARIANTS, type VariantId } from './registry.ts';
import type { NormAxis } from './variant.ts';

interface Values {
  shape: number[];
  data: number[];
}
interface GoldenCase {
  name: string;
  kind: 'linear' | 'conv';
  variant: VariantId;
  axis?: NormAxis;
  rank: number;
  alpha: number;
  rslora: boolean;
  x: Values;
  weight: Values;
  bias: Values;
  r: Values;
  parameters: Record<string, Values>;
  y: number[];
  loss: number;
  grads: Record<string, number[]>;
  multiplier: number;
  merged: number[];
}

/** tools/golden/variants_reference.py: PyTorch applying each variant's merged weight. */
const golden = JSON.parse(readFileSync(new URL('./__fixtures__/variants.json', import.meta.url), 'utf8')) as {
  cases: GoldenCase[];
};

/** max |a − b| / max |b|. */
function relativeError(actual: readonly number[], expected: readonly number[]): number {
  expect(actual).toHaveLength(expected.length);
  const largest = Math.max(...expected.map(Math.abs), 1e-30);
  return Math.max(...actual.map((a, i) => Math.abs(a - expected[i]!))) / largest;
}

const options = (c: GoldenCase) => ({
  network: c.variant,
  rank: c.rank,
  alpha: c.alpha,
  rslora: c.rslora,
  ...(c.axis ? { normAxis: c.axis } : {}),
});

describe.each(golden.cases)('$name', (c) => {
  // onnxruntime's CPU provider has no float64 Conv: convolutions compute in float32.
  const dtype = c.kind === 'conv' ? 'float32' : 'float64';
  const tolerance = c.kind === 'conv' ? 1e-4 : 1e-5;

  it('matches PyTorch: output, loss and the gradients toward every trainable tensor', async () => {
    const graph = new Graph('variant');
    const x = graph.input('x', dtype, c.x.shape);
    const layer = adaptLayer(x, graph.constant(c.weight.data, dtype, c.weight.shape), 'layer', options(c), {
      bias: graph.constant(c.bias.data, dtype, c.bias.shape),
      ...(c.kind === 'conv' ? { conv: { pads: [1, 1, 1, 1] } } : {}),
    });
    expect(layer.parameters.map((p) => [p.role, p.shape])).toEqual(
      Object.entries(c.parameters).map(([role, v]) => [role, v.shape]),
    );
    graph.output(layer.output, 'y');
    const loss = graph.output(
      reduceSum(mul(layer.output, graph.constant(c.r.data, dtype, c.r.shape))),
      'loss',
    );
    const grads = gradients(
      loss,
      layer.parameters.map((p) => p.tensor),
    );
    grads.forEach((g, i) => {
      graph.output(g, `grad_${layer.parameters[i]!.role}`);
    });
    const out = await runGraph(graph, {
      x:
        dtype === 'float64'
          ? hostTensor('float64', c.x.shape, Float64Array.from(c.x.data))
          : hostTensor('float32', c.x.shape, Float32Array.from(c.x.data)),
      ...Object.fromEntries(
        layer.parameters.map((p) => [
          p.name,
          hostTensor('float32', p.shape, Float32Array.from(c.parameters[p.role]!.data)),
        ]),
      ),
    });
    // Parameters travel as float32: their rounding (~6e-8) bounds the agreement.
    expect(relativeError(valuesOf(out['y']), c.y)).toBeLessThan(tolerance / 10);
    expect(Math.abs(valuesOf(out['loss'])[0]! - c.loss) / Math.abs(c.loss)).toBeLessThan(tolerance / 10);
    for (const p of layer.parameters) {
      expect(relativeError(valuesOf(out[`grad_${p.role}`]), c.grads[p.role]!), p.role).toBeLessThan(
        tolerance,
      );
    }
  });

  it("merges as A1111 and ComfyUI do: W + multiplier · (W' − W)", () => {
    const weight = Float64Array.from(c.weight.data);
    const values = Object.fromEntries(
      Object.entries(c.parameters).map(([role, v]) => [
        role,
        { shape: v.shape, data: Float32Array.from(v.data) },
      ]),
    );
    const variant = VARIANTS[c.variant];
    const scale = variant.scale?.(values, c.alpha) ?? c.alpha / (c.rslora ? Math.sqrt(c.rank) : c.rank);
    variant.merge(weight, c.weight.shape, values, scale, c.multiplier);
    expect(relativeError([...weight], c.merged)).toBeLessThan(1e-6);
  });
});

describe('dora', () => {
  it.each(['output', 'input'] as const)(
    'starts as the base layer (per %s): up zero, magnitude the base norm, with dropout on',
    async (normAxis) => {
      const graph = new Graph('start');
      const x = graph.input('x', 'float32', [3, 4]);
      const w = [0.5, -1, 2, 0.25, 1, 1, -0.5, 3, 0, 2, 1, -1];
      const weight = graph.constant(w, 'float32', [3, 4]);
      const layer = adaptLayer(x, weight, 'fc', {
        network: 'dora',
        rank: 2,
        alpha: 2,
        normAxis,
        dropout: 0.5,
      });
      graph.output(layer.output, 'y');
      graph.output(add(layer.output, 0), 'unused');
      const rows = [0, 1, 2].map((o) => w.slice(o * 4, o * 4 + 4));
      const magnitude =
        normAxis === 'output'
          ? rows.map((row) => Math.hypot(...row))
          : [0, 1, 2, 3].map((j) => Math.hypot(...rows.map((row) => row[j]!)));
      const xs = [1, 2, 3, 4, -1, 0, 1, 2, 0.5, 0.5, -2, 1];
      const feeds = {
        x: hostTensor('float32', [3, 4], Float32Array.from(xs)),
        lora_dropout_seed: hostTensor('int64', [], BigInt64Array.of(7n)),
        'fc.lora_A.weight': hostTensor(
          'float32',
          [2, 4],
          Float32Array.from({ length: 8 }, (_, i) => i / 8 - 0.4),
        ),
        'fc.lora_B.weight': hostTensor('float32', [3, 2], new Float32Array(6)),
        'fc.lora_magnitude_vector': hostTensor(
          'float32',
          layer.parameters[2]!.shape,
          Float32Array.from(magnitude),
        ),
      };
      const y = valuesOf((await runGraph(graph, feeds))['y']);
      const expected = [0, 1, 2].flatMap((n) =>
        rows.map((row) => row.reduce((sum, wi, i) => sum + wi * xs[n * 4 + i]!, 0)),
      );
      y.forEach((v, i) => {
        expect(v).toBeCloseTo(expected[i]!, 5);
      });
    },
  );
});
