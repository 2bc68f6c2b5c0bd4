import { describe, expect, it } from 'vitest';
import { formatLabelProgress } from './progress.ts';

describe('formatLabelProgress', () => {
  it.each([
    [0, 40, 0, '[------------] 0/40 images 0.0 img/s ETA --:--'],
    [10, 40, 5, '[###---------] 10/40 images 2.0 img/s ETA 00:15'],
    [40, 40, 8, '[############] 40/40 images 5.0 img/s ETA 00:00'],
  ])('%d of %d after %ds', (done, total, seconds, line) => {
    expect(formatLabelProgress(done, total, seconds, 12)).toBe(line);
  });
});
