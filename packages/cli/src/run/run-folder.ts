import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, join, resolve, sep } from 'node:path';
import type { LoraConfig, TrainerEvent } from '@lora/config';
import { stringifyConfig } from '@lora/config';
import { CliError } from '../cli-error.ts';
import { appendText, writeTextAtomically } from '../files.ts';
import { seeTroubleshooting } from '../troubleshooting.ts';
import { type LossPoint, writeLossPlot } from './loss-plot.ts';
import { LOCK_FILE } from './run-lock.ts';
import { TensorBoardWriter } from './tensorboard.ts';

/** The validation loss's name in `metrics.jsonl` and TensorBoard. */
const VALIDATION_LOSS = 'val/loss';

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
  /** Start afresh in a folder of an earlier run (its outputs are cleared once the new one starts). */
  overwrite: boolean;
}

/**
 * Every run folder lists, in this file, the top-level entries lora created there. `--overwrite`
 * deletes those and nothing else, so a model, other LoRAs or notes of the user's own survive.
 */
export const MANIFEST_FILE = 'lora-run.json';

/** Entries a run of `config` may create at the top of its folder (the backend's working folders included). */
export function runOutputNames(config: LoraConfig): string[] {
  const adapters =
    config.task === 'sd'
      ? [`${config.output_name}.safetensors`]
      : ['adapter_model.safetensors', 'adapter_config.json'];
  return [
    RUN_FILES.config,
    RUN_FILES.metrics,
    RUN_FILES.runs,
    RUN_FILES.logs,
    `${RUN_FILES.plot}.png`,
    `${RUN_FILES.plot}.svg`,
    'checkpoints',
    'samples',
    'best',
    'graphs',
    'cache',
    ...adapters,
  ];
}

/** The entries the manifest lists (none when the folder has no manifest). */
export function readManifest(outputDir: string): Set<string> {
  const path = join(outputDir, MANIFEST_FILE);
  if (!existsSync(path)) return new Set();
  try {
    const { entries } = JSON.parse(readFileSync(path, 'utf8')) as { entries?: unknown };
    if (Array.isArray(entries) && entries.every((e) => typeof e === 'string' && isPlainName(e)))
      return new Set(entries as string[]);
  } catch {
    // fall through
  }
  throw new CliError(
    'E_OUTPUT_FOREIGN',
    `${path} is not the run list lora writes; lora will not clear a folder it cannot tell its own files in. Choose another output_dir.`,
  );
}

/** Adds `entries` to the manifest, atomically. */
export function claimEntries(outputDir: string, entries: Iterable<string>): void {
  const listed = readManifest(outputDir);
  const before = listed.size;
  for (const entry of entries) listed.add(entry);
  if (listed.size === before && existsSync(join(outputDir, MANIFEST_FILE))) return;
  writeTextAtomically(
    join(outputDir, MANIFEST_FILE),
    `${JSON.stringify({ written_by: 'lora', entries: [...listed].sort() }, null, 2)}\n`,
  );
}

/** A top-level name: no separators, not `.` or `..`. */
const isPlainName = (name: string) => name !== '' && name !== '.' && name !== '..' && !/[/\\\0]/.test(name);

/**
 * Makes `outputDir` ready for a run (the folder exists and is locked, see `run-lock.ts`) and
 * claims the entries the run will create. Refused:
 * - a folder with files lora did not write and no manifest (a model folder, ComfyUI's
 *   `models/loras`): lora neither writes beside them nor clears them;
 * - a run whose outputs would replace a file lora did not write;
 * - a fresh run into an earlier run's folder (checkpoints, an adapter, metrics) without
 *   `--resume` or `--overwrite`. Leftovers of a start that failed (`graphs/`, `cache/`) are not
 *   an earlier run.
 * Nothing is deleted here: with `overwrite` the earlier run stays until the new one has started
 * (`clearEarlierRun`), so an attempt that fails while loading leaves it intact and resumable.
 */
