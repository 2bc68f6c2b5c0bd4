import { describe, expect, it } from 'vitest';
import type { DeviceChoice } from '../device.ts';
import { nextLossScale, precisionOn } from './precision.ts';

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

describe('precisionOn', () => {
  const gpu = (fp16: boolean): DeviceChoice => ({
    device: 'webgpu',
    adapter: {
      name: 'GPU X',
      vendor: 'x',
      architecture: 'x',
      type: 'gpu',
      fp16,
      maxBufferSize: 1,
      maxStorageBufferBindingSize: 1,
      usedByOnnxRuntime: true,
    },
  });
  it.each([
    ['auto', { device: 'cuda' }, 'fp16', undefined],
    ['auto', gpu(true), 'fp32', undefined],
    ['fp16', { device: 'cpu' }, 'fp16', undefined],
    ['bf16', gpu(true), 'fp32', /no bfloat16 arithmetic/],
    ['fp16', gpu(false), 'fp32', /GPU X has no shader-f16/],
    ['fp16', gpu(true), 'fp16', /accumulates in half precision/],
  ] as const)('%s on %j computes in %s', (setting, choice, precision, notice) => {
    const result = precisionOn(setting, choice as DeviceChoice);
    expect(result.precision).toBe(precision);
    if (notice === undefined) expect(result.notice).toBeUndefined();
    else expect(result.notice).toMatch(notice);
  });
});
