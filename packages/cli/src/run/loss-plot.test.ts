import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { lossPlotSvg, smooth, writeLossPlot } from './loss-plot.ts';

describe('smooth', () => {
  it('is the debiased moving average (first value kept, constant input unchanged)', () => {
    expect(smooth([4, 4, 4])).toEqual([4, 4, 4].map((v) => expect.closeTo(v, 12)));
    const [first, second] = smooth([1, 3], 0.5);
    expect(first).toBeCloseTo(1, 12);
    // (0.5*0.5*1 + 0.5*3) / (1 - 0.25) = (0.25 + 1.5) / 0.75
    expect(second).toBeCloseTo(1.75 / 0.75, 12);
  });
});

describe('loss plot', () => {
  const points = [5, 4, 3.5, 2, 1.5, 1.2].map((loss, i) => ({ step: i + 1, loss }));

  it('draws both curves and escapes the title', () => {
    const svg = lossPlotSvg(points, 'run <a&b>');
    expect(svg.match(/<polyline/g)).toHaveLength(2);
    expect(svg).toContain('run &lt;a&amp;b&gt;');
  });

  it('labels the loss axis and says which line is which', () => {
    const svg = lossPlotSvg(
      [1, 2, 3].map((step) => ({ step, loss: 1 / step })),
      'run',
    );
    expect(svg).toMatch(/<text [^>]*transform="rotate\(-90[^"]*"[^>]*>loss<\/text>/);
    expect(svg).toContain('>loss per step</text>');
    expect(svg).toContain('>smoothed (as TensorBoard, 0.9)</text>');
  });

  it('writes an SVG and a PNG that sharp reads, and they change with the data', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plot-'));
    await writeLossPlot(join(dir, 'a'), points, 'a');
    await writeLossPlot(
      join(dir, 'b'),
      points.map((p) => ({ ...p, loss: 10 - p.loss })),
      'a',
    );
    const meta = await sharp(join(dir, 'a.png')).metadata();
    expect(meta).toMatchObject({ format: 'png', width: 800, height: 400 });
    expect(readFileSync(join(dir, 'a.svg'), 'utf8')).not.toBe(readFileSync(join(dir, 'b.svg'), 'utf8'));
    expect(readFileSync(join(dir, 'a.png')).equals(readFileSync(join(dir, 'b.png')))).toBe(false);
  });

  it('draws the validation loss as a third line with a point per evaluation, in the same axes', () => {
    const validation = [
      { step: 0, loss: 6 },
      { step: 3, loss: 2.5 },
      { step: 6, loss: 2.8 },
    ];
    const svg = lossPlotSvg(points, 'run', validation);
    expect(svg.match(/<polyline/g)).toHaveLength(3);
    // Three evaluation points plus the legend's.
    expect(svg.match(/<circle/g)).toHaveLength(4);
    expect(svg).toContain('>validation loss</text>');
    // Step 0 and loss 6 lie outside the training points, so the axes grow to hold them.
    const line = svg.match(/<polyline[^>]*stroke="#e6550d"[^>]* points="([^"]+)"/)![1]!.split(' ');
    const [x0, y0] = line[0]!.split(',').map(Number);
    expect(x0).toBeCloseTo(64, 0);
    expect(y0!).toBeGreaterThan(32);
    expect(lossPlotSvg(points, 'run')).not.toContain('validation loss');
  });

  it('skips non-finite losses instead of breaking the plot', () => {
    const svg = lossPlotSvg([...points, { step: 7, loss: Number.NaN }], 'x');
    expect(svg).not.toContain('NaN');
  });
});
