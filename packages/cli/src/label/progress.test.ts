import { describe, expect, it } from 'vitest';
import { formatLabelProgress, LabelProgress } from './progress.ts';

describe('formatLabelProgress', () => {
  it.each([
    [0, 40, 0, '[------------] 0/40 images 0.0 img/s ETA --:--'],
    [10, 40, 5, '[###---------] 10/40 images 2.0 img/s ETA 00:15'],
    [40, 40, 8, '[############] 40/40 images 5.0 img/s ETA 00:00'],
  ])('%d of %d after %ds', (done, total, seconds, line) => {
    expect(formatLabelProgress(done, total, seconds, 12)).toBe(line);
  });
});

describe('LabelProgress', () => {
  const sink = () => {
    const writes: string[] = [];
    return { writes, stream: { write: (text: string) => writes.push(text) > 0 } as NodeJS.WritableStream };
  };

  it('rewrites one line on a terminal and ends it', () => {
    const { writes, stream } = sink();
    const progress = new LabelProgress(stream, true);
    progress.update(1, 2);
    progress.log('a notice');
    progress.update(2, 2);
    progress.finish();
    expect(writes.map((w) => w.replace(/images .*/, 'images …'))).toEqual([
      '\r\x1b[2K[############------------] 1/2 images …',
      '\r\x1b[2K',
      'a notice\n',
      '\r\x1b[2K[########################] 2/2 images …',
      '\n',
    ]);
  });

  it('prints plain lines at most every few seconds elsewhere, and always the last', () => {
    const { writes, stream } = sink();
    const progress = new LabelProgress(stream, false, 10);
    const start = Date.now();
    progress.update(1, 4, start);
    progress.update(2, 4, start + 5_000);
    progress.update(3, 4, start + 11_000);
    progress.update(4, 4, start + 12_000);
    progress.finish();
    expect(writes.map((w) => w.split(' images')[0])).toEqual([
      '[######------------------] 1/4',
      '[##################------] 3/4',
      '[########################] 4/4',
    ]);
  });
});
