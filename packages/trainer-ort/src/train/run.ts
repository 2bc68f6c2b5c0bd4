/**
 * One run, for every model family: the family prepares its model, data and adapter writer
 * (`ModelFamily`); this runs what all of them share — device and resume notices, the loop (or its
 * resumption), the adapter written also when the run is stopped, the `done` event and the run's
 * files — and cleans up: the step graphs hard-link the base weights, so left behind they would
 * keep a deleted model's bytes on disk.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import type { LoraConfig, TrainingResult, TrainingRun } from '@lora/config';
import { writeFileAtomically } from '@lora/dataset';
import { EngineError } from '@lora/engine';
import { TrainerOrtError } from '../errors.ts';
import { CHECKPOINTS_FOLDER, latestCheckpoint } from './checkpoint.ts';
import { runTrainingLoop, type TrainingLoopResult } from './loop.ts';
import { type MemoryEstimateSource, memoryReporter } from './memory-report.ts';
import {
  loopSettingsFromConfig,
  type PeriodicTask,
  type TrainingLoopOptions,
  type TrainingLoopSettings,
} from './options.ts';
import { announceRunDevice } from './run-device.ts';
import { GRAPHS_FOLDER } from './step-graphs.ts';
import {
  type BestValidation,
  OVERFITTING_PATIENCE,
  ValidationHistory,
  type ValidationSet,
  validationLoss,
} from './validation.ts';

/** Files of the run folder the CLI writes; the result points at them. */
const RUN_FILES = { config: 'config.yaml', metrics: 'metrics.jsonl', logs: 'logs' } as const;

/** The LoRA of a moment, as the adapter writer needs it. */
export interface AdapterState extends Pick<TrainingLoopResult, 'step' | 'epoch' | 'precision'> {
  /** Every LoRA parameter's values, by name. */
  values: ReadonlyMap<string, Float32Array>;
}

/** What a family sets up for one run. */
export interface PreparedRun<Batch> extends Pick<TrainingLoopOptions<Batch>, 'model' | 'data' | 'parallel'> {
  /**
   * Writes the adapter of `state` (the loop's result, also a stopped run's; or the best validation
   * step's) into `folder` and names its files.
   */
  writeAdapter(
    state: AdapterState,
    folder: string,
  ): Promise<Pick<TrainingResult, 'adapter' | 'adapter_config'>>;
  /** The validation loss's data and model, when the config asks for one. */
  validation?: ValidationSet<Batch>;
  /** Frees what `prepare` opened (files, caches); called once, whatever happened. */
  close(): Promise<void>;
  /** What the memory estimate said before the first step needs. */
  memory: MemoryEstimateSource;
  /**
   * Writes samples of `prompts` with these LoRA values into `folder` (file names starting with
   * `name`) and returns the files' paths.
   */
  sample(
    prompts: readonly string[],
    values: ReadonlyMap<string, Float32Array>,
    folder: string,
    name: string,
  ): Promise<string[]>;
}

/**
 * A model family (LLaMA-like LLMs, Stable Diffusion 1.x): its checkpoint layouts, module lists,
 * graph builder and adapter files live in its folder under `models/`; this is what the run needs.
 */
export interface ModelFamily {
  /** The config's task this family trains. */
  readonly task: LoraConfig['task'];
  /** Opens the model, reads and checks the data, and builds the trainable model. */
  prepare(run: TrainingRun): Promise<PreparedRun<unknown>>;
}

