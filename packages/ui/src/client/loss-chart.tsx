import { type Point, smooth, thin, ticks } from './chart.ts';

export interface LossSeries {
  name: string;
  color: string;
  loss: readonly Point[];
  val: readonly Point[];
}

/** Series colours, told apart by people with the common colour-vision deficiencies (Okabe–Ito). */
export const SERIES_COLORS = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9'];

const W = 640;
const H = 260;
const M = { left: 52, right: 14, top: 28, bottom: 30 };

const path = (points: readonly Point[], x: (s: number) => number, y: (l: number) => number) =>
  points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join('');

const label = (value: number) =>
  Math.abs(value) >= 1000 ? `${value / 1000}k` : String(Number(value.toPrecision(4)));

/**
 * Training loss (each step faint, smoothed on top) and validation loss (points joined by a
 * dashed line) against the step, for one run or several compared. Plain SVG: no chart library.
 */
export function LossChart({ series, title }: { series: readonly LossSeries[]; title: string }) {
  const all = series.flatMap((s) => [...s.loss, ...s.val]).filter((p) => Number.isFinite(p.loss));
  if (all.length === 0) {
    return (
      <figure class="chart empty-chart" aria-label={title}>
        <p>No loss yet: the chart fills in as steps finish.</p>
      </figure>
    );
  }
  const steps = all.map((p) => p.step);
  const losses = all.map((p) => p.loss);
  const [x0, x1] = [Math.min(0, ...steps), Math.max(1, ...steps)];
  const low = Math.min(...losses);
  const high = Math.max(...losses);
  const pad = (high - low) * 0.05 || Math.abs(high) * 0.05 || 1;
  const [y0, y1] = [low - pad, high + pad];
  const x = (step: number) => M.left + ((step - x0) / (x1 - x0)) * (W - M.left - M.right);
  const y = (loss: number) => H - M.bottom - ((loss - y0) / (y1 - y0)) * (H - M.top - M.bottom);
  return (
    <figure class="chart" aria-label={title}>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={title}>
        {ticks(y0, y1).map((value) => (
          <g class="tick">
            <line x1={M.left} x2={W - M.right} y1={y(value)} y2={y(value)} />
            <text x={M.left - 6} y={y(value) + 4} text-anchor="end">
              {label(value)}
            </text>
          </g>
        ))}
        {ticks(x0, x1, 6)
          .filter((value) => Number.isInteger(value))
          .map((value) => (
            <text class="tick" x={x(value)} y={H - M.bottom + 16} text-anchor="middle">
              {label(value)}
            </text>
          ))}
        <text class="axis" x={W - M.right} y={H - 4} text-anchor="end">
          step
        </text>
        {series.map((s) => {
          const line = thin(s.loss);
          return (
            <g class="series" data-name={s.name} style={{ color: s.color }}>
              {line.length > 1 && <path class={line.length > 10 ? 'raw' : 'raw solo'} d={path(line, x, y)} />}
              {line.length > 10 && <path class="smooth" d={path(smooth(line), x, y)} />}
              {line.length === 1 && (
                <circle class="raw" cx={x(line[0]!.step)} cy={y(line[0]!.loss)} r={2.5} />
              )}
              {s.val.length > 1 && <path class="val" d={path(s.val, x, y)} />}
              {s.val.map((p) => (
                <circle class="val" cx={x(p.step)} cy={y(p.loss)} r={3.5}>
                  <title>{`val/loss ${p.loss.toFixed(4)} at step ${p.step}`}</title>
                </circle>
              ))}
            </g>
          );
        })}
      </svg>
      <figcaption>
        {series.map((s) => (
          <span class="legend" style={{ color: s.color }}>
            <i class="swatch" /> {s.name}
            {s.val.length > 0 && (
              <>
                {' '}
                <i class="swatch dot" /> val/loss
              </>
            )}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
