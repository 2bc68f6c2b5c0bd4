import { formatDuration } from '../run/progress.ts';

/** `[######------] 12/40 images 3.1 img/s ETA 00:09`. */
export function formatLabelProgress(done: number, total: number, seconds: number, barWidth = 24): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 0;
  const filled = Math.round(fraction * barWidth);
  const rate = seconds > 0 ? done / seconds : 0;
  return [
    `[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]`,
    `${done}/${total} images`,
    `${rate.toFixed(1)} img/s`,
    `ETA ${formatDuration(rate > 0 ? (total - done) / rate : Number.NaN)}`,
  ].join(' ');
}
