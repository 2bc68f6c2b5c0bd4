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

/**
 * Labelling progress on stderr: one rewritten line on a terminal; elsewhere (pipes, CI logs) a
 * plain line at most every `plainEverySeconds` and at the end.
 */
export class LabelProgress {
  private readonly started = Date.now();
  private lastPlain = -Infinity;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly interactive = Boolean(stream.isTTY) && !process.env['CI'],
    private readonly plainEverySeconds = 10,
  ) {}

  update(done: number, total: number, now = Date.now()): void {
    const line = formatLabelProgress(done, total, (now - this.started) / 1000);
    if (this.interactive) {
      this.stream.write(`\r\x1b[2K${line}`);
      this.drawn = true;
    } else if ((now - this.lastPlain) / 1000 >= this.plainEverySeconds || done === total) {
      this.stream.write(`${line}\n`);
      this.lastPlain = now;
    }
  }

  /** Prints a message above the progress line without garbling it. */
  log(message: string): void {
    if (this.drawn) this.stream.write('\r\x1b[2K');
    this.stream.write(`${message}\n`);
  }

  finish(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}
