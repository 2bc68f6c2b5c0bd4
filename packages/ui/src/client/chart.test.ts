import { describe, expect, it } from 'vitest';
import { lossPoints, smooth, thin, ticks } from './chart.ts';

describe('the loss chart numbers', () => {
  it('thins a long run to equal runs averaged, ending at the last step', () => {
    const points = Array.from({ length: 1000 }, (_, i) => ({ step: i + 1, loss: i % 2 }));
    const thinned = thin(points, 100);
    expect(thinned).toHaveLength(100);
    expect(thinned[0]).toEqual({ step: 10, loss: 0.5 });
    expect(thinned.at(-1)!.step).toBe(1000);
    expect(thin(points.slice(0, 5), 100)).toEqual(points.slice(0, 5));
  });

  it('smooths without pulling the start towards zero', () => {
    const smoothed = smooth([
      { step: 1, loss: 4 },
      { step: 2, loss: 4 },
      { step: 3, loss: 1 },
    ]);
    expect(smoothed[0]!.loss).toBeCloseTo(4);
    expect(smoothed[1]!.loss).toBeCloseTo(4);
    expect(smoothed[2]!.loss).toBeGreaterThan(1);
    expect(smoothed[2]!.loss).toBeLessThan(4);
  });

  it('puts ticks at round values', () => {
    expect(ticks(0, 1000)).toEqual([0, 200, 400, 600, 800, 1000]);
    expect(ticks(3.79, 7.07)).toEqual([4, 5, 6, 7]);
    expect(ticks(2, 2)).toEqual([2]);
  });

  it('splits metrics.jsonl records into training and validation losses', () => {
    const { loss, val } = lossPoints([
      { step: 0, epoch: 0, 'val/loss': 6.9 },
      { step: 1, epoch: 1, loss: 7.1, lr: 0 },
      { step: 2, epoch: 1, loss: 6.8, lr: 0.1 },
    ]);
    expect(loss).toEqual([
      { step: 1, loss: 7.1 },
      { step: 2, loss: 6.8 },
    ]);
    expect(val).toEqual([{ step: 0, loss: 6.9 }]);
  });
});
