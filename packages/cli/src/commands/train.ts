import {
  accessSync,
  existsSync,
  constants as fsConstants,
  mkdirSync,
  readdirSync,
  rmdirSync,
  statSync,
} from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { availableParallelism, constants as osConstants } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import {
  backendModuleName,
  ConfigError,
  configWarnings,
  formatConfigIssue,
  type LoraConfig,
  loadConfig,
  runFolder,
  type TrainerBackend,
  type TrainerBackendModule,
  type TrainerEvent,
  type TrainingResult,
  type WarningCode,
} from '@lora/config';
import type { DatasetErrorCode } from '@lora/dataset';
import type { TrainerOrtErrorCode } from '@lora/trainer-ort';
import { CliError, EXIT_FAILURE } from '../cli-error.ts';
import { describeWriteFailure, isDiskProblem } from '../files.ts';
import { print } from '../format.ts';
import { listOption } from '../options.ts';
import { displayPath } from '../paths.ts';
import { ProgressDisplay } from '../run/progress.ts';
import {
  clearEarlierRun,
  MANIFEST_FILE,
  prepareRunFolder,
  RUN_FILES,
  RunRecorder,
  readManifest,
  stampRun,
} from '../run/run-folder.ts';
import { lockRunFolder } from '../run/run-lock.ts';
import { RunTracker } from '../run/run-tracker.ts';
import { seeTroubleshooting, type TroubleshootingSection } from '../troubleshooting.ts';
import { VERSION } from '../version.ts';

export interface TrainOptions {
  config?: string;
  /** `auto` or a checkpoint folder: becomes the config's `resume`. */
  resume?: string;
  set?: string | string[];
  overwrite?: boolean;
  debug?: boolean;
}

/** Exit code of a run stopped by Ctrl-C (after saving), as a shell reports a process ended by SIGINT. */
export const EXIT_INTERRUPTED = 130;

export async function train(options: TrainOptions): Promise<number> {
  if (options.config === undefined) {
    throw new CliError('E_USAGE', 'Which config? Usage: lora train --config configs/my_style_v1.yaml');
  }
  const sets = listOption(options.set);
  const overrides = options.resume === undefined ? sets : [...sets, `resume=${options.resume}`];
  const loaded = await loadConfig(options.config, { overrides }).catch((error: unknown) => {
    if (!ConfigError.isInstance(error) || !error.issues.some((issue) => issue.path[0] === 'resume'))
      throw error;
    throw withSection(asResumeFlag(error, options.resume, sets), 'resumeFoundNothing');
  });
  // A timestamped output_dir names this run's folder now (resume: auto: the newest earlier one).
  const config = { ...loaded, output_dir: runFolder(loaded.output_dir, loaded.resume, new Date()) };
  const progress = new ProgressDisplay(process.stdout);
  for (const warning of configWarnings(config, { cores: availableParallelism() }))
    progress.log(`warning: ${warning.message}`);

  const outputDir = config.output_dir;
  const backend = await loadBackend(config.backend);
  refuseModelFolder(config);
  const existed = existsSync(outputDir);
  const wasEmpty = !existed || readdirSync(outputDir).length === 0;
  await aboutFolder(outputDir, () => mkdirSync(outputDir, { recursive: true }));
  const unlock = lockRunFolder(outputDir, (message) => progress.log(`warning: ${message}`));
  try {
    return await trainLocked(options.config, options, config, sets, backend, progress, { existed, wasEmpty });
  } finally {
    unlock();
    // A folder this run created and left empty (a start that failed) goes too; rmdir keeps one that is not empty.
    if (!existed) rmdirIfEmpty(outputDir);
  }
}

