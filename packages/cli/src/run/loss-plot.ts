import { writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { writeAtomically } from '../files.ts';

export interface LossPoint {
  step: number;
  loss: number;
}

const WIDTH = 800;
const HEIGHT = 400;
const MARGIN = { left: 64, right: 16, top: 32, bottom: 40 };
const RAW = '#9ecae1';
const SMOOTHED = '#08519c';
const VALIDATION = '#e6550d';

/** TensorBoard's debiased exponential moving average, so plots match what users see there. */
export function smooth(values: readonly number[], weight = 0.9): number[] {
  let last = 0;
  return values.map((value, index) => {
    last = last * weight + value * (1 - weight);
    return last / (1 - weight ** (index + 1));
  });
}

const escapeXml = (text: string) =>
  text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);

function niceTicks(min: number, max: number, count: number): number[] {
  const span = max - min || Math.abs(max) || 1;
  const step = 10 ** Math.floor(Math.log10(span / count));
  const multiple = [1, 2, 5, 10].find((m) => span / (m * step) <= count) ?? 10;
  const tick = multiple * step;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / tick) * tick; t <= max + tick * 1e-9; t += tick)
    ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/**
 * The loss curve (raw points and smoothed line), and the validation loss where there is one, as a
 * standalone SVG document.
 */
export function lossPlotSvg(
  points: readonly LossPoint[],
  title: string,
  validation: readonly LossPoint[] = [],
): string {
  const finite = points.filter((p) => Number.isFinite(p.loss));
  const checked = validation.filter((p) => Number.isFinite(p.loss));
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
  ];
  if (finite.length > 0) {
    const steps = [...finite, ...checked].map((p) => p.step);
    const minStep = Math.min(...steps);
    const maxStep = Math.max(...steps, minStep + 1);
    const losses = finite.map((p) => p.loss);
    const minLoss = Math.min(...losses, ...checked.map((p) => p.loss));
    const maxLoss = Math.max(...losses, ...checked.map((p) => p.loss));
    const pad = (maxLoss - minLoss) * 0.05 || Math.abs(maxLoss) * 0.05 || 1;
    const [low, high] = [minLoss - pad, maxLoss + pad];
    const x = (step: number) => MARGIN.left + ((step - minStep) / (maxStep - minStep)) * plotWidth;
    const y = (loss: number) => MARGIN.top + (1 - (loss - low) / (high - low)) * plotHeight;
    for (const tick of niceTicks(low, high, 5)) {
      parts.push(
        `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(tick).toFixed(1)}" y2="${y(tick).toFixed(1)}" stroke="#eee"/>`,
        `<text x="${MARGIN.left - 6}" y="${(y(tick) + 4).toFixed(1)}" text-anchor="end">${tick}</text>`,
      );
    }
    for (const tick of niceTicks(minStep, maxStep, 8)) {
      parts.push(
        `<text x="${x(tick).toFixed(1)}" y="${HEIGHT - MARGIN.bottom + 16}" text-anchor="middle">${tick}</text>`,
      );
    }
    const polyline = (line: readonly LossPoint[], values: readonly number[], style: string) =>
      `<polyline fill="none" ${style} points="${values.map((v, i) => `${x(line[i]!.step).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`;
    parts.push(polyline(finite, losses, `stroke="${RAW}" stroke-width="1"`));
    parts.push(polyline(finite, smooth(losses), `stroke="${SMOOTHED}" stroke-width="2"`));
    if (checked.length > 0) {
      parts.push(
        polyline(
          checked,
          checked.map((p) => p.loss),
          `stroke="${VALIDATION}" stroke-width="2"`,
        ),
        ...checked.map(
          (p) =>
            `<circle cx="${x(p.step).toFixed(1)}" cy="${y(p.loss).toFixed(1)}" r="3" fill="${VALIDATION}"/>`,
        ),
      );
    }
    // The legend, top right inside the plot.
    const lx = WIDTH - MARGIN.right - 236;
    const ly = MARGIN.top + 14;
    parts.push(
      `<line x1="${lx}" x2="${lx + 24}" y1="${ly - 4}" y2="${ly - 4}" stroke="${RAW}" stroke-width="1"/>`,
      `<text x="${lx + 30}" y="${ly}">loss per step</text>`,
      `<line x1="${lx}" x2="${lx + 24}" y1="${ly + 12}" y2="${ly + 12}" stroke="${SMOOTHED}" stroke-width="2"/>`,
      `<text x="${lx + 30}" y="${ly + 16}">smoothed (as TensorBoard, 0.9)</text>`,
    );
    if (checked.length > 0) {
      parts.push(
        `<line x1="${lx}" x2="${lx + 24}" y1="${ly + 28}" y2="${ly + 28}" stroke="${VALIDATION}" stroke-width="2"/>`,
        `<circle cx="${lx + 12}" cy="${ly + 28}" r="3" fill="${VALIDATION}"/>`,
        `<text x="${lx + 30}" y="${ly + 32}">validation loss</text>`,
      );
    }
  }
  parts.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#333"/>`,
    `<text x="${WIDTH / 2}" y="${HEIGHT - 6}" text-anchor="middle">step</text>`,
    `<text x="14" y="${MARGIN.top + plotHeight / 2}" text-anchor="middle" transform="rotate(-90 14 ${MARGIN.top + plotHeight / 2})">loss</text>`,
    '</svg>',
  );
  return parts.join('\n');
}

/** Writes `<base>.svg` and `<base>.png`, each atomically. */
export async function writeLossPlot(
  base: string,
  points: readonly LossPoint[],
  title: string,
  validation: readonly LossPoint[] = [],
): Promise<void> {
  const svg = lossPlotSvg(points, title, validation);
  await writeAtomically(`${base}.svg`, (temporary) => writeFileSync(temporary, svg));
  await writeAtomically(`${base}.png`, async (temporary) => {
    await sharp(Buffer.from(svg)).png().toFile(temporary);
  });
}
