import { createRng } from '@lora/dataset';
import { describe, expect, it } from 'vitest';
import { Graph, type Tensor } from '../graph/graph.ts';
import { crossEntropy, gelu, rmsNorm, scaledDotProductAttention, silu } from '../graph/ops/composite.ts';
import { add, cast, mul, tanh } from '../graph/ops/elementwise.ts';
import { castAtUse, checkpoint, stopGradient } from '../graph/ops/gradient-marks.ts';
import { concat, reshape, slice, transpose } from '../graph/ops/layout.ts';
import { matmul } from '../graph/ops/linalg.ts';
import { conv, dropout, groupNorm, layerNorm, resizeNearest } from '../graph/ops/nn.ts';
import { reduceMean, reduceSum } from '../graph/ops/reduce.ts';
import { hostTensor } from '../host-tensor.ts';
import { runGraph, valuesOf } from '../testing.ts';
import { gradients } from './gradients.ts';

const f64 = (values: number[], shape = [values.length]) =>
  hostTensor('float64', shape, Float64Array.from(values));

describe('gradients', () => {
  it('differentiates only the ops between the trainable tensors and the loss', () => {
    const graph = new Graph();
    const x = graph.input('x', 'float32', ['batch', 4]);
    const w1 = graph.initializer('w1', 'float32', [8, 4], new Uint8Array(128));
    const w2 = graph.initializer('w2', 'float32', [3, 8], new Uint8Array(96));
    const hidden = graph.scope('fc1', () => tanh(matmul(x, reshape(w1, [4, 8]))));
    // A LoRA branch around the frozen fc2: trainable down [2, 8] and up [3, 2].
    const down = graph.input('down', 'float32', [2, 8]);
    const up = graph.input('up', 'float32', [3, 2]);
    const output = graph.scope('fc2', () =>
      add(matmul(hidden, transpose(w2)), matmul(matmul(hidden, transpose(down)), transpose(up))),
    );
    const loss = reduceSum(output);
    const forward = graph.nodes.length;
    gradients(loss, [down, up]);
    const backward = graph.nodes.slice(forward);
    const differentiated = new Set(
      backward.map(
        (n) =>
          n.name
            .split('/')[0]!
            .replace(/^grad:/, '')
            .split('.')[0],
      ),
    );
    expect([...differentiated].some((name) => name?.startsWith('fc1'))).toBe(false);
    // d hidden·Aᵀ / dA, d (hidden·Aᵀ)·Bᵀ / dB and / d(hidden·Aᵀ); nothing for the frozen fc2 weight or fc1.
    expect(backward.filter((n) => n.opType === 'MatMul')).toHaveLength(3);
  });

  it('treats a stopGradient value as a constant: d(x·stop(x))/dx = x, not 2x', async () => {
    const graph = new Graph();
    const x = graph.input('x', 'float64', [3]);
    const loss = reduceSum(mul(x, stopGradient(x)));
    const [dx] = gradients(loss, [x]);
    graph.output(dx!, 'dx');
    graph.output(loss, 'loss');
    const out = await runGraph(graph, { x: f64([1, -2, 3]) });
    expect(valuesOf(out['dx'])).toEqual([1, -2, 3]);
    expect(valuesOf(out['loss'])).toEqual([14]);
  });

  it('sums the gradients of a tensor used several times', async () => {
    const graph = new Graph();
    const x = graph.input('x', 'float64', [3]);
    const y = reduceSum(add(mul(x, x), x));
    graph.output(gradients(y, [x])[0]!, 'dx');
    expect(valuesOf((await runGraph(graph, { x: f64([1, 2, -3]) }))['dx'])).toEqual([3, 5, -5]);
  });

  it('gives zeros for a tensor the loss does not depend on', async () => {
    const graph = new Graph();
    const [x, unused] = [graph.input('x', 'float64', [2]), graph.input('u', 'float64', ['n'])];
    const [dx, du] = gradients(reduceSum(mul(x, 3)), [x, unused]);
    graph.output(dx!, 'dx');
    graph.output(du!, 'du');
    const out = await runGraph(graph, { x: f64([1, 2]), u: f64([7, 7, 7]) });
    expect(valuesOf(out['dx'])).toEqual([3, 3]);
    expect(valuesOf(out['du'])).toEqual([0, 0, 0]);
  });

  it('recomputes a checkpointed block in the backward pass: the same gradients, and no forward activation kept', async () => {
    // Three blocks h ↦ t · t, t = tanh(h·W + h·Aᵀ), with a trainable A each, with and without checkpoints.
    const build = (checkpointed: boolean) => {
      const graph = new Graph();
      let h = graph.input('x', 'float64', ['batch', 4]);
      const params = [0, 1, 2].map((k) => graph.input(`a${k}`, 'float64', [4, 4]));
      const inner: Tensor[] = [];
      params.forEach((a, k) => {
        const w = graph.constant(
          Array.from({ length: 16 }, (_, i) => Math.cos(i + k) / 2),
          'float64',
          [4, 4],
        );
        const block = (x: Tensor) => {
          const t = tanh(add(matmul(x, w), matmul(x, transpose(a))));
          inner.push(t);
          return mul(t, t);
        };
        h = checkpointed ? checkpoint(h, block) : block(h);
      });
      const loss = reduceSum(mul(h, h));
      const forwardNodes = graph.nodes.length;
      for (const [k, g] of gradients(loss, params).entries()) graph.output(g, `g${k}`);
      graph.output(loss, 'loss');
      return { graph, inner, backward: graph.nodes.slice(forwardNodes) };
    };
    const feeds = {
      x: f64([0.5, -1, 2, 0.25, 1, 0, -0.5, 3], [2, 4]),
      ...Object.fromEntries(
        [0, 1, 2].map((k) => [
          `a${k}`,
          f64(
            Array.from({ length: 16 }, (_, i) => Math.sin(i * (k + 1)) / 3),
            [4, 4],
          ),
        ]),
      ),
    };
    const plain = build(false);
    const checkpointed = build(true);
    const [want, got] = [await runGraph(plain.graph, feeds), await runGraph(checkpointed.graph, feeds)];
    for (const name of ['loss', 'g0', 'g1', 'g2']) {
      valuesOf(got[name]).forEach((v, i) => {
        expect(v).toBeCloseTo(valuesOf(want[name])[i]!, 12);
      });
    }
    // Without checkpoints the backward pass reads the blocks' inner activations; with them, only their twins.
    const reads = (
      backward: readonly { inputs: readonly (Tensor | undefined)[] }[],
      inner: readonly Tensor[],
    ) => backward.some((node) => node.inputs.some((t) => t !== undefined && inner.includes(t)));
    expect(reads(plain.backward, plain.inner)).toBe(true);
    expect(reads(checkpointed.backward, checkpointed.inner)).toBe(false);
  });

  it('recomputes nested checkpoints: the outer block runs the inner ones forward, each inner block recomputes again for its rules', async () => {
    // Two outer blocks, each tanh(h·W + h·Aᵀ) then two inner blocks of the same form; every layer has a trainable A.
    const build = (checkpointed: boolean) => {
      const graph = new Graph();
      const params: Tensor[] = [];
      const layer = (x: Tensor) => {
        const k = params.length;
        const a = graph.input(`a${k}`, 'float64', [4, 4]);
        params.push(a);
        const w = graph.constant(
          Array.from({ length: 16 }, (_, i) => Math.cos(i + k) / 2),
          'float64',
          [4, 4],
        );
        const t = tanh(add(matmul(x, w), matmul(x, transpose(a))));
        return mul(t, t);
      };
      const maybe = (x: Tensor, block: (x: Tensor) => Tensor) =>
        checkpointed ? checkpoint(x, block) : block(x);
      let h = graph.input('x', 'float64', ['batch', 4]);
      for (let outer = 0; outer < 2; outer++) {
        h = maybe(h, (x) => maybe(maybe(layer(x), layer), layer));
      }
      const loss = reduceSum(mul(h, h));
      const forwardNodes = graph.nodes.length;
      for (const [k, g] of gradients(loss, params).entries()) graph.output(g, `g${k}`);
      graph.output(loss, 'loss');
      const tanhs = graph.nodes.slice(forwardNodes).filter((n) => n.opType === 'Tanh').length;
      return { graph, tanhs };
    };
    const plain = build(false);
    const nested = build(true);
    const feeds = {
      x: f64([0.5, -1, 2, 0.25, 1, 0, -0.5, 3], [2, 4]),
      ...Object.fromEntries(
        [0, 1, 2, 3, 4, 5].map((k) => [
          `a${k}`,
          f64(
            Array.from({ length: 16 }, (_, i) => Math.sin(i * (k + 1)) / 3),
            [4, 4],
          ),
        ]),
      ),
    };
    const [want, got] = [await runGraph(plain.graph, feeds), await runGraph(nested.graph, feeds)];
    for (const name of ['loss', 'g0', 'g1', 'g2', 'g3', 'g4', 'g5']) {
      valuesOf(got[name]).forEach((v, i) => {
        expect(v).toBeCloseTo(valuesOf(want[name])[i]!, 12);
      });
    }
    // tanh's rule reads its output, so no Tanh runs backward without checkpoints. With them, per
    // outer block: its own layer once (outer recomputation), the first inner layer twice (forward
    // in the outer recomputation, to give the second its input; then its own), the second inner
    // layer once (its own: the outer recomputation's copy gives only the outer output, which no
    // rule reads, so it is dropped).
    expect(plain.tanhs).toBe(0);
    expect(nested.tanhs).toBe(2 * (1 + 2 + 1));
  });

  it("takes a strided convolution's weight gradient with a named batch dim (the spatial dims decide the crop)", async () => {
    // SD's downsampler: 3×3, stride 2, padding 1 on an 8×8 input; the correlation gives 4×4 before the crop.
    const build = (batch: number | string) => {
      const graph = new Graph();
      const x = graph.input('x', 'float32', [batch, 2, 8, 8]);
      const w = graph.input('w', 'float32', [3, 2, 3, 3]);
      const y = conv(x, w, undefined, { strides: [2, 2], pads: [1, 1, 1, 1] });
      const [dw] = gradients(reduceSum(mul(y, y)), [w]);
      graph.output(dw!, 'dw');
      return graph;
    };
    const feeds = {
      x: hostTensor(
        'float32',
        [1, 2, 8, 8],
        Float32Array.from({ length: 128 }, (_, i) => Math.sin(i)),
      ),
      w: hostTensor(
        'float32',
        [3, 2, 3, 3],
        Float32Array.from({ length: 54 }, (_, i) => Math.cos(i) / 4),
      ),
    };
    const named = valuesOf((await runGraph(build('batch'), feeds))['dw']);
    const fixed = valuesOf((await runGraph(build(1), feeds))['dw']);
    expect(named).toHaveLength(54);
    named.forEach((v, i) => {
      expect(v).toBeCloseTo(fixed[i]!, 5);
    });
  });

  it('starts from a given seed for a non-scalar output', async () => {
    const graph = new Graph();
    const x = graph.input('x', 'float64', [2]);
    const seed = graph.constant([10, 100], 'float64');
    graph.output(gradients(mul(x, x), [x], { seed })[0]!, 'dx');
    expect(valuesOf((await runGraph(graph, { x: f64([1, 2]) }))['dx'])).toEqual([20, 400]);
  });

  it('works with named dims (runtime shapes in Reshape, ReduceMean, Concat gradients)', async () => {
    const build = (rows: number | string) => {
      const graph = new Graph();
      const x = graph.input('x', 'float64', [rows, 2]);
      const w = graph.input('w', 'float64', [2, 3]);
      const h = matmul(reshape(x, [1, -1, 2]), w);
      const joined = concat([h, mul(h, h)], 1);
      graph.output(gradients(reduceMean(mul(joined, joined)), [x, w])[0]!, 'dx');
      return graph;
    };
    const feeds = { x: f64([1, 2, 3, 4, 5, 6], [3, 2]), w: f64([0.1, 0.2, 0.3, -0.1, 0.5, 1], [2, 3]) };
    const named = valuesOf((await runGraph(build('rows'), feeds))['dx']);
    const fixed = valuesOf((await runGraph(build(3), feeds))['dx']);
    expect(named).toHaveLength(6);
    named.forEach((v, i) => {
      expect(v).toBeCloseTo(fixed[i]!, 12);
    });
  });

  it.each<[string, (x: Tensor) => Tensor, string, RegExp]>([
    [
      'an op without a rule',
      (x) => x.graph.addNode('Cos', [x], [{ dtype: x.dtype, shape: x.shape }])[0]!,
      'E_NO_GRADIENT_RULE',
      /Cos Cos_\d+.*no entry in the VJP table/,
    ],
    [
      'a contrib op whose default-domain namesake has a rule',
      (x) =>
        x.graph.addNode(
          'Sigmoid',
          [x],
          [{ dtype: x.dtype, shape: x.shape }],
          {},
          undefined,
          'com.microsoft',
        )[0]!,
      'E_NO_GRADIENT_RULE',
      /com\.microsoft\.Sigmoid Sigmoid_\d+.*no entry in the VJP table/,
    ],
    [
      'a strided slice',
      (x) => slice(x, { starts: [0], ends: [4], steps: [2] }),
      'E_GRADIENT_UNSUPPORTED',
      /step ≠ 1/,
    ],
  ])('refuses %s on the path', (_, op, code, message) => {
    const graph = new Graph();
    const x = graph.input('x', 'float32', [4]);
    expect(() => gradients(reduceSum(op(x)), [x])).toThrow(
      expect.objectContaining({ code, message: expect.stringMatching(message) }),
    );
  });

  it('passes the gradient through dropout where the mask kept the element, scaled by 1/(1−p)', async () => {
    const n = 1000;
    const graph = new Graph();
    const x = graph.input('x', 'float32', [n]);
    const w = graph.input('w', 'float32', [n]);
    const { output, mask } = dropout(x, 0.5);
    graph.output(output, 'y');
    graph.output(mask, 'mask');
    graph.output(gradients(reduceSum(mul(output, w)), [x])[0]!, 'dx');
    const values = Float32Array.from({ length: n }, (_, i) => (i % 7) + 1);
    const out = await runGraph(graph, {
      x: hostTensor('float32', [n], values),
      w: hostTensor('float32', [n], values),
    });
    const kept = valuesOf(out['mask']);
    const dx = valuesOf(out['dx']);
    const y = valuesOf(out['y']);
    const fraction = kept.reduce((a, b) => a + b, 0) / n;
    expect(fraction).toBeGreaterThan(0.4);
    expect(fraction).toBeLessThan(0.6);
    kept.forEach((k, i) => {
      expect(dx[i]).toBe(k ? 2 * values[i]! : 0);
      expect(y[i]).toBe(k ? 2 * values[i]! : 0);
    });
  });

  it('converts a half-precision weight at each use, and again where the backward pass reads it', async () => {
    // h = x·W1ᵀ + x·Aᵀ, y = tanh(h)·W2ᵀ, loss = Σ y²: dA needs W2 in the backward pass.
    const w = (k: number) => Array.from({ length: 16 }, (_, i) => Math.round(64 * Math.cos(i + k)) / 128);
    const build = (atUse: boolean) => {
      const graph = new Graph();
      const x = graph.input('x', 'float32', ['batch', 4]);
      const a = graph.input('a', 'float32', [4, 4]);
      const [w1, w2] = [1, 2].map((k) => graph.constant(w(k), 'float16', [4, 4]));
      const convert = (weight: Tensor, anchor: Tensor) =>
        atUse ? castAtUse(weight, 'float32', anchor) : cast(weight, 'float32');
      const h = add(matmul(x, transpose(convert(w1!, x))), matmul(x, transpose(a)));
      const t = tanh(h);
      const forward = transpose(convert(w2!, t));
      const y = matmul(t, forward);
      const loss = reduceSum(mul(y, y));
      const forwardNodes = graph.nodes.length;
      graph.output(gradients(loss, [a])[0]!, 'da');
      graph.output(loss, 'loss');
      const backward = graph.nodes.slice(forwardNodes);
      return { graph, forward, backward };
    };
    const feeds = {
      x: hostTensor('float32', [2, 4], Float32Array.of(0.5, -1, 2, 0.25, 1, 0, -0.5, 3)),
      a: hostTensor(
        'float32',
        [4, 4],
        Float32Array.from({ length: 16 }, (_, i) => Math.sin(i) / 3),
      ),
    };
    const once = build(false);
    const atUse = build(true);
    const [want, got] = [await runGraph(once.graph, feeds), await runGraph(atUse.graph, feeds)];
    for (const name of ['loss', 'da']) {
      valuesOf(got[name]).forEach((v, i) => {
        expect(v).toBeCloseTo(valuesOf(want[name])[i]!, 5);
      });
    }
    // Without castAtUse the backward pass reads the forward conversion; with it, a conversion of its own.
    const readsForward = (run: typeof once) => run.backward.some((node) => node.inputs.includes(run.forward));
    expect(readsForward(once)).toBe(true);
    expect(readsForward(atUse)).toBe(false);
    const conversions = (run: typeof once) =>
      run.graph.nodes.filter((n) => n.opType === 'Cast' && n.inputs[0]!.dtype === 'float16').length;
    expect(conversions(once)).toBe(2);
    expect(conversions(atUse)).toBe(3);
  });

  it('converts rows of a weight at use: the parts make the whole, and the backward pass converts each again', async () => {
    const values = Array.from({ length: 24 }, (_, i) => Math.round(64 * Math.sin(i)) / 128);
    const build = (parts: readonly (readonly [number, number])[] | undefined) => {
      const graph = new Graph();
      const x = graph.input('x', 'float32', ['batch', 4]);
      const a = graph.input('a', 'float32', [4, 4]);
      const w = graph.constant(values, 'bfloat16', [6, 4]);
      const h = tanh(matmul(x, a));
      const converted = parts ? parts.map((rows) => castAtUse(w, 'float32', h, rows)) : [cast(w, 'float32')];
      const y = concat(
        converted.map((part) => matmul(h, transpose(part))),
        -1,
      );
      const loss = reduceSum(mul(y, y));
      const forwardNodes = graph.nodes.length;
      graph.output(gradients(loss, [a])[0]!, 'da');
      graph.output(loss, 'loss');
      return { graph, converted, backward: graph.nodes.slice(forwardNodes) };
    };
    const feeds = {
      x: hostTensor('float32', [2, 4], Float32Array.of(0.5, -1, 2, 0.25, 1, 0, -0.5, 3)),
      a: hostTensor(
        'float32',
        [4, 4],
        Float32Array.from({ length: 16 }, (_, i) => Math.cos(i) / 3),
      ),
    };
    const whole = build(undefined);
    const parts = build([
      [0, 4],
      [4, 6],
    ]);
    const [want, got] = [await runGraph(whole.graph, feeds), await runGraph(parts.graph, feeds)];
    for (const name of ['loss', 'da']) {
      valuesOf(got[name]).forEach((v, i) => {
        expect(v).toBeCloseTo(valuesOf(want[name])[i]!, 5);
      });
    }
    expect(parts.converted.map((t) => t.shape)).toEqual([
      [4, 4],
      [2, 4],
    ]);
    expect(parts.backward.some((node) => node.inputs.some((t) => parts.converted.includes(t!)))).toBe(false);
    expect(() => castAtUse(parts.converted[0]!, 'float32', parts.converted[0]!, [3, 9])).toThrow(
      /rows \[3, 9\)/,
    );
  });

  it("recomputes a checkpointed dropout with the forward pass's mask, not a new draw", async () => {
    // y = dropout(x·w), loss = Σ y²: dL/dw = 2·x·y·mask/(1−p) element-wise, from the mask the forward pass drew.
    const n = 1000;
    const graph = new Graph();
    const x = graph.input('x', 'float32', [n]);
    const w = graph.input('w', 'float32', [n]);
    let mask: Tensor | undefined;
    const y = checkpoint(x, (input) => {
      const dropped = dropout(mul(input, w), 0.5);
      mask = dropped.mask;
      return dropped.output;
    });
    graph.output(y, 'y');
    graph.output(mask!, 'mask');
    graph.output(gradients(reduceSum(mul(y, y)), [w])[0]!, 'dw');
    const values = Float32Array.from({ length: n }, (_, i) => (i % 7) + 1);
    const out = await runGraph(graph, {
      x: hostTensor('float32', [n], values),
      w: hostTensor(
        'float32',
        [n],
        values.map((v) => v / 8),
      ),
    });
    const [kept, dw, ys] = [valuesOf(out['mask']), valuesOf(out['dw']), valuesOf(out['y'])];
    expect(graph.nodes.filter((node) => node.opType === 'Dropout')).toHaveLength(1);
    kept.forEach((k, i) => {
      expect(ys[i]).toBeCloseTo(k ? (2 * values[i]! ** 2) / 8 : 0, 5);
      expect(dw[i]).toBeCloseTo(k ? 2 * values[i]! * ys[i]! * 2 : 0, 4);
    });
  });

  it('builds backward graphs that run in float16 (CPU kernels exist) and agree with float32', async () => {
    const rng = createRng(5);
    const values = (n: number) => Float32Array.from({ length: n }, () => -1 + 2 * rng.next());
    const [image, tokens, norm, kernel] = [
      values(2 * 4 * 4 * 4),
      values(2 * 4 * 8),
      values(8),
      values(4 * 4 * 3 * 3),
    ];
    const build = (dtype: 'float16' | 'float32') => {
      const graph = new Graph();
      const img = graph.input('img', 'float32', [2, 4, 4, 4]);
      const seq = graph.input('seq', 'float32', [2, 4, 8]);
      const w = graph.input('w', 'float32', [8]);
      const k = graph.input('k', 'float32', [4, 4, 3, 3]);
      const [x, h, s, c] = [cast(img, dtype), cast(seq, dtype), cast(w, dtype), cast(k, dtype)];
      const unet = conv(
        resizeNearest(
          silu(groupNorm(x, graph.constant([1, 1, 1, 1], dtype), graph.constant([0, 0, 0, 0], dtype), 2)),
          2,
        ),
        c,
        undefined,
        { pads: [1, 1, 1, 1] },
      );
      const q = gelu(layerNorm(rmsNorm(h, s), s));
      const labels = graph.constant([0, 0, 1, 0, 0, 0, 1, 1], 'int64', [2, 4]);
      const attended = scaledDotProductAttention(
        reshape(q, [2, 1, 4, 8]),
        reshape(h, [2, 1, 4, 8]),
        reshape(h, [2, 1, 4, 8]),
        { causal: true },
      );
      const loss = add(
        cast(reduceMean(mul(unet, unet)), 'float32'),
        crossEntropy(reshape(attended, [2, 4, 8]), labels),
      );
      gradients(loss, [img, seq, w, k]).forEach((g, i) => {
        graph.output(g, `g${i}`);
      });
      return graph;
    };
    const feeds = {
      img: hostTensor('float32', [2, 4, 4, 4], image),
      seq: hostTensor('float32', [2, 4, 8], tokens),
      w: hostTensor('float32', [8], norm),
      k: hostTensor('float32', [4, 4, 3, 3], kernel),
    };
    const [half, full] = await Promise.all([
      runGraph(build('float16'), feeds),
      runGraph(build('float32'), feeds),
    ]);
    for (const name of ['g0', 'g1', 'g2', 'g3']) {
      const [h, f] = [valuesOf(half[name]), valuesOf(full[name])];
      const scale = Math.max(...f.map(Math.abs));
      expect(Math.max(...h.map((v, i) => Math.abs(v - f[i]!))) / scale).toBeLessThan(2e-2);
    }
  });
});
