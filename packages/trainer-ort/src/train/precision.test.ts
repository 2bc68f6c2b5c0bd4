import { describe, expect, it } from 'vitest';
import { nextLossScale } from './precision.ts';

describe('nextLossScale (GradScaler rule)', () => {
  it.each([
    [
      'halves and resets the count on non-finite gradients',
      { scale: 1024, goodSteps: 3 },
      false,
      { scale: 512, goodSteps: 0 },
    ],
    ['counts a finite step', { scale: 1024, goodSteps: 3 }, true, { scale: 1024, goodSteps: 4 }],
    [
      'doubles after growthInterval finite steps',
      { scale: 1024, goodSteps: 4 },
      true,
      { scale: 2048, goodSteps: 0 },
    ],
  ])('%s', (_, state, finite, expected) => {
    expect(nextLossScale(state, finite, 5)).toEqual(expected);
  });
});
