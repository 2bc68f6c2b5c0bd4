import { describe, expect, it } from 'vitest';
import goldens from './__fixtures__/schedules.json' with { type: 'json' };
import { type LrSchedulerName, learningRate, warmupStepsFromRatio } from './schedule.ts';

// Golden values: transformers' schedule lambdas run through torch's LambdaLR
// (tools/golden/schedules_and_adamw.py).
describe('learningRate', () => {
  it.each(
    goldens.map(
      (g) =>
        [
          `${g.scheduler} total=${g.total_steps} warmup=${g.warmup_steps} cycles=${'num_cycles' in g ? g.num_cycles : '-'}`,
          g,
        ] as const,
    ),
  )('%s matches PyTorch LambdaLR', (_, golden) => {
    const options = {
      scheduler: golden.scheduler as LrSchedulerName,
      baseLr: golden.base_lr,
      totalSteps: golden.total_steps,
      warmupSteps: golden.warmup_steps,
      numCycles: 'num_cycles' in golden ? (golden.num_cycles as number) : undefined,
    };
    const lrs = golden.lrs.map((_, step) => learningRate(options, step));
    for (const [step, expected] of golden.lrs.entries()) expect(lrs[step]).toBeCloseTo(expected, 15);
  });

  it('starts a warmup at 0 and reaches the base rate at the end of it', () => {
    const options = { scheduler: 'linear' as const, baseLr: 1, totalSteps: 100, warmupSteps: 10 };
    expect(learningRate(options, 0)).toBe(0);
    expect(learningRate(options, 5)).toBe(0.5);
    expect(learningRate(options, 10)).toBe(1);
    expect(learningRate(options, 100)).toBe(0);
  });

  it('rounds a warmup ratio up', () => {
    expect(warmupStepsFromRatio(0.05, 150)).toBe(8);
    expect(warmupStepsFromRatio(0.1, 100)).toBe(10);
  });
});
