export interface ProgressState {
  step: number;
  totalSteps: number;
  epoch: number;
  totalEpochs: number;
  loss: number;
  lr: number;
  /** Optimizer steps per second, averaged over the run so far. */
  stepsPerSecond: number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
}

/** One status line: `[#####-----] 50/100 epoch 2/4 loss 0.1234 lr 2.00e-4 3.1 it/s ETA 00:16`. */
export function formatProgress(state: ProgressState, barWidth = 24): string {
  const fraction = state.totalSteps > 0 ? Math.min(1, state.step / state.totalSteps) : 0;
  const filled = Math.round(fraction * barWidth);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]`;
  const eta = state.stepsPerSecond > 0 ? (state.totalSteps - state.step) / state.stepsPerSecond : Number.NaN;
  return [
    bar,
    `${state.step}/${state.totalSteps}`,
    `epoch ${state.epoch}/${state.totalEpochs}`,
    `loss ${state.loss.toFixed(4)}`,
    `lr ${state.lr.toExponential(2)}`,
    `${state.stepsPerSecond.toFixed(2)} it/s`,
    `ETA ${formatDuration(eta)}`,
  ].join(' ');
}

/**
 * Shows progress on a terminal by rewriting one line; elsewhere (pipes, CI logs) prints a plain
 * line at most every `plainEverySeconds` so logs stay readable, and for work that says how far it
 * is, at each tenth of the way too (`lora ui` reads `lora label`'s progress from these lines).
 */
export class ProgressDisplay {
  private lastPlain = -Infinity;
  /** The tenths done at the last plain line. */
  private lastTenth = 0;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly interactive = Boolean(stream.isTTY) && !process.env['CI'],
    private readonly plainEverySeconds = 10,
  ) {}

  update(state: ProgressState, now = Date.now() / 1000): void {
    this.show(formatProgress(state), { last: state.step === state.totalSteps, now });
  }

  /**
   * Shows any status line; `last` forces it out in plain mode so logs end with the final state,
   * `fraction` (0–1 of the work done) at each new tenth.
   */
  show(
    line: string,
    {
      last = false,
      now = Date.now() / 1000,
      fraction,
    }: { last?: boolean; now?: number; fraction?: number } = {},
  ): void {
    const tenth = fraction === undefined ? 0 : Math.floor(fraction * 10);
    if (this.interactive) {
      this.stream.write(`\r\x1b[2K${line}`);
      this.drawn = true;
    } else if (now - this.lastPlain >= this.plainEverySeconds || last || tenth > this.lastTenth) {
      this.stream.write(`${line}\n`);
      this.lastPlain = now;
      this.lastTenth = tenth;
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