/** The run, once this process holds the folder's lock. */
async function trainLocked(
  configPath: string,
  options: TrainOptions,
  config: LoraConfig,
  sets: readonly string[],
  backend: TrainerBackend,
  progress: ProgressDisplay,
  folder: { existed: boolean; wasEmpty: boolean },
): Promise<number> {
  const outputDir = config.output_dir;
  prepareRunFolder(outputDir, config, {
    resuming: config.resume !== undefined,
    overwrite: options.overwrite === true,
  });
  const startedAt = new Date();
  progress.log(
    `training ${displayPath(configPath)} into ${displayPath(outputDir)} (task ${config.task}, backend ${backend.name})`,
  );

  // The folder changes only once the backend has started the run (see RunTracker).
  const start = (first: TrainerEvent) => {
    // --overwrite starts afresh; with a resume it has nothing to clear (as prepareRunFolder treats it).
    if (options.overwrite && config.resume === undefined) clearEarlierRun(outputDir, outputsOf(first));
    const resumedFrom = resumedCheckpoint(config, first);
    stampRun(outputDir, config, { startedAt, version: VERSION, ...(resumedFrom ? { resumedFrom } : {}) });
    return new RunRecorder(outputDir, config.output_name, { tensorboard: config.tensorboard, startedAt });
  };
  const tracker = new RunTracker(config, progress, start, (code, message) => {
    const section = WARNING_SECTIONS[code];
    return section === undefined ? message : endWith(message, seeTroubleshooting(section));
  });
  const controller = new AbortController();
  let stoppedBy: NodeJS.Signals | undefined;
  const stopHandling = handleInterrupts(
    controller,
    (message) => progress.log(message),
    (signal) => {
      stoppedBy = signal;
    },
  );
  let result: TrainingResult | undefined;
  let failure: unknown;
  try {
    result = await backend.train({
      config,
      outputDir,
      signal: controller.signal,
      logger: {
        debug: (message) => {
          if (options.debug) progress.log(message);
        },
        info: (message) => progress.log(message),
        warn: (message) => progress.log(`warning: ${message}`),
      },
      emit: (event) => tracker.on(event),
    });
  } catch (error) {
    failure = error;
  } finally {
    stopHandling();
    await tracker.settle();
    progress.finish();
  }
  if (result === undefined) {
    // Never started (a wrong model folder, bad data): leave no run folder that the next attempt must --overwrite.
    if (folder.wasEmpty && !tracker.started) await removeRunFiles(outputDir);
    if (isDiskProblem(failure)) throw diskFailure(failure, tracker, resumeCommand(configPath, sets));
    throw withTroubleshooting(failure);
  }
  print(summary(result, config, resumeCommand(configPath, sets), tracker));
  if (result.stopped !== 'aborted') return 0;
  return stoppedBy === undefined ? EXIT_INTERRUPTED : 128 + (osConstants.signals[stoppedBy] ?? 2);
}

/** A full or failing disk: which file, what is safe, and how to continue once there is room. */
function diskFailure(error: NodeJS.ErrnoException, tracker: RunTracker, continueWith: string): TrainError {
  const safe = tracker.lastCheckpoint
    ? `The last complete checkpoint is ${displayPath(tracker.lastCheckpoint)}: training up to it is safe`
    : 'No checkpoint was saved in this run yet';
  return new TrainError(
    error.code!,
    `${describeWriteFailure(error)}. ${safe} (a half-written checkpoint or file is never left under its final name). Free space or fix the disk, then continue with: ${continueWith}. ${seeTroubleshooting('diskFull')}.`,
    { cause: error },
  );
}

/**
 * `output_dir` in (or, for a model folder, under) `base_model`'s folder could replace the model's
 * own files (and `--overwrite` used to delete them): refused before anything is written.
 */
function refuseModelFolder(config: LoraConfig): void {
  const base = resolve(config.base_model);
  const isFolder = statSync(base, { throwIfNoEntry: false })?.isDirectory() === true;
  const modelFolder = isFolder ? base : dirname(base);
  const out = resolve(config.output_dir);
  if (out === modelFolder || (isFolder && out.startsWith(`${modelFolder}${sep}`))) {
    throw new CliError(
      'E_OUTPUT_IN_MODEL',
      `output_dir ${config.output_dir} is ${out === modelFolder ? '' : 'inside '}the folder of base_model (${displayPath(modelFolder)}); a run there could replace the model's files. Choose an output_dir outside it, such as output/${config.output_name}.`,
    );
  }
}

function rmdirIfEmpty(folder: string): void {
  try {
    rmdirSync(folder);
  } catch {
    // not empty (a finished run), or already gone
  }
}

/** Creates the output folder, with messages for a parent that is a file or not writable. */
async function aboutFolder(outputDir: string, create: () => void): Promise<void> {
  try {
    create();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOTDIR' || code === 'EEXIST'
        ? 'a part of that path is a file, not a folder'
        : code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || !writable(existingAncestor(outputDir))
          ? `${existingAncestor(outputDir)} is not writable (a read-only disk, or owned by another user)`
          : (error as Error).message;
    throw new CliError(
      'E_OUTPUT_UNWRITABLE',
      `cannot create the output folder ${outputDir}: ${reason}. Choose an output_dir you can write to.`,
    );
  }
}