export function prepareRunFolder(
  outputDir: string,
  config: LoraConfig,
  { resuming, overwrite }: PrepareOptions,
): void {
  const names = runOutputNames(config);
  adoptEarlierRun(outputDir, names);
  const ours = readManifest(outputDir);
  const entries = readdirSync(outputDir).filter((e) => e !== MANIFEST_FILE && e !== LOCK_FILE);
  const foreign = entries.filter((e) => !ours.has(e));
  const list = (items: readonly string[]) =>
    `${items.slice(0, 3).join(', ')}${items.length > 3 ? ', …' : ''}`;
  if (ours.size === 0 && foreign.length > 0) {
    throw new CliError(
      'E_OUTPUT_FOREIGN',
      `The output folder ${outputDir} holds files lora did not write (${list(foreign)}). lora trains into an empty folder or one of its own run folders, and never deletes or replaces files it did not write. ` +
        `Choose a new output_dir (such as output/${config.output_name}); copy the adapter where you need it afterwards. ${seeTroubleshooting('outputFolderNotEmpty')}.`,
    );
  }
  const clobbered = foreign.filter((e) => names.includes(e));
  if (clobbered.length > 0) {
    throw new CliError(
      'E_OUTPUT_FOREIGN',
      `The output folder ${outputDir} holds ${list(clobbered)}, which lora did not write and this run would replace. Move ${clobbered.length === 1 ? 'it' : 'them'} away or choose another output_dir. ${seeTroubleshooting('outputFolderNotEmpty')}.`,
    );
  }
  const earlier = [...ours].filter((e) => entries.includes(e) && isResult(outputDir, e));
  if (earlier.length > 0 && !resuming && !overwrite) {
    throw new CliError(
      'E_OUTPUT_NOT_EMPTY',
      `The output folder ${outputDir} holds an earlier run (${list(earlier)}). ` +
        `Continue it with --resume auto, choose another output_dir, or pass --overwrite to start afresh (it deletes only what lora wrote there${foreign.length > 0 ? `; ${list(foreign)} stay` : ''}). ${seeTroubleshooting('outputFolderNotEmpty')}.`,
    );
  }
  claimEntries(outputDir, names);
}

/**
 * A run folder written before run folders listed their files (no manifest): when everything in
 * it is a name this run would write and its `config.yaml` carries lora's stamp, it is lora's, and
 * the manifest is written for it, so that it can be resumed or overwritten.
 */
function adoptEarlierRun(outputDir: string, names: readonly string[]): void {
  if (existsSync(join(outputDir, MANIFEST_FILE))) return;
  const entries = readdirSync(outputDir).filter((e) => e !== LOCK_FILE);
  if (entries.length === 0 || !entries.every((e) => names.includes(e))) return;
  const config = join(outputDir, RUN_FILES.config);
  if (!existsSync(config) || !readFileSync(config, 'utf8').startsWith('# lora ')) return;
  claimEntries(outputDir, entries);
}

/** Whether `entry` holds a result of an earlier run, as opposed to working files a failed start left. */
function isResult(outputDir: string, entry: string): boolean {
  if (entry === 'graphs' || entry === 'cache' || entry === RUN_FILES.config || entry === RUN_FILES.runs)
    return false;
  if (entry === 'checkpoints') return readdirSync(join(outputDir, entry)).length > 0;
  return true;
}

/**
 * Deletes an earlier run's outputs (`--overwrite`), for a new run that has started: the entries
 * the manifest lists, except caches (`cache/`, reused by content), the backend's working graphs
 * and every path in `keep` (outputs the new run already wrote, e.g. a checkpoint saved by a
 * Ctrl-C before its first step). Files lora did not write are never touched.
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
  const ours = readManifest(outputDir);
  for (const entry of readdirSync(outputDir)) {
    if (ours.has(entry) && entry !== 'cache' && entry !== 'graphs' && entry !== RUN_FILES.config)
      clear(resolve(outputDir, entry));
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
  writeTextAtomically(join(outputDir, RUN_FILES.config), header + stringifyConfig(config));
  appendText(
    join(outputDir, RUN_FILES.runs),
    `${JSON.stringify({ started_at: stamp.startedAt.toISOString(), version: stamp.version, resumed_from: stamp.resumedFrom ?? null })}\n`,
  );
}

/**
 * Turns backend events into the run folder's human-readable records: `metrics.jsonl`, TensorBoard
 * scalars (`loss/current`, `loss/average`, `lr`, `grad_norm`) and the loss plot, redrawn at each checkpoint
 * and at the end.
 */