/** Trains `run.config` with `family`, reporting through `run.emit`, and resolves with the run's files. */
export async function runFamily(run: TrainingRun, family: ModelFamily): Promise<TrainingResult> {
  const { config, outputDir, logger, emit } = run;
  const warn = (code: 'device_fallback' | 'precision_notice', message: string) =>
    emit({ type: 'warning', code, message });
  try {
    const choice = await announceRunDevice(config, (message) => logger.info(message), warn);
    const prepared = await family.prepare(run);
    try {
      const settings = loopSettingsFromConfig(config);
      await announceResume(run, settings.resume);
      const { microBatchesPerEpoch } = prepared.data;
      const stepsPerEpoch = Math.ceil(microBatchesPerEpoch / settings.gradientAccumulationSteps);
      logger.info(
        `training ${settings.maxSteps ?? settings.epochs! * stepsPerEpoch} steps (${stepsPerEpoch} per epoch, ` +
          `${microBatchesPerEpoch} micro-batches of ${config.batch_size}, ${settings.gradientAccumulationSteps} per step)`,
      );
      const samples = await samplePolicy(run, prepared);
      const validation = await validationPolicy(run, prepared, settings);
      const result = await runTrainingLoop({
        ...settings,
        ...(samples ? { samples } : {}),
        ...(validation ? { validation } : {}),
        model: prepared.model,
        data: prepared.data,
        ...(prepared.parallel ? { parallel: prepared.parallel } : {}),
        outputDir,
        signal: run.signal,
        onEvent: emit,
        // The CPU's memory is known; onnxruntime-node reports no GPU's.
        onGradientsGraph: memoryReporter(
          config,
          prepared.memory,
          (message) => logger.info(message),
          emit,
          choice.device === 'cpu' ? totalmem() : undefined,
        ),
      }).catch((error: unknown) => {
        throw explainLoopError(error, config);
      });
      const values = new Map([...result.parameters].map(([name, tensor]) => [name, tensor.data]));
      const files = await prepared.writeAdapter({ ...result, values }, outputDir);
      const done: TrainingResult = {
        stopped: result.stopped,
        step: result.step,
        epoch: result.epoch,
        ...files,
        config: join(outputDir, RUN_FILES.config),
        metrics: join(outputDir, RUN_FILES.metrics),
        ...(config.tensorboard ? { logs: join(outputDir, RUN_FILES.logs) } : {}),
        ...(result.checkpoint === undefined ? {} : { checkpoint: result.checkpoint }),
      };
      emit({ type: 'done', ...done });
      return done;
    } finally {
      await prepared.close();
    }
  } finally {
    await rm(join(outputDir, GRAPHS_FOLDER), { recursive: true, force: true });
  }
}

/** The folder of `<output_dir>` samples go to. */
export const SAMPLES_FOLDER = 'samples';

/**
 * When and what the run samples (`sample_prompts`, `sample_every_n_steps` / `_epochs`); each
 * sampling is reported as a `sample` event and its time logged, since it is not free.
 */
async function samplePolicy(
  run: TrainingRun,
  prepared: PreparedRun<unknown>,
): Promise<PeriodicTask | undefined> {
  const { config, outputDir, emit, logger } = run;
  if (config.sample_prompts === undefined) return undefined;
  const prompts = await readSamplePrompts(config.sample_prompts);
  const folder = join(outputDir, SAMPLES_FOLDER);
  return {
    ...(config.sample_every_n_steps === undefined ? {} : { everySteps: config.sample_every_n_steps }),
    ...(config.sample_every_n_epochs === undefined ? {} : { everyEpochs: config.sample_every_n_epochs }),
    async take({ step, epoch }, values) {
      const started = performance.now();
      await mkdir(folder, { recursive: true });
      const files = await prepared.sample(prompts, values, folder, `step-${String(step).padStart(6, '0')}`);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      logger.info(`samples at step ${step}: ${files.length} file(s) in ${folder} (${seconds} s)`);
      emit({ type: 'sample', step, epoch, files });
    },
  };
}

/** The folder of `<output_dir>` the adapter of the best validation step goes to. */
export const BEST_FOLDER = 'best';
/** Beside that adapter: its step and validation loss, which a resumed run starts from. */
const BEST_RECORD = 'validation.json';

/**
 * When the run evaluates the validation loss (`validation_every_n_steps`, else every epoch), and
 * what it does with each value: a `validation` event, the adapter of each new best step (after
 * step 0) written to `<output_dir>/best/`, and an `overfitting` warning when the loss has risen
 * `OVERFITTING_PATIENCE` evaluations in a row.
 */
