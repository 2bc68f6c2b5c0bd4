import { describe, expect, it } from 'vitest';
import { gradients } from '../autodiff/gradients.ts';
import { Graph, type Tensor } from './graph.ts';
import { estimateMemory } from './memory-estimate.ts';
import { add, cast, mul, tanh } from './ops/elementwise.ts';
import { castAtUse, checkpoint } from './ops/gradient-marks.ts';
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
    // The scalar 2 (float32) and the -1 shape (int64); the float16 constant nobody reads is dropped.
    expect(estimate.weights).toBe(4 + 8);
    expect(estimate.peakActivations).toBe(3 * 16);
    expect(() => estimateMemory(graph)).toThrow(/no size for dim 'n'/);
  });

  it('holds a constant cast or viewed when the session loads at the folded type; a cast at use keeps the stored one', () => {
    const graph = new Graph();
    const x = graph.input('x', 'float32', [2, 1000]);
    const stored = graph.initializer('w', 'float32', [1000, 1000], {
      path: '/w.bin',
      offset: 0,
      length: 4e6,
    });
    // Held as float16 (one 2 MB constant; the float32 one is read only by the folded Cast)...
    const held = reshape(cast(stored, 'float16'), [1000, 1000]);
    // ...and widened at each use, which no folding can see through.
    const y = matmul(x, castAtUse(held, 'float32', x));
    graph.output(y, 'y');
    const { weights } = estimateMemory(graph);
    expect(weights - 2e6).toBeGreaterThanOrEqual(0);
    expect(weights - 2e6).toBeLessThan(100); // plus the small shape and index constants
    // The same weight widened once, as a plain cast: folded into a float32 copy.
    const folding = new Graph();
    const w = folding.initializer('w', 'float16', [1000, 1000], { path: '/w.bin', offset: 0, length: 2e6 });
    folding.output(matmul(folding.input('x', 'float32', [2, 1000]), cast(w, 'float32')), 'y');
    expect(estimateMemory(folding).weights).toBe(4e6);
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