export class RunRecorder {
  private readonly points: LossPoint[] = [];
  private readonly validation: LossPoint[] = [];
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
        appendText(join(this.outputDir, RUN_FILES.metrics), `${JSON.stringify(metrics)}\n`);
        this.points.push({ step: event.step, loss: event.loss });
        this.epochLossSum += event.loss;
        this.epochSteps += 1;
        this.tensorboard?.scalars(event.step, [
          { tag: 'loss/current', value: event.loss },
          { tag: 'loss/average', value: this.epochLossSum / this.epochSteps },
          { tag: 'lr', value: event.lr },
          { tag: 'grad_norm', value: event.grad_norm },
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
      case 'sample':
        this.recordSamples(event.step, event.files);
        break;
      case 'validation':
        if (!this.continued) this.continueHistory(event.step + 1);
        appendText(
          join(this.outputDir, RUN_FILES.metrics),
          `${JSON.stringify({ step: event.step, epoch: event.epoch, [VALIDATION_LOSS]: event.loss })}\n`,
        );
        this.validation.push({ step: event.step, loss: event.loss });
        this.tensorboard?.scalars(event.step, [{ tag: VALIDATION_LOSS, value: event.loss }]);
        break;
      case 'warning':
        break;
    }
  }

  /** Sample images (`samples/<i>`) and answers (`samples`, Markdown) as TensorBoard summaries. */
  private recordSamples(step: number, files: readonly string[]): void {
    if (!this.tensorboard) return;
    const images = files
      .filter((file) => file.endsWith('.png'))
      .map((file) => {
        const png = readFileSync(file);
        // `step-<n>-<i>.png` is `samples/<i>`, `step-<n>-grid.png` `samples/grid`.
        const tag = `samples/${basename(file, '.png').split('-').at(-1)}`;
        // IHDR, right after the signature: width and height, big-endian.
        return { tag, png, width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
      });
    if (images.length > 0) this.tensorboard.images(step, images);
    for (const file of files.filter((f) => f.endsWith('.txt'))) {
      this.tensorboard.text(step, 'samples', readFileSync(file, 'utf8'));
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
    const kept: { line: string; point: LossPoint; validation: boolean }[] = [];
    for (const line of lines) {
      const parsed = parsePoint(line);
      if (parsed && parsed.point.step < firstStep) kept.push({ line, ...parsed });
    }
    if (kept.length !== lines.filter((line) => line !== '').length) {
      writeTextAtomically(path, kept.map(({ line }) => `${line}\n`).join(''));
    }
    for (const { point, validation } of kept) (validation ? this.validation : this.points).push(point);
  }

  async plot(): Promise<void> {
    await writeLossPlot(join(this.outputDir, RUN_FILES.plot), this.points, this.title, this.validation);
  }

  close(): void {
    this.tensorboard?.close();
  }
}

/** A `metrics.jsonl` line's training loss (a step line) or validation loss (a `val/loss` line). */
function parsePoint(line: string): { point: LossPoint; validation: boolean } | undefined {
  try {
    const record = JSON.parse(line) as Record<string, unknown>;
    const { step, loss, [VALIDATION_LOSS]: validationLoss } = record;
    if (typeof step !== 'number') return undefined;
    if (typeof loss === 'number') return { point: { step, loss }, validation: false };
    if (typeof validationLoss === 'number')
      return { point: { step, loss: validationLoss }, validation: true };
    return undefined;
  } catch {
    return undefined;
  }
}
