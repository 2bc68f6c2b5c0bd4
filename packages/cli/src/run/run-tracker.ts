import type { LoraConfig, TrainerEvent, TrainingResult } from '@lora/config';
import { formatDuration, type ProgressDisplay } from './progress.ts';
import type { RunRecorder } from './run-folder.ts';

/** The run's length, from the backend's `step` events (`total_steps`, `total_epochs`). */
interface StepTotals {
  total_steps: number;
  total_epochs: number;
}

/**
 * Follows a run's events: the progress line, epoch and warning lines, and the run folder's
 * records (written in event order, one at a time, since the backend's `emit` cannot wait).
 */
export class RunTracker {
  private pending: Promise<void> = Promise.resolve();
  private recordFailed = false;
  private readonly startedAt = performance.now();
  private firstStep: { step: number; time: number } | undefined;
  private lastStep: { step: number; time: number } | undefined;
  private totals: StepTotals | undefined;
  private firstLoss: number | undefined;
  private lastLoss: number | undefined;
  private lastEpochLoss: number | undefined;

  constructor(
    private readonly config: LoraConfig,
    private readonly progress: ProgressDisplay,
    private readonly recorder: RunRecorder,
    /** A warning's text as shown (e.g. with a troubleshooting link), by its code. */
    private readonly wordWarning: (code: string, message: string) => string = (_, message) => message,
  ) {}

  on(event: TrainerEvent): void {
    switch (event.type) {
      case 'step': {
        const { total_steps, total_epochs, ...metrics } = event;
        if (total_steps !== undefined && total_epochs !== undefined)
          this.totals = { total_steps, total_epochs };
        this.showStep(metrics.step, metrics.epoch, metrics.loss, metrics.lr);
        this.record(metrics);
        return;
      }
      case 'epoch_end':
        this.lastEpochLoss = event.loss;
        this.progress.log(
          `epoch ${event.epoch}${this.totals ? `/${this.totals.total_epochs}` : ''}: mean loss ${event.loss.toFixed(4)}`,
        );
        break;
      case 'warning':
        this.progress.log(`warning: ${this.wordWarning(event.code, event.message)}`);
        break;
      case 'checkpoint':
      case 'done':
        break;
    }
    this.record(event);
  }

  /** Whether any optimizer step was reported. */
  get trained(): boolean {
    return this.firstStep !== undefined;
  }

  /** Waits for the records still being written. */
  async settle(): Promise<void> {
    await this.pending;
  }

  /** `step 500 of 500 (epoch 15) in 00:12, 41.2 it/s; loss 6.8540 (first step) → 1.4320 (last epoch mean; …)`. */
  describe(result: TrainingResult): string {
    const seconds = (performance.now() - this.startedAt) / 1000;
    const total = this.totals ? ` of ${this.totals.total_steps}` : '';
    const rate = this.stepsPerSecond();
    const parts = [
      `step ${result.step}${total} (epoch ${result.epoch}) in ${formatDuration(seconds)}${rate > 0 ? `, ${rate.toFixed(1)} it/s` : ''}`,
    ];
    if (this.firstLoss !== undefined && this.lastLoss !== undefined) {
      const final =
        this.lastEpochLoss === undefined
          ? `${this.lastLoss.toFixed(4)} (last step)`
          : `${this.lastEpochLoss.toFixed(4)} (last epoch mean; last step ${this.lastLoss.toFixed(4)})`;
      parts.push(`loss ${this.firstLoss.toFixed(4)} (first step) → ${final}`);
    }
    return parts.join('; ');
  }

  /** Optimizer steps per second since the first step, which also paid for loading the model; 0 until a second step. */
  private stepsPerSecond(): number {
    const { firstStep: first, lastStep: last } = this;
    return first && last && last.step > first.step
      ? ((last.step - first.step) * 1000) / (last.time - first.time)
      : 0;
  }

  private showStep(step: number, epoch: number, loss: number, lr: number): void {
    this.lastStep = { step, time: performance.now() };
    this.firstStep ??= this.lastStep;
    this.firstLoss ??= loss;
    this.lastLoss = loss;
    const stepsPerSecond = this.stepsPerSecond();
    this.progress.update({
      step,
      totalSteps: this.totals?.total_steps ?? this.config.max_steps ?? step,
      epoch,
      totalEpochs: this.totals?.total_epochs ?? this.config.epochs ?? epoch,
      loss,
      lr,
      stepsPerSecond,
    });
  }

  private record(event: TrainerEvent): void {
    this.pending = this.pending.then(async () => {
      if (this.recordFailed) return;
      try {
        await this.recorder.record(event);
      } catch (error) {
        // Training goes on: the adapter and checkpoints matter more than the logs about them.
        this.recordFailed = true;
        this.progress.log(
          `warning: the run folder's records stopped being written: ${(error as Error).message}`,
        );
      }
    });
  }
}
