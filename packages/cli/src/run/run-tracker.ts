import { readFileSync } from 'node:fs';
import type { LoraConfig, TrainerEvent, TrainingResult, WarningCode } from '@lora/config';
import { formatDuration, type ProgressDisplay } from './progress.ts';
import type { RunRecorder } from './run-folder.ts';

/** The run's length, from the backend's `step` events (`total_steps`, `total_epochs`). */
interface StepTotals {
  total_steps: number;
  total_epochs: number;
}

/** Epoch lines a run prints at most (about; the last epoch always has one). */
const MAX_EPOCH_LINES = 20;

/**
 * Events that show the backend has started the run: it loaded the model and data and accepted the
 * checkpoint it resumes from (samples taken before the first step come first). Warnings come
 * earlier, while it may still refuse either.
 */
const STARTING_EVENTS: ReadonlySet<TrainerEvent['type']> = new Set([
  'step',
  'checkpoint',
  'sample',
  'validation',
  'done',
]);

/**
 * Follows a run's events: the progress line, epoch and warning lines, and the run folder's
 * records (written in event order, one at a time, since the backend's `emit` cannot wait). The
 * run folder is opened (`start`) on the first event that shows the run has started, so a run
 * that fails while loading leaves the folder as it was.
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
  private recorder: RunRecorder | undefined;

  constructor(
    private readonly config: LoraConfig,
    private readonly progress: ProgressDisplay,
    /** Prepares the run folder for the run that `first` shows has started; called once, synchronously. */
    private readonly start: (first: TrainerEvent) => RunRecorder,
    /** A warning's text as shown (e.g. with a troubleshooting link), by its code. */
    private readonly wordWarning: (code: WarningCode, message: string) => string = (_, message) => message,
  ) {}

  on(event: TrainerEvent): void {
    if (!this.started && !this.recordFailed && STARTING_EVENTS.has(event.type)) this.open(event);
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
        if (this.showsEpoch(event.epoch)) {
          this.progress.log(
            `epoch ${event.epoch}${this.totals ? `/${this.totals.total_epochs}` : ''}: mean loss ${event.loss.toFixed(4)}`,
          );
        }
        break;
      case 'validation': {
        const { best } = event;
        this.bestValidation = best;
        const lowest =
          best.step === event.step
            ? 'the lowest so far'
            : `lowest ${best.loss.toFixed(4)} at step ${best.step}`;
        this.progress.log(
          `validation at step ${event.step}: loss ${event.loss.toFixed(4)} (${lowest}; ${event.seconds.toFixed(1)} s)`,
        );
        break;
      }
      case 'warning':
        this.progress.log(`warning: ${this.wordWarning(event.code, event.message)}`);
        break;
      case 'checkpoint':
        this.lastCheckpoint = event.path;
        break;
      case 'sample':
        // An LLM's answers are short: shown as they come (images are only listed).
        for (const file of event.files.filter((f) => f.endsWith('.txt'))) {
          this.progress.log(readFileSync(file, 'utf8').trimEnd());
        }
        break;
      case 'done':
        break;
    }
    this.record(event);
  }

  /** The newest checkpoint this run saved, if it saved one. */
  lastCheckpoint: string | undefined;

  /** The lowest validation loss of the run and its step, when the run evaluates one. */
  bestValidation: Extract<TrainerEvent, { type: 'validation' }>['best'] | undefined;

  /**
   * Epoch lines shown: all of a run of up to `MAX_EPOCH_LINES` epochs, else every k-th and the
   * last, so a 500-epoch run prints 20 lines, not 500 (every epoch's mean stays in TensorBoard).
   */
  private showsEpoch(epoch: number): boolean {
    const total = this.totals?.total_epochs;
    if (total === undefined || total <= MAX_EPOCH_LINES) return true;
    return epoch === total || epoch % Math.ceil(total / MAX_EPOCH_LINES) === 0;
  }

  /** Whether the backend started the run (and the run folder was opened for it). */
  get started(): boolean {
    return this.recorder !== undefined;
  }

  /** Waits for the records still being written, then closes them. */
  async settle(): Promise<void> {
    await this.pending;
    this.recorder?.close();
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

  private open(first: TrainerEvent): void {
    try {
      this.recorder = this.start(first);
    } catch (error) {
      this.stopRecording(error);
    }
  }

  private record(event: TrainerEvent): void {
    const { recorder } = this;
    if (recorder === undefined) return;
    this.pending = this.pending.then(async () => {
      if (this.recordFailed) return;
      try {
        await recorder.record(event);
      } catch (error) {
        this.stopRecording(error);
      }
    });
  }

  /** Training goes on: the adapter and checkpoints matter more than the records about them. */
  private stopRecording(error: unknown): void {
    this.recordFailed = true;
    this.progress.log(`warning: the run folder's records stopped being written: ${(error as Error).message}`);
  }
}
