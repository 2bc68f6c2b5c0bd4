import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve, sep } from 'node:path';
import type { LoraConfig, TrainerEvent } from '@lora/config';
import { stringifyConfig } from '@lora/config';
import { CliError } from '../cli-error.ts';
import { seeTroubleshooting } from '../troubleshooting.ts';
import { type LossPoint, writeLossPlot } from './loss-plot.ts';
import { TensorBoardWriter } from './tensorboard.ts';

/** Files a run folder holds besides the adapter and checkpoints. */
export const RUN_FILES = {
  config: 'config.yaml',
  metrics: 'metrics.jsonl',
  runs: 'runs.jsonl',
  logs: 'logs',
  plot: 'loss',
} as const;

export interface PrepareOptions {
  /** Continuing from a checkpoint: the folder is expected to hold an earlier run. */
  resuming: boolean;
  /** Start afresh in a non-empty folder (its earlier run is cleared once the new one starts). */
  overwrite: boolean;
}

/**
 * Makes `outputDir` ready for a run. A fresh run into a folder that already holds files refuses,
 * so an earlier adapter is never mixed up with (or overwritten by) a new one by accident. Nothing
 * is deleted here: with `overwrite` the earlier run stays until the new one has started
 * (`clearEarlierRun`), so an attempt that fails while loading leaves it intact and resumable.
 */
export function prepareRunFolder(outputDir: string, { resuming, overwrite }: PrepareOptions): void {
  const existing = existsSync(outputDir) ? readdirSync(outputDir) : [];
  if (existing.length > 0 && !resuming && !overwrite) {
    throw new CliError(
      'E_OUTPUT_NOT_EMPTY',
      `The output folder ${outputDir} already holds files (${existing.slice(0, 3).join(', ')}${existing.length > 3 ? ', …' : ''}). ` +
        `Continue that run with --resume auto, choose another output_dir, or pass --overwrite to start afresh. ${seeTroubleshooting('outputFolderNotEmpty')}.`,
    );
  }
  mkdirSync(outputDir, { recursive: true });
}

/** What a run writes into its folder besides the adapters (`*.safetensors`) and `config.yaml` (which `stampRun` replaces). */
const RUN_OUTPUTS = new Set<string>([
  RUN_FILES.metrics,
  RUN_FILES.runs,
  RUN_FILES.logs,
  `${RUN_FILES.plot}.png`,
  `${RUN_FILES.plot}.svg`,
  'checkpoints',
  'adapter_config.json',
]);

/**
 * Deletes an earlier run's outputs (`--overwrite`), for a new run that has started: adapters,
 * checkpoints, metrics, logs, the loss plot and the run history. Caches (`cache/`), the backend's
 * working files and files of the user's own stay, as does every path in `keep` (outputs the new
 * run already wrote, e.g. a checkpoint saved by a Ctrl-C before its first step).
 */
export function clearEarlierRun(outputDir: string, keep: readonly string[] = []): void {
  const kept = new Set(keep.map((path) => resolve(path)));
  const clear = (path: string) => {
    if (kept.has(path)) return;
    // A folder that holds a kept path loses everything else.
    if ([...kept].some((k) => k.startsWith(`${path}${sep}`))) {
      for (const entry of readdirSync(path)) clear(join(path, entry));
      return;
    }
    rmSync(path, { recursive: true, force: true });
  };
  for (const entry of readdirSync(outputDir)) {
    if (RUN_OUTPUTS.has(entry) || entry.endsWith('.safetensors')) clear(resolve(outputDir, entry));
  }
}

export interface RunStamp {
  startedAt: Date;
  version: string;
  resumedFrom?: string;
}

