import { readFileSync } from 'node:fs';
import { hostTensor } from '@lora/engine';
import { describe, expect, it } from 'vitest';
import { runGraph } from '../testing.ts';
import { buildUpdateGraph, type OptimizerOptions, updateScalars } from './optimizer.ts';

interface AdamwGolden {
  weight_decay: number;
  betas: [number, number];
  eps: number;
  lrs: number[];
  param: number[];
  shape: number[];
  grads: number[][];
  params_after_each_step: number[][];
  exp_avg: number[];
  exp_avg_sq: number[];
}

const goldens: AdamwGolden[] = JSON.parse(
  readFileSync(new URL('./__fixtures__/adamw.json', import.meta.url), 'utf8'),
);

const f32 = (shape: readonly number[], values: ArrayLike<number>) =>
  hostTensor('float32', shape, Float32Array.from(values));

/** Runs `steps` updates of one parameter `p` in group `default` with the update graph. */
async function runUpdates(
  optimizer: OptimizerOptions,
  shape: number[],
  param: ArrayLike<number>,
  steps: { lr: number; grad: ArrayLike<number>; multiplier?: number }[],
) {
  const graph = buildUpdateGraph([{ name: 'p', shape, group: 'default' }], optimizer);
  const slots = optimizer.type === 'adamw' ? ['exp_avg', 'exp_avg_sq'] : ['momentum_buffer'];
  let p: Float32Array = Float32Array.from(param);
  let state: Float32Array[] = slots.map(() => new Float32Array(p.length));
  const after: Float32Array[] = [];
  for (const [i, { lr, grad, multiplier = 1 }] of steps.entries()) {
    const out = await runGraph(graph, {
      ...updateScalars(optimizer, new Map([['default', lr]]), i + 1, multiplier),
      p: f32(shape, p),
      'p.grad': f32(shape, grad),
      ...Object.fromEntries(slots.map((s, k) => [`p.${s}`, f32(shape, state[k]!)])),
    });
    p = out['p.next']!.data as Float32Array;
    state = slots.map((s) => out[`p.${s}.next`]!.data as Float32Array);
    after.push(p);
  }
  return { after, state };
}

/** Max |a − b| relative to max |b|. */
function maxRelative(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

describe('AdamW update graph', () => {
  it.each(goldens.map((g) => [`wd ${g.weight_decay}, betas ${g.betas}, eps ${g.eps}`, g] as const))(
    'matches torch.optim.AdamW after each of 5 steps and in its moments (%s)',
    async (_, golden) => {
      const optimizer: OptimizerOptions = {
        type: 'adamw',
        betas: golden.betas,
        eps: golden.eps,
        weightDecay: golden.weight_decay,
      };
      const { after, state } = await runUpdates(
        optimizer,
        golden.shape,
        golden.param,
        golden.lrs.map((lr, i) => ({ lr, grad: golden.grads[i]! })),
      );
      // Measured: ≤ 1.4e-8 for the weights, ≤ 1.4e-7 for the moments (an ulp here and there).
      after.forEach((p, i) => {
        expect(maxRelative(p, golden.params_after_each_step[i]!)).toBeLessThan(5e-8);
      });
      expect(maxRelative(state[0]!, golden.exp_avg)).toBeLessThan(3e-7);
      expect(maxRelative(state[1]!, golden.exp_avg_sq)).toBeLessThan(3e-7);
      // With bias correction the first step is −lr·sign(g) − lr·wd·w (without it, ≈ 3.2× that).
      const lr = golden.lrs[0]!;
      golden.param.forEach((w, i) => {
        const expected = -lr * Math.sign(golden.grads[0]![i]!) - lr * golden.weight_decay * w;
        expect(after[0]![i]! - w).toBeCloseTo(expected, 4);
      });
    },
  );

  it('applies the gradient multiplier before the moments (clip / (Σ weight · loss scale))', async () => {
    const golden = goldens[0]!;
    const optimizer: OptimizerOptions = {
      type: 'adamw',
      betas: golden.betas,
      eps: golden.eps,
      weightDecay: 0.01,
    };
    const scaled = golden.grads.map((g, i) => ({
      lr: golden.lrs[i]!,
      grad: g.map((v) => v * 8),
      multiplier: 0.125,
    }));
    const { after } = await runUpdates(optimizer, golden.shape, golden.param, scaled);
    after.forEach((p, i) => {
      expect(maxRelative(p, golden.params_after_each_step[i]!)).toBeLessThan(5e-8);
    });
  });
});

describe('SGD update graph', () => {
  it.each([
    [0, 0],
    [0.9, 0],
    [0.9, 0.1],
  ])('matches momentum %d, weight decay %d computed by hand in float32', async (momentum, weightDecay) => {
    const round = Math.fround;
    const shape = [4];
    const param = [0.5, -1.25, 2, 0.1];
    const steps = [
      { lr: 0.1, grad: [1, -2, 0.5, 3], multiplier: 0.5 },
      { lr: 0.05, grad: [-0.5, 1, 0.25, -1], multiplier: 0.5 },
      { lr: 0.025, grad: [2, 2, -2, 0], multiplier: 1 },
    ];
    const { after } = await runUpdates({ type: 'sgd', momentum, weightDecay }, shape, param, steps);
    // torch.optim.SGD: d = g + wd·w; buf = momentum·buf + d (buf = d at step 1); w -= lr·buf.
    let w = param.map(round);
    let buffer = param.map(() => 0);
    steps.forEach(({ lr, grad, multiplier }, i) => {
      const g = grad.map((v) => round(round(v) * round(multiplier)));
      const d = weightDecay ? g.map((v, k) => round(v + round(w[k]! * round(weightDecay)))) : g;
      buffer = d.map((v, k) => round(round(buffer[k]! * round(momentum)) + v));
      w = w.map((v, k) => round(v - round(buffer[k]! * round(lr))));
      expect(Array.from(after[i]!)).toEqual(w);
    });
  });
});
