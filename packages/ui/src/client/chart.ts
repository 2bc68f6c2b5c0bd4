// The numbers behind the loss chart: thinning long runs, smoothing, axis ticks.

export interface Point {
  readonly step: number;
  readonly loss: number;
}

/** Most points a line draws: more than the chart's width in pixels adds nothing but work. */
export const MAX_LINE_POINTS = 600;

/** At most `max` points: consecutive points averaged in equal runs, each at its run's last step. */
export function thin(points: readonly Point[], max = MAX_LINE_POINTS): Point[] {
  if (points.length <= max) return [...points];
  const size = points.length / max;
  const out: Point[] = [];
  for (let bucket = 0; bucket < max; bucket++) {
    const slice = points.slice(Math.floor(bucket * size), Math.floor((bucket + 1) * size));
    if (slice.length === 0) continue;
    out.push({ step: slice.at(-1)!.step, loss: slice.reduce((sum, p) => sum + p.loss, 0) / slice.length });
  }
  return out;
}

/**
 * TensorBoard's smoothing: an exponential moving average, debiased so the start is not pulled to
 * 0. The weight averages over about a tenth of the line (at least the last 2–3 points, at most
 * ~20), so a short run is not flattened and a long one is not noise.
 */
export function smooth(
  points: readonly Point[],
  weight = Math.min(0.95, Math.max(0.6, 1 - 10 / points.length)),
): Point[] {
  let average = 0;
  return points.map((point, index) => {
    average = average * weight + (1 - weight) * point.loss;
    return { step: point.step, loss: average / (1 - weight ** (index + 1)) };
  });
}

/** About `count` round tick values (1, 2 or 5 × 10ⁿ apart) covering [min, max]. */
export function ticks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let value = Math.ceil(min / step) * step; value <= max + step * 1e-9; value += step) {
    out.push(Number(value.toPrecision(12)));
  }
  return out;
}

/** The training (`loss`) and validation (`val/loss`) points of metrics records, in step order. */
export function lossPoints(records: readonly ({ step: number } & Record<string, number>)[]): {
  loss: Point[];
  val: Point[];
} {
  const loss: Point[] = [];
  const val: Point[] = [];
  for (const record of records) {
    if (Number.isFinite(record['loss'])) loss.push({ step: record.step, loss: record['loss']! });
    else if (Number.isFinite(record['val/loss'])) val.push({ step: record.step, loss: record['val/loss']! });
  }
  return { loss, val };
}