/** Writes the resolved config snapshot (atomically) and appends the run to `runs.jsonl`. */
export function stampRun(outputDir: string, config: LoraConfig, stamp: RunStamp): void {
  const header = `# lora ${stamp.version}, run started ${stamp.startedAt.toISOString()}${stamp.resumedFrom ? `, resumed from ${stamp.resumedFrom}` : ''}\n`;
  const path = join(outputDir, RUN_FILES.config);
  writeFileSync(`${path}.tmp`, header + stringifyConfig(config));
  renameSync(`${path}.tmp`, path);
  appendFileSync(
    join(outputDir, RUN_FILES.runs),
    `${JSON.stringify({ started_at: stamp.startedAt.toISOString(), version: stamp.version, resumed_from: stamp.resumedFrom ?? null })}\n`,
  );
}

/**
 * Turns backend events into the run folder's human-readable records: `metrics.jsonl`, TensorBoard
 * scalars (`loss/current`, `loss/average`, `lr`) and the loss plot, redrawn at each checkpoint
 * and at the end.
 */
export class RunRecorder {
  private readonly points: LossPoint[] = [];
  private readonly tensorboard: TensorBoardWriter | undefined;
  private epochLossSum = 0;
  private epochSteps = 0;
  private continued = false;

  constructor(
    private readonly outputDir: string,
    private readonly title: string,
    options: { tensorboard: boolean; startedAt: Date },
  ) {
    const logs = join(outputDir, RUN_FILES.logs);
    if (options.tensorboard) mkdirSync(logs, { recursive: true });
    this.tensorboard = options.tensorboard
      ? new TensorBoardWriter(logs, options.startedAt.getTime())
      : undefined;
  }

  async record(event: TrainerEvent): Promise<void> {
    switch (event.type) {
      case 'step': {
        if (!this.continued) this.continueHistory(event.step);
        const { type: _, ...metrics } = event;
        appendFileSync(join(this.outputDir, RUN_FILES.metrics), `${JSON.stringify(metrics)}\n`);
        this.points.push({ step: event.step, loss: event.loss });
        this.epochLossSum += event.loss;
        this.epochSteps += 1;
        this.tensorboard?.scalars(event.step, [
          { tag: 'loss/current', value: event.loss },
          { tag: 'loss/average', value: this.epochLossSum / this.epochSteps },
          { tag: 'lr', value: event.lr },
        ]);
        break;
      }
      case 'epoch_end':
        this.tensorboard?.scalars(event.step, [{ tag: 'loss/epoch', value: event.loss }]);
        this.epochLossSum = 0;
        this.epochSteps = 0;
        break;
      case 'checkpoint':
      case 'done':
        await this.plot();
        break;
      case 'warning':
        break;
    }
  }

  /**
   * A resumed run continues `metrics.jsonl` and the plot of the run it resumes. Steps after
   * `firstStep - 1` were taken after the checkpoint it resumes from and are trained again, so
   * their lines are dropped.
   */
  private continueHistory(firstStep: number): void {
    this.continued = true;
    const path = join(this.outputDir, RUN_FILES.metrics);
    if (!existsSync(path)) return;
    const lines = readFileSync(path, 'utf8').split('\n');
    const kept: { line: string; point: LossPoint }[] = [];
    for (const line of lines) {
      const point = parsePoint(line);
      if (point && point.step < firstStep) kept.push({ line, point });
    }
    if (kept.length !== lines.filter((line) => line !== '').length) {
      writeFileSync(`${path}.tmp`, kept.map(({ line }) => `${line}\n`).join(''));
      renameSync(`${path}.tmp`, path);
    }
    this.points.push(...kept.map(({ point }) => point));
  }

  async plot(): Promise<void> {
    await writeLossPlot(join(this.outputDir, RUN_FILES.plot), this.points, this.title);
  }

  close(): void {
    this.tensorboard?.close();
  }
}

function parsePoint(line: string): LossPoint | undefined {
  try {
    const { step, loss } = JSON.parse(line) as Partial<LossPoint>;
    return typeof step === 'number' && typeof loss === 'number' ? { step, loss } : undefined;
  } catch {
    return undefined;
  }
}