/** The deepest folder of `path` that exists (recursive mkdir on a read-only disk says ENOENT). */
function existingAncestor(path: string): string {
  let folder = resolve(path);
  while (!existsSync(folder) && dirname(folder) !== folder) folder = dirname(folder);
  return folder;
}

function writable(folder: string): boolean {
  try {
    accessSync(folder, fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Outputs the run has written by its first event: a Ctrl-C while loading saves a checkpoint (and the adapter) before any step. */
function outputsOf(first: TrainerEvent): string[] {
  if (first.type === 'checkpoint') return [first.path];
  if (first.type === 'sample') return first.files;
  if (first.type !== 'done') return [];
  return [first.adapter, first.adapter_config, first.checkpoint].filter((path) => path !== undefined);
}

/**
 * The checkpoint a resumed run continues from, for the record. `resume: auto` names none: it is
 * the one at the step before the first step (`checkpoints/step-<n>`, the layout the docs describe;
 * none when auto found nothing and training starts at step 1), or the result's when no step was
 * left. A backend with another layout leaves it `auto`.
 */
function resumedCheckpoint(config: LoraConfig, first: TrainerEvent): string | undefined {
  if (config.resume !== 'auto') return config.resume;
  if (first.type === 'done') return first.checkpoint;
  if (first.type !== 'step') return undefined;
  const path = join(config.output_dir, 'checkpoints', `step-${first.step - 1}`);
  if (existsSync(path)) return path;
  return first.step > 1 ? config.resume : undefined;
}

/**
 * Empties a run folder this run found empty of what the run claimed (the manifest included); the
 * folder itself goes once the lock is released, if nothing else arrived in it (`rmdir`).
 */
async function removeRunFiles(outputDir: string): Promise<void> {
  const ours = readManifest(outputDir);
  for (const entry of await readdir(outputDir)) {
    if (ours.has(entry) || entry === MANIFEST_FILE)
      await rm(join(outputDir, entry), { recursive: true, force: true });
  }
}

/** Imports the package `backend:` names, with a message that says how to install it. */
async function loadBackend(name: string): Promise<TrainerBackend> {
  const specifier = backendModuleName(name);
  let loaded: Partial<TrainerBackendModule>;
  try {
    loaded = (await import(specifier)) as Partial<TrainerBackendModule>;
  } catch (error) {
    const missing =
      (error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' &&
      (error as Error).message.includes(`'${specifier}'`);
    if (!missing) throw error;
    throw new CliError(
      'E_BACKEND_NOT_FOUND',
      `backend: ${name} needs the package ${specifier}, which is not installed. Install it where @lora/cli is installed (npm install ${specifier}), or use backend: ort.`,
      EXIT_FAILURE,
    );
  }
  if (typeof loaded.backend?.train !== 'function') {
    throw new CliError(
      'E_BACKEND_INVALID',
      `${specifier} does not export a trainer backend (an object named "backend" with a train method, see @lora/config's TrainerBackend); check backend: ${name}.`,
      EXIT_FAILURE,
    );
  }
  return loaded.backend;
}

/**
 * Ctrl-C, SIGTERM (docker stop, systemd, Slurm) and SIGHUP (a closed terminal) ask the backend
 * to stop after the current step, saving a checkpoint and the adapter; a second one quits at once
 * (checkpoints are written atomically, so none is left half-written).
 */
function handleInterrupts(
  controller: AbortController,
  log: (message: string) => void,
  onStop: (signal: NodeJS.Signals) => void,
): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      log('quitting without saving');
      process.exit(128 + (osConstants.signals[signal] ?? 2));
    }
    onStop(signal);
    controller.abort();
    log(
      `${signal === 'SIGINT' ? 'Ctrl-C' : signal}: stopping after the current step, saving a checkpoint and the adapter (a second one quits at once)`,
    );
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  return () => {
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
  };
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Backend warnings that have a section in the troubleshooting guide. */
const WARNING_SECTIONS: Readonly<Partial<Record<WarningCode, TroubleshootingSection>>> = {
  resume_found_nothing: 'resumeFoundNothing',
  device_fallback: 'deviceFallback',
  precision_notice: 'halfPrecision',
  long_captions: 'dataRefused',
};

/** `message` as a sentence, then `sentence`. */
const endWith = (message: string, sentence: string) => `${message.replace(/[.\s]*$/, '')}. ${sentence}.`;

/** Backend error codes (trainer-ort's) that have a section in the troubleshooting guide. */
const ERROR_SECTIONS: Readonly<
  Partial<Record<TrainerOrtErrorCode | DatasetErrorCode, TroubleshootingSection>>
> = {
  E_NON_FINITE_LOSS: 'nanLoss',
  E_CHECKPOINT_NOT_FOUND: 'resumeFoundNothing',
  E_DEVICE_UNAVAILABLE: 'gpuUnavailable',
  E_INVALID_ENCODING: 'dataRefused',
  E_TEMPLATE: 'dataRefused',
  E_LIMIT_EXCEEDED: 'dataRefused',
};

const isSectionCode = (code: string): code is keyof typeof ERROR_SECTIONS =>
  Object.hasOwn(ERROR_SECTIONS, code);

/** What onnxruntime and the C++ runtime say when an allocation fails. */
const OUT_OF_MEMORY = /bad[ _]alloc|bad allocation|failed to allocate|out of memory/i;

/** A backend error with the troubleshooting section it belongs to; the code stays the backend's. */
class TrainError extends Error {
  override readonly name = 'TrainError';
  constructor(
    readonly code: string,
    message: string,
    options: ErrorOptions,
  ) {
    super(message, options);
  }
}

function withTroubleshooting(error: unknown): unknown {
  if (!(error instanceof Error) || !('code' in error) || typeof error.code !== 'string') return error;
  const code = error.code;
  const section = OUT_OF_MEMORY.test(error.message)
    ? 'outOfMemory'
    : isSectionCode(code)
      ? ERROR_SECTIONS[code]
      : undefined;
  return section === undefined ? error : withSection(error as Error & { code: string }, section);
}

/**
 * `--resume` travels as a `resume=` override; its problems name the flag, not a `--set` the user
 * never typed.
 */
function asResumeFlag(
  error: ConfigError,
  resume: string | undefined,
  sets: readonly string[],
): ConfigError | TrainError {
  const flag = `--set resume=${resume}`;
  if (resume === undefined || sets.includes(`resume=${resume}`)) return error;
  let message = error.message;
  for (const issue of error.issues.filter((issue) => issue.file === flag))
    message = message.replace(formatConfigIssue(issue), `  --resume: ${issue.message}`);
  return new TrainError(error.code, message, { cause: error });
}

function withSection(error: Error & { code: string }, section: TroubleshootingSection): Error {
  if (error.message.includes('troubleshooting.md')) return error;
  return new TrainError(error.code, endWith(error.message, seeTroubleshooting(section)), { cause: error });
}

/** The command that continues a stopped run: the same config and `--set` overrides (which may name its output_dir). */
export function resumeCommand(configPath: string, sets: readonly string[]): string {
  const args = [
    '--config',
    displayPath(configPath),
    ...sets.flatMap((set) => ['--set', set]),
    '--resume',
    'auto',
  ];
  return `lora train ${args.map(shellQuote).join(' ')}`;
}

/** `word` as one POSIX shell word: as is when it holds no special characters, else single-quoted. */
function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

function summary(
  result: TrainingResult,
  config: LoraConfig,
  continueWith: string,
  tracker: RunTracker,
): string {
  const run = displayPath(config.output_dir);
  const adapter = `${displayPath(result.adapter)}${result.adapter_config ? ` (with ${displayPath(result.adapter_config)})` : ''}`;
  const lines =
    result.stopped === 'completed'
      ? [`done: ${tracker.describe(result)}`, `adapter: ${adapter}`]
      : [
          `stopped at ${tracker.describe(result)}`,
          `adapter so far: ${adapter}`,
          ...(result.checkpoint ? [`checkpoint: ${displayPath(result.checkpoint)}`] : []),
          `continue with: ${continueWith}`,
        ];
  const best = tracker.bestValidation;
  if (best && best.step !== result.step) {
    lines.push(
      best.step === 0
        ? `validation loss: lowest before the first step (${best.loss.toFixed(4)}); training did not lower it`
        : `lowest validation loss ${best.loss.toFixed(4)} at step ${best.step}${best.adapter ? `: ${displayPath(best.adapter)}` : ''}`,
    );
  }
  const files = [RUN_FILES.config, RUN_FILES.metrics, `${RUN_FILES.plot}.png`];
  lines.push(`run folder: ${run} (${files.join(', ')})`);
  if (result.logs) lines.push(`curves: tensorboard --logdir ${displayPath(result.logs)}`);
  if (config.task === 'llm' && result.stopped === 'completed') {
    const model = shellQuote(displayPath(config.base_model));
    lines.push(`try it: lora generate --model ${model} --adapter ${shellQuote(run)} --prompt "…"`);
  }
  return lines.join('\n');
}
