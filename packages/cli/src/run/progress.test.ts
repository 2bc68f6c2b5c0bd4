import { describe, expect, it } from 'vitest';
import { formatDuration, formatProgress, ProgressDisplay } from './progress.ts';

const state = {
  step: 50,
  totalSteps: 100,
  epoch: 2,
  totalEpochs: 4,
  loss: 0.12345,
  lr: 2e-4,
  stepsPerSecond: 5,
};

describe('formatProgress', () => {
  it('shows bar, counts, loss, lr, speed and ETA', () => {
    expect(formatProgress(state, 10)).toBe(
      '[#####-----] 50/100 epoch 2/4 loss 0.1235 lr 2.00e-4 5.00 it/s ETA 00:10',
    );
  });
  it.each([
    [0, '00:00'],
    [59.6, '01:00'],
    [3725, '1:02:05'],
    [Number.NaN, '--:--'],
  ])('formats %s seconds as %s', (seconds, text) => expect(formatDuration(seconds)).toBe(text));
});

describe('ProgressDisplay', () => {
  const sink = () => {
    const written: string[] = [];
    return {
      written,
      stream: { write: (s: string) => written.push(s), isTTY: false } as unknown as NodeJS.WriteStream,
    };
  };

  it('prints plain lines at most every N seconds when not interactive, and always the last step', () => {
    const { written, stream } = sink();
    const display = new ProgressDisplay(stream, false, 10);
    display.update({ ...state, step: 1 }, 0);
    display.update({ ...state, step: 2 }, 5);
    display.update({ ...state, step: 3 }, 11);
    display.update({ ...state, step: 100 }, 12);
    expect(written.map((l) => l.split(' ')[1])).toEqual(['1/100', '3/100', '100/100']);
    expect(written.every((l) => l.endsWith('\n') && !l.includes('\r'))).toBe(true);
  });

  it('prints a plain line at each tenth of the way too, for work that says how far it is', () => {
    const { written, stream } = sink();
    const display = new ProgressDisplay(stream, false, 10);
    for (let done = 1; done <= 40; done++) {
      display.show(`${done}/40`, { last: done === 40, now: done * 0.1, fraction: done / 40 });
    }
    // The first at once, then 4/40, 8/40, … (each tenth), none in between.
    expect(written).toEqual(['1/40\n', ...Array.from({ length: 10 }, (_, i) => `${(i + 1) * 4}/40\n`)]);
  });

  it('rewrites one line on a terminal', () => {
    const { written, stream } = sink();
    const display = new ProgressDisplay(stream, true);
    display.update(state, 0);
    display.log('checkpoint saved');
    display.finish();
    expect(written[0]?.startsWith('\r\x1b[2K[')).toBe(true);
    expect(written.slice(1)).toEqual(['\r\x1b[2K', 'checkpoint saved\n', '\n']);
  });
});
