import { describe, expect, it } from 'vitest';
import { gradients } from '../autodiff/gradients.ts';
import { Graph, type Tensor } from './graph.ts';
import { estimateMemory } from './memory-estimate.ts';
import { add, mul, tanh } from './ops/elementwise.ts';
import { checkpoint } from './ops/gradient-marks.ts';
import { reshape } from './ops/layout.ts';
import { matmul } from './ops/linalg.ts';
import { reduceSum } from './ops/reduce.ts';

describe('estimateMemory', () => {
  it('counts weights, inputs and the most intermediate bytes alive at once; a view shares its source', () => {
    const graph = new Graph();
    const x = graph.input('x', 'float32', ['n']);
    graph.constant([1, 2, 3, 4], 'float16', [4]);
    const a = tanh(x);
    const b = mul(a, 2);
    const c = reshape(b, [-1]);
    graph.output(add(add(c, a), x), 'y');
    // a, b (c is a view of it), then both additions' outputs: a and b die after the first one.
    const estimate = estimateMemory(graph, { n: 4 });
    expect(estimate.inputs).toBe(16);
    expect(estimate.weights).toBe(8 + 4 + 8); // w, the scalar 2 (float32), the -1 shape (int64)
    expect(estimate.peakActivations).toBe(3 * 16);
    expect(() => estimateMemory(graph)).toThrow(/no size for dim 'n'/);
  });

  it('sizes a product of named dims from a reshape', () => {
    const graph = new Graph();
    const x = graph.input('x', 'float32', ['batch', 'seq', 3]);
    const flat = tanh(reshape(tanh(x), [-1, 3]));
    expect(flat.shape).toEqual(['batch*seq', 3]);
    graph.output(flat, 'y');
    expect(estimateMemory(graph, { batch: 2, seq: 5 }).peakActivations).toBe(2 * 2 * 5 * 3 * 4);
  });

  it('estimates less for a gradients graph whose blocks are recomputed', () => {
    const build = (recompute: boolean) => {
      const graph = new Graph();
      let h = graph.input('x', 'float32', [256, 64]);
      const params: Tensor[] = [];
      for (let k = 0; k < 8; k++) {
        const a = graph.input(`a${k}`, 'float32', [64, 64]);
        params.push(a);
        const block = (x: Tensor) => {
          let y = x;
          for (let layer = 0; layer < 4; layer++) y = tanh(matmul(y, a));
          return y;
        };
        h = recompute ? checkpoint(h, block) : block(h);
      }
      for (const [k, g] of gradients(reduceSum(mul(h, h)), params).entries()) graph.output(g, `g${k}`);
      return estimateMemory(graph).peakActivations;
    };
    const [kept, recomputed] = [build(false), build(true)];
    // Kept: the 4 tanh outputs of all 8 blocks (64 KiB each) live at the turn; recomputed: the
    // blocks' inputs and one block's activations.
    expect(kept).toBeGreaterThan(32 * 65536);
    expect(recomputed).toBeLessThan(kept / 2);
  });
});