async function validationPolicy(
  run: TrainingRun,
  prepared: PreparedRun<unknown>,
  settings: TrainingLoopSettings,
): Promise<PeriodicTask | undefined> {
  const { config, outputDir, emit, logger } = run;
  const set = prepared.validation;
  if (set === undefined) return undefined;
  const every = config.validation_every_n_steps;
  logger.info(
    `validation loss on ${set.description}, ${every === undefined ? 'at the end of every epoch' : `every ${every} steps`}, before the first step and after the last`,
  );
  const best = join(outputDir, BEST_FOLDER);
  const history = new ValidationHistory(
    settings.resume === undefined ? undefined : await readBestRecord(join(best, BEST_RECORD)),
  );
  const sessionSettings = {
    device: settings.device,
    mixedPrecision: settings.mixedPrecision,
    onNotice: (message: string) => logger.info(message),
  };
  return {
    ...(every === undefined ? { everyEpochs: 1 } : { everySteps: every }),
    async take({ step, epoch, precision }, values) {
      const started = performance.now();
      const loss = await validationLoss(set, values, join(outputDir, GRAPHS_FOLDER), sessionSettings);
      const record = history.record(step, loss);
      if (record.improved && step > 0) {
        await mkdir(best, { recursive: true });
        const { adapter } = await prepared.writeAdapter({ step, epoch, precision, values }, best);
        record.best.adapter = adapter;
        const path = join(best, BEST_RECORD);
        await writeFileAtomically(path, `${JSON.stringify(record.best)}\n`);
      }
      const seconds = (performance.now() - started) / 1000;
      emit({ type: 'validation', step, epoch, loss, best: { ...record.best }, seconds });
      if (record.overfitting) {
        const where =
          record.best.step === 0
            ? 'it was lowest before the first step, so training has not helped on this data'
            : `the adapter of step ${record.best.step} is in ${best}`;
        emit({
          type: 'warning',
          code: 'overfitting',
          message: `the validation loss has risen ${OVERFITTING_PATIENCE} evaluations in a row (${loss.toFixed(4)} at step ${step}, lowest ${record.best.loss.toFixed(4)} at step ${record.best.step}): the LoRA is likely overfitting; ${where}. Stop here, or train with a lower learning_rate, fewer steps or more data`,
        });
      }
    },
  };
}

/** The best validation step a stopped run recorded, if it recorded one. */
async function readBestRecord(path: string): Promise<BestValidation | undefined> {
  try {
    const { step, loss, adapter } = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    if (typeof step !== 'number' || typeof loss !== 'number') return undefined;
    return { step, loss, ...(typeof adapter === 'string' ? { adapter } : {}) };
  } catch {
    return undefined;
  }
}

/** `sample_prompts` as a list: the list itself, or the file's non-empty lines that are not `#` comments. */
async function readSamplePrompts(prompts: readonly string[] | string): Promise<string[]> {
  if (typeof prompts !== 'string') return [...prompts];
  const text = await readFile(prompts, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new TrainerOrtError(
      'E_INVALID_ARGUMENT',
      `sample_prompts ${prompts} cannot be read (${error.code ?? error.message}); give a text file with one prompt per line, or a list of prompts`,
    );
  });
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  if (lines.length === 0) {
    throw new TrainerOrtError(
      'E_INVALID_ARGUMENT',
      `sample_prompts ${prompts} holds no prompt (one per line; # starts a comment)`,
    );
  }
  return lines;
}

async function announceResume(run: TrainingRun, resume: string | undefined): Promise<void> {
  if (resume === undefined) return;
  const from = resume === 'auto' ? await latestCheckpoint(run.outputDir) : resume;
  if (from !== undefined) {
    run.logger.info(`resuming from ${from}`);
    return;
  }
  run.emit({
    type: 'warning',
    code: 'resume_found_nothing',
    message: `resume: auto found no checkpoint in ${join(run.outputDir, CHECKPOINTS_FOLDER)}, so training starts at step 0`,
  });
}

/** Loop errors that name library options get the config key a user can change instead. */
function explainLoopError(error: unknown, config: LoraConfig): unknown {
  if (EngineError.isInstance(error) && error.code === 'E_EXTERNAL_DATA_CROSS_DEVICE') {
    return new EngineError(
      error.code,
      `training cannot reach the weights of base_model ${config.base_model} from output_dir ${config.output_dir}: ${error.message}. Put output_dir on the model's drive (or move the model)`,
      { cause: error },
    );
  }
  return error;
}
