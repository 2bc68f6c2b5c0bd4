import { createRng } from '@lora/dataset';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkGradients,
  GRADCHECK_TOLERANCE,
  type GradCheckCase,
  type GradCheckResult,
} from '../../autodiff/gradcheck.ts';
import { hostTensor } from '../../host-tensor.ts';
import { loadGraph, runGraph, valuesOf } from '../../testing.ts';
import { Graph, type Tensor } from '../graph.ts';
import {
  crossEntropy,
  gelu,
  geluTanh,
  mseLoss,
  quickGelu,
  rmsNorm,
  rope,
  ropeInverseFrequencies,
  ropeTables,
  scaledDotProductAttention,
  silu,
} from './composite.ts';
import { add, mul } from './elementwise.ts';
import { reshape, transpose } from './layout.ts';
import { matmul } from './linalg.ts';
import { conv, groupNorm } from './nn.ts';

const rng = createRng(7);
const random = (n: number) => Array.from({ length: n }, () => -2 + 4 * rng.next());

/** erf by Abramowitz–Stegun 7.1.26 is too coarse for 1e-6; use the series, fine for |x| ≤ 3. */
function erfRef(x: number): number {
  let sum = 0;
  let term = x;
  for (let n = 0; n < 60; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
const sigmoidRef = (x: number) => 1 / (1 + Math.exp(-x));

describe('composite layers match their reference formulas', () => {
  it.each([
    ['silu', silu, (x: number) => x * sigmoidRef(x), 'float64', 1e-12],
    ['gelu', gelu, (x: number) => 0.5 * x * (1 + erfRef(x / Math.SQRT2)), 'float32', 1e-6],
    [
      'geluTanh',
      geluTanh,
      (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
      'float64',
      1e-12,
    ],
    ['quickGelu', quickGelu, (x: number) => x * sigmoidRef(1.702 * x), 'float64', 1e-12],
  ] as const)('%s', async (_, layer, reference, dtype, tolerance) => {
    const values = random(16);
    const graph = new Graph();
    graph.output(layer(graph.input('x', dtype, [16])), 'y');
    const data = dtype === 'float64' ? Float64Array.from(values) : Float32Array.from(values);
    const out = await runGraph(graph, { x: { dtype, shape: [16], data } });
    valuesOf(out['y']).forEach((v, i) => {
      expect(v).toBeCloseTo(reference(data[i]!), -Math.log10(tolerance));
    });
  });

  it('rmsNorm divides by the root mean square and scales', async () => {
    const x = random(6);
    const w = [0.5, 1, 2];
    const graph = new Graph();
    graph.output(rmsNorm(graph.input('x', 'float64', [2, 3]), graph.constant(w, 'float64'), 1e-6), 'y');
    const out = valuesOf(
      (await runGraph(graph, { x: hostTensor('float64', [2, 3], Float64Array.from(x)) }))['y'],
    );
    for (let r = 0; r < 2; r++) {
      const row = x.slice(3 * r, 3 * r + 3);
      const rms = Math.sqrt(row.reduce((s, v) => s + v * v, 0) / 3 + 1e-6);
      row.forEach((v, i) => {
        expect(out[3 * r + i]).toBeCloseTo((v / rms) * w[i]!, 12);
      });
    }
  });

  it('rope rotates pairs (i, i + d/2) by position · θ^(−2i/d)', async () => {
    const d = 4;
    const x = random(3 * d);
    const graph = new Graph();
    const positions = graph.constant([0, 1, 5], 'int64');
    const { cos, sin } = ropeTables(positions, ropeInverseFrequencies(d, 10000), 'float64');
    graph.output(rope(graph.input('x', 'float64', [3, d]), cos, sin), 'y');
    const out = valuesOf(
      (await runGraph(graph, { x: hostTensor('float64', [3, d], Float64Array.from(x)) }))['y'],
    );
    [0, 1, 5].forEach((p, s) => {
      for (let i = 0; i < d / 2; i++) {
        const angle = p / 10000 ** ((2 * i) / d);
        const [a, b] = [x[s * d + i]!, x[s * d + i + d / 2]!];
        // The tables are computed in float32, as transformers does.
        expect(out[s * d + i]).toBeCloseTo(a * Math.cos(angle) - b * Math.sin(angle), 6);
        expect(out[s * d + i + d / 2]).toBeCloseTo(b * Math.cos(angle) + a * Math.sin(angle), 6);
      }
    });
  });

  it('causal attention ignores later keys', async () => {
    const [s, d] = [3, 2];
    const [q, k, v] = [random(s * d), random(s * d), random(s * d)];
    const graph = new Graph();
    const [tq, tk, tv] = ['q', 'k', 'v'].map((n) => graph.input(n, 'float64', [1, 1, s, d]));
    graph.output(scaledDotProductAttention(tq!, tk!, tv!, { causal: true }), 'y');
    const feed = (values: number[]) => hostTensor('float64', [1, 1, s, d], Float64Array.from(values));
    const out = valuesOf((await runGraph(graph, { q: feed(q), k: feed(k), v: feed(v) }))['y']);
    for (let i = 0; i < s; i++) {
      const scores = Array.from(
        { length: i + 1 },
        (_, j) => (q[i * d]! * k[j * d]! + q[i * d + 1]! * k[j * d + 1]!) / Math.sqrt(d),
      );
      const max = Math.max(...scores);
      const weights = scores.map((z) => Math.exp(z - max));
      const total = weights.reduce((a, b) => a + b, 0);
      for (let c = 0; c < d; c++) {
        const expected = weights.reduce((acc, w, j) => acc + (w / total) * v[j * d + c]!, 0);
        expect(out[i * d + c]).toBeCloseTo(expected, 12);
      }
    }
  });

  it('attention in query chunks gives the whole attention: causal, masked, uneven last chunk', async () => {
    const [s, d] = [7, 3];
    const values = { q: random(2 * s * d), k: random(2 * s * d), v: random(2 * s * d), m: random(s * s) };
    const build = (queryChunk?: number) => {
      const graph = new Graph();
      const [q, k, v] = ['q', 'k', 'v'].map((n) => graph.input(n, 'float64', [1, 2, s, d]));
      const mask = graph.input('m', 'float64', [1, 1, s, s]);
      const options = { causal: true, mask, ...(queryChunk ? { queryChunk } : {}) };
      graph.output(scaledDotProductAttention(q!, k!, v!, options), 'y');
      return graph;
    };
    const feeds = {
      ...Object.fromEntries(
        (['q', 'k', 'v'] as const).map((n) => [
          n,
          hostTensor('float64', [1, 2, s, d], Float64Array.from(values[n])),
        ]),
      ),
      m: hostTensor('float64', [1, 1, s, s], Float64Array.from(values.m)),
    };
    const whole = valuesOf((await runGraph(build(), feeds))['y']);
    const chunked = build(3);
    expect(chunked.checkpoints.length).toBe(3);
    const inChunks = valuesOf((await runGraph(chunked, feeds))['y']);
    inChunks.forEach((x, i) => {
      expect(x).toBeCloseTo(whole[i]!, 14);
    });
  });

  it('crossEntropy averages −log p(label) over labels that are not ignored', async () => {
    const logits = random(3 * 4);
    const labels = [2, -100, 0];
    const graph = new Graph();
    graph.output(crossEntropy(graph.input('z', 'float64', [3, 4]), graph.constant(labels, 'int64')), 'loss');
    const out = valuesOf(
      (await runGraph(graph, { z: hostTensor('float64', [3, 4], Float64Array.from(logits)) }))['loss'],
    );
    const nll = (row: number, label: number) => {
      const z = logits.slice(row * 4, row * 4 + 4);
      return Math.log(z.reduce((s, v) => s + Math.exp(v), 0)) - z[label]!;
    };
    expect(out[0]).toBeCloseTo((nll(0, 2) + nll(2, 0)) / 2, 12);
  });

  it('crossEntropy with every label ignored is 0, not NaN', async () => {
    const graph = new Graph();
    graph.output(
      crossEntropy(graph.constant([1, 2], 'float32', [1, 2]), graph.constant([-100], 'int64')),
      'loss',
    );
    expect(Math.abs(valuesOf((await runGraph(graph))['loss'])[0]!)).toBe(0);
  });

  it('mseLoss is the mean squared difference', async () => {
    const graph = new Graph();
    graph.output(mseLoss(graph.constant([1, 2, 3], 'float64'), graph.constant([1, 0, 6], 'float64')), 'loss');
    expect(valuesOf((await runGraph(graph))['loss'])).toEqual([13 / 3]);
  });
});

const linear = (x: Tensor, w: Tensor) => matmul(x, transpose(w));
const heads = (x: Tensor) => transpose(reshape(x, [0, 0, 2, 2]), [0, 2, 1, 3]);

const composites: GradCheckCase[] = [
  { name: 'SiLU', dtype: 'float64', inputs: { x: { shape: [5] } }, build: ({ x }) => silu(x!) },
  { name: 'GELU', dtype: 'float32', inputs: { x: { shape: [5] } }, build: ({ x }) => gelu(x!) },
  { name: 'GELU tanh', dtype: 'float64', inputs: { x: { shape: [5] } }, build: ({ x }) => geluTanh(x!) },
  { name: 'QuickGELU', dtype: 'float64', inputs: { x: { shape: [5] } }, build: ({ x }) => quickGelu(x!) },
  {
    name: 'RMSNorm',
    dtype: 'float64',
    inputs: { x: { shape: [2, 4] }, w: { shape: [4] } },
    build: ({ x, w }) => rmsNorm(x!, w!),
  },
  {
    name: 'RoPE',
    dtype: 'float64',
    inputs: { x: { shape: [1, 2, 3, 4] }, p: { shape: [3], dtype: 'int64', values: [0, 1, 2] } },
    build: ({ x, p }) => {
      const { cos, sin } = ropeTables(p!, ropeInverseFrequencies(4, 10000), 'float64');
      return rope(x!, cos, sin);
    },
  },
  {
    name: 'Attention causal',
    dtype: 'float64',
    inputs: { q: { shape: [1, 2, 3, 2] }, k: { shape: [1, 2, 3, 2] }, v: { shape: [1, 2, 3, 2] } },
    build: ({ q, k, v }) => scaledDotProductAttention(q!, k!, v!, { causal: true }),
  },
  {
    name: 'Attention in query chunks, causal, masked',
    dtype: 'float64',
    inputs: {
      q: { shape: [1, 2, 5, 2] },
      k: { shape: [1, 2, 5, 2] },
      v: { shape: [1, 2, 5, 3] },
      m: { shape: [1, 1, 5, 5] },
    },
    build: ({ q, k, v, m }) =>
      scaledDotProductAttention(q!, k!, v!, { causal: true, mask: m!, queryChunk: 2 }),
  },
  {
    name: 'Cross-attention in query chunks',
    dtype: 'float64',
    inputs: { q: { shape: [2, 1, 5, 2] }, k: { shape: [2, 1, 3, 2] }, v: { shape: [2, 1, 3, 2] } },
    build: ({ q, k, v }) => scaledDotProductAttention(q!, k!, v!, { queryChunk: 3 }),
  },
  {
    name: 'CrossEntropy ignore index',
    dtype: 'float64',
    inputs: { z: { shape: [4, 5] }, y: { shape: [4], dtype: 'int64', values: [1, -100, 4, 0] } },
    build: ({ z, y }) => crossEntropy(z!, y!),
  },
  {
    name: 'MSE',
    dtype: 'float64',
    inputs: { a: { shape: [2, 3] }, b: { shape: [2, 3] } },
    build: ({ a, b }) => mseLoss(a!, b!),
  },
  {
    name: 'Attention block (proj, RoPE, causal SDPA, residual)',
    dtype: 'float64',
    inputs: {
      x: { shape: [1, 3, 4] },
      wq: { shape: [4, 4] },
      wk: { shape: [4, 4] },
      wv: { shape: [4, 4] },
      wo: { shape: [4, 4] },
      norm: { shape: [4] },
      p: { shape: [3], dtype: 'int64', values: [0, 1, 2] },
    },
    build: ({ x, wq, wk, wv, wo, norm, p }) => {
      const h = rmsNorm(x!, norm!);
      const { cos, sin } = ropeTables(p!, ropeInverseFrequencies(2, 10000), 'float64');
      const q = rope(heads(linear(h, wq!)), cos, sin);
      const k = rope(heads(linear(h, wk!)), cos, sin);
      const attended = scaledDotProductAttention(q, k, heads(linear(h, wv!)), { causal: true });
      return add(x!, linear(reshape(transpose(attended, [0, 2, 1, 3]), [0, 0, 4]), wo!));
    },
  },
  {
    name: 'GroupNorm + SiLU + Conv block',
    dtype: 'float32',
    inputs: { x: { shape: [1, 4, 4, 4] }, s: { shape: [4] }, b: { shape: [4] }, w: { shape: [2, 4, 3, 3] } },
    build: ({ x, s, b, w }) => conv(silu(groupNorm(x!, s!, b!, 2)), w!, undefined, { pads: [1, 1, 1, 1] }),
  },
  {
    name: 'Cross-entropy head (RMSNorm, LM head)',
    dtype: 'float64',
    inputs: {
      h: { shape: [1, 3, 4] },
      norm: { shape: [4] },
      head: { shape: [6, 4] },
      y: { shape: [1, 3], dtype: 'int64', values: [5, 0, -100] },
    },
    build: ({ h, norm, head, y }) => crossEntropy(mul(linear(rmsNorm(h!, norm!), head!), 1), y!),
  },
];

const results: GradCheckResult[] = [];

describe('composites against central finite differences', () => {
  it.each(composites.map((c) => [c.name, c] as const))('%s', async (_, spec) => {
    const result = await checkGradients(spec, loadGraph);
    results.push(result);
    expect(result.maxRelError).toBeLessThan(GRADCHECK_TOLERANCE[spec.dtype]);
  });
});

afterAll(() => {
  console.log(
    `max relative error per composite\n${results
      .map(
        (r) =>
          `  ${r.name.padEnd(52)} ${r.dtype}  ${r.maxRelError.toExponential(2)}  (${r.checked} elements)`,
      )
      .join('\n')}`,
  );
});
