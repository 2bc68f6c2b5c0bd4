/**
 * The training loop: micro-batches through the gradients graph, float32 gradient sums on the
 * host, global-norm clipping, one update per `gradientAccumulationSteps` micro-batches, the LR
 * schedule, fp16 loss scaling, checkpoints, resume and graceful stop.
 *
 * Everything a step computes is a function of the state saved in the last checkpoint and of
 * (seed, epoch, micro-batch index), so a run interrupted anywhere and resumed produces the same
 * bits as one that never stopped: the micro-batches of an unfinished step are replayed.
 *
 * The gradient sums come from an engine (`engine.ts`): the gradients graph in this process with
 * the LoRA state on the host, on a WebGPU device with the state in GPU memory (`device-engine.ts`),
 * or worker processes that each take a shard of every micro-batch (`parallel/`). The loop decides
 * each update (learning rates, clipping, loss scale); the engine applies it where the state is.
 * A multi-shape model (`shapeKey`) has one gradients graph per shape key (`gradient-sessions.ts`);
 * its first micro-batch is loaded before the engine opens, to choose the graph built first.
 */

import type { WarningCode } from '@lora/config';
import { type HostTensor, hostTensor } from '@lora/engine';
import { chooseDevice } from '../device.ts';
import { TrainerOrtError } from '../errors.ts';
import { DEFAULT_PARAMETER_GROUP } from '../lora.ts';
import {
  type Checkpoint,
  type CheckpointMeta,
  listCheckpoints,
  pruneCheckpoints,
  readCheckpoint,
  type TrainingState,
  writeCheckpoint,
} from './checkpoint.ts';
import { openDeviceEngine } from './device-engine.ts';
import {
  type GradientEngine,
  openLocalEngine,
  type StepGradients,
  type StepSums,
  type WorkerStepTime,
} from './engine.ts';
import { shapeKeyOf } from './gradient-sessions.ts';
import type { TrainState } from './host-state.ts';
import { optimizerSlots, slotName, updateScalars } from './optimizer.ts';
import {
  checkLoopOptions,
  type LoopEvent,
  type LoopPoint,
  type PeriodicTask,
  type TrainingLoopOptions,
} from './options.ts';
import { openWorkerEngine } from './parallel/engine.ts';
import { WorkerError } from './parallel/worker-error.ts';
import { DEFAULT_LOSS_SCALE, MIN_LOSS_SCALE, nextLossScale, type Precision } from './precision.ts';
import { learningRate, warmupStepsFromRatio } from './schedule.ts';
import { groupOf } from './step-graphs.ts';

/** PyTorch's `clip_grad_norm_` adds this to the norm before dividing. */
const CLIP_EPSILON = 1e-6;

export interface TrainingLoopResult {
  stopped: 'completed' | 'aborted';
  /** Optimizer steps taken, counting from the first run of a resumed series. */
  step: number;
  /** 1-based epoch of the last step (0 when no step was taken). */
  epoch: number;
  /** Updates applied (steps minus skipped fp16 steps). */
  updates: number;
  /** Final float32 values of every LoRA parameter, by name: what the model package writes as the adapter. */
  parameters: ReadonlyMap<string, HostTensor<'float32'>>;
  /** The newest checkpoint folder. */
  checkpoint: string | undefined;
  precision: Precision;
}

/** Runs (or resumes) training to the end, or to the step at which `signal` fires. */
export async function runTrainingLoop<Batch>(
  options: TrainingLoopOptions<Batch>,
): Promise<TrainingLoopResult> {
  checkLoopOptions(options);
  const emit = options.onEvent ?? (() => {});
  const resumed = await checkpointToResume(options, emit);
  const first = await firstBatch(options, resumed?.checkpoint.meta);
  const engine = await openEngine(options, emit, first && shapeKeyOf(options.model, first.batch));
  try {
    return await new Run(options, engine, emit, resumed, first).run();
  } finally {
    await engine.dispose();
  }
}

interface Resumed {
  path: string;
  checkpoint: Checkpoint;
}

/**
 * The checkpoint `resume` names. `auto` takes the newest in `outputDir` that reads back whole: a
 * checkpoint left unreadable (a disk that filled up, a file edited by hand) is skipped with a
 * warning for the one before it.
 */
async function checkpointToResume<Batch>(
  options: TrainingLoopOptions<Batch>,
  emit: (event: LoopEvent) => void,
): Promise<Resumed | undefined> {
  const { resume, outputDir } = options;
  if (resume === undefined) return undefined;
  if (resume !== 'auto') return { path: resume, checkpoint: await readCheckpoint(resume) };
  for (const { path } of (await listCheckpoints(outputDir)).reverse()) {
    try {
      return { path, checkpoint: await readCheckpoint(path) };
    } catch (error) {
      if (!TrainerOrtError.isInstance(error) || error.code !== 'E_CHECKPOINT_INVALID') throw error;
      emit({
        type: 'warning',
        code: 'checkpoint_skipped',
        message: `resume: auto skips ${path}, which cannot be used (${error.message}); trying the checkpoint before it`,
      });
    }
  }
  return undefined;
}

/** A micro-batch loaded ahead of its step. */
interface Prefetched<Batch> {
  epoch: number;
  index: number;
  batch: Batch;
}

/**
 * A multi-shape model's first micro-batch (of a fresh or resumed run), whose shape key decides
 * the gradients graph built first; the step that needs it takes it from here.
 */
async function firstBatch<Batch>(
  options: TrainingLoopOptions<Batch>,
  meta: CheckpointMeta | undefined,
): Promise<Prefetched<Batch> | undefined> {
  if (options.model.shapeKey === undefined) return undefined;
  const { epoch, position } = meta
    ? continuedState(meta, options.data.microBatchesPerEpoch)
    : { epoch: 0, position: 0 };
  return { epoch, index: position, batch: await options.data.batch(epoch, position) };
}

/**
 * Where a run resumed from `meta` continues. When the data now has fewer micro-batches per
 * epoch than the checkpoint's position, the next epoch starts.
 */
function continuedState(meta: CheckpointMeta, microBatches: number): TrainingState {
  const { step, updates, epoch, position, epochLoss } = meta;
  if (meta.microBatchesPerEpoch !== microBatches && position >= microBatches) {
    return { step, updates, epoch: epoch + 1, position: 0, epochLoss: { sum: 0, weight: 0 } };
  }
  return { step, updates, epoch, position, epochLoss };
}

/** Worker processes when `workers` and `parallel` are both given, else this process. */
async function openEngine<Batch>(
  options: TrainingLoopOptions<Batch>,
  emit: (event: LoopEvent) => void,
  firstKey: string | undefined,
): Promise<GradientEngine<Batch>> {
  const onNotice = (message: string) => emit({ type: 'warning', code: 'device_fallback', message });
  const common = {
    outputDir: options.outputDir,
    optimizer: options.optimizer,
    mixedPrecision: options.mixedPrecision,
    seed: options.seed,
    ...(options.threads === undefined ? {} : { threads: options.threads }),
    ...(options.copyExternalData === undefined ? {} : { copyExternalData: options.copyExternalData }),
    ...(options.onGradientsGraph === undefined ? {} : { onGradientsGraph: options.onGradientsGraph }),
    onNotice,
  };
  const { workers, parallel } = options;
  if (workers !== undefined && parallel !== undefined) {
    return openWorkerEngine({ ...common, parallel, workers, count: (batch) => options.data.count(batch) });
  }
  if (workers !== undefined) {
    emit({
      type: 'warning',
      code: 'parallel_unavailable',
      message: `${workers.length} worker processes were asked for (device_ids or num_workers), but this model gives no recipe to rebuild it in a worker (the loop's parallel option); training in this process on device ${options.device}`,
    });
  }
  const local = { ...common, device: options.device };
  return (await chooseDevice(options.device)).device === 'webgpu'
    ? openDeviceEngine(options.model, local, firstKey)
    : openLocalEngine(options.model, local, firstKey);
}

/** A `step` event; parallel runs add each worker's share of the step. */
type StepEvent = Extract<LoopEvent, { type: 'step' }> & { workers?: WorkerStepTime[] };

class Run<Batch> {
  private readonly microBatches: number;
  private readonly totalSteps: number;
  private readonly totalEpochs: number;
  private readonly warmupSteps: number;
  private readonly slots: readonly string[];
  private readonly growthInterval: number;
  private state: TrainingState;
  /** The values and optimizer state a fresh run starts from. */
  private readonly initial: TrainState = { values: new Map(), optimizerState: new Map() };
  private checkpoint: string | undefined;
  /** Step of the checkpoint that holds the current state, if one does. */
  private savedStep: number | undefined;

  constructor(
    private readonly options: TrainingLoopOptions<Batch>,
    private readonly engine: GradientEngine<Batch>,
    private readonly emit: (event: LoopEvent) => void,
    private readonly resumed: Resumed | undefined,
    private prefetched: Prefetched<Batch> | undefined,
  ) {
    this.microBatches = options.data.microBatchesPerEpoch;
    const stepsPerEpoch = Math.ceil(this.microBatches / options.gradientAccumulationSteps);
    this.totalSteps = options.maxSteps ?? options.epochs! * stepsPerEpoch;
    this.totalEpochs = Math.ceil(this.totalSteps / stepsPerEpoch);
    const { warmupSteps, warmupRatio } = options.schedule;
    this.warmupSteps = warmupSteps ?? (warmupRatio ? warmupStepsFromRatio(warmupRatio, this.totalSteps) : 0);
    this.slots = optimizerSlots(options.optimizer);
    this.growthInterval = options.lossScale?.growthInterval ?? DEFAULT_LOSS_SCALE.growthInterval;
    this.state = {
      step: 0,
      updates: 0,
      epoch: 0,
      position: 0,
      epochLoss: { sum: 0, weight: 0 },
      ...(engine.precision === 'fp16'
        ? { lossScale: { scale: options.lossScale?.initial ?? DEFAULT_LOSS_SCALE.initial, goodSteps: 0 } }
        : {}),
    };
    for (const p of engine.parameters) {
      const size = p.shape.reduce((a, b) => a * b, 1);
      if (p.initial.length !== size) {
        throw new TrainerOrtError(
          'E_INVALID_ARGUMENT',
          `parameter '${p.name}': ${p.initial.length} initial values for shape [${p.shape.join(', ')}]`,
        );
      }
      this.initial.values.set(p.name, Float32Array.from(p.initial));
      for (const slot of this.slots)
        this.initial.optimizerState.set(slotName(p.name, slot), new Float32Array(size));
    }
  }

  async run(): Promise<TrainingLoopResult> {
    if (this.resumed) {
      const { path, checkpoint } = this.resumed;
      await this.engine.load(this.restore(path, checkpoint));
      this.checkpoint = path;
      this.savedStep = this.state.step;
    } else {
      await this.engine.load(this.initial);
      for (const task of this.periodicTasks()) await task.take(this.point(), this.initial.values);
    }
    const { signal } = this.options;
    while (this.state.step < this.totalSteps) {
      if (signal?.aborted) {
        await this.save();
        return await this.result('aborted');
      }
      await this.step();
    }
    return await this.result('completed');
  }

  /** The checkpoint's state, once it is known to fit this run; the loop state continues from it. */
  private restore(path: string, { meta, values, optimizerState }: Checkpoint): TrainState {
    const invalid = (message: string) =>
      new TrainerOrtError(
        'E_CHECKPOINT_INVALID',
        `checkpoint ${path} does not fit this run: ${message}; resume with the settings it was written with, or start a new run`,
      );
    if (meta.optimizer !== this.options.optimizer.type) {
      throw invalid(`it holds ${meta.optimizer} state, this run uses ${this.options.optimizer.type}`);
    }
    for (const [name, current] of this.initial.values) {
      const saved = values.get(name);
      if (saved?.length !== current.length)
        throw invalid(`parameter '${name}' is missing or has another size`);
      for (const slot of this.slots) {
        const key = slotName(name, slot);
        if (optimizerState.get(key)?.length !== current.length)
          throw invalid(`optimizer state '${key}' is missing`);
      }
    }
    if (values.size !== this.initial.values.size)
      throw invalid(`it holds ${values.size} parameters, the model ${this.initial.values.size}`);
    if (meta.step > this.totalSteps) {
      throw invalid(
        `it was saved after step ${meta.step}, past this run's last step ${this.totalSteps} (raise epochs or max_steps to train further)`,
      );
    }
    if (meta.updates > meta.step || meta.position > meta.microBatchesPerEpoch) {
      throw invalid(
        `its counters disagree (step ${meta.step}, updates ${meta.updates}, micro-batch ${meta.position} of ${meta.microBatchesPerEpoch})`,
      );
    }
    this.state = continuedState(meta, this.microBatches);
    if (this.engine.precision === 'fp16') {
      this.state.lossScale = meta.lossScale ?? {
        scale: this.options.lossScale?.initial ?? DEFAULT_LOSS_SCALE.initial,
        goodSteps: 0,
      };
    }
    this.warnAboutChanges(meta);
    return { values, optimizerState };
  }

  private warnAboutChanges(meta: CheckpointMeta): void {
    const warn = (code: WarningCode, message: string) => this.emit({ type: 'warning', code, message });
    if (meta.microBatchesPerEpoch !== this.microBatches) {
      warn(
        'resume_data_changed',
        `the checkpoint saw ${meta.microBatchesPerEpoch} micro-batches per epoch, the data now gives ${this.microBatches}: continuing at epoch ${this.state.epoch + 1}, but the order of batches differs from the interrupted run`,
      );
    }
    if (meta.rng.seed !== this.options.seed) {
      warn(
        'resume_seed_changed',
        `the checkpoint was trained with seed ${meta.rng.seed}, this run uses ${this.options.seed}`,
      );
    }
    const saved = meta.config as Record<string, unknown> | undefined;
    const current = this.options.config as Record<string, unknown> | undefined;
    if (saved && current && typeof saved === 'object' && typeof current === 'object') {
      const keys = [...new Set([...Object.keys(saved), ...Object.keys(current)])].filter(
        (key) => key !== 'resume' && JSON.stringify(saved[key]) !== JSON.stringify(current[key]),
      );
      if (keys.length > 0) {
        warn('resume_config_changed', `settings changed since the checkpoint: ${keys.join(', ')}`);
      }
    }
  }

  private learningRates(): Map<string, number> {
    const { schedule, learningRate: base, groupLearningRates = {} } = this.options;
    const rates = new Map<string, number>();
    for (const p of this.engine.parameters) {
      const group = groupOf(p);
      if (rates.has(group)) continue;
      const baseLr = groupLearningRates[group] ?? base;
      const settings = {
        scheduler: schedule.scheduler,
        baseLr,
        totalSteps: this.totalSteps,
        warmupSteps: this.warmupSteps,
        numCycles: schedule.cycles ?? 1,
      };
      rates.set(group, learningRate(settings, this.state.updates));
    }
    return rates;
  }

  /** One optimizer step: its micro-batches, then the update (or a skip), events and checkpoints. */
  private async step(): Promise<void> {
    const started = performance.now();
    const { epoch, position: start } = this.state;
    const end = Math.min(start + this.options.gradientAccumulationSteps, this.microBatches);
    const scale = this.state.lossScale?.scale ?? 1;
    let gradients: StepGradients & { examples: number; units: number; unit: 'tokens' | 'images' };
    try {
      gradients = await this.gradients(epoch, start, end, scale);
    } catch (error) {
      if (WorkerError.isInstance(error) && error.code === 'E_WORKER_FAILED')
        throw await this.workerFailed(error);
      throw error;
    }
    const { sum, workers, examples, units, unit } = gradients;

    const rates = this.learningRates();
    const mainLr = rates.get(DEFAULT_PARAMETER_GROUP) ?? rates.values().next().value ?? 0;
    const loss = sum.lossSum / sum.weight;
    const gradNorm = Math.sqrt(sum.squaredNorm()) / (sum.weight * scale);
    const finite = Number.isFinite(loss) && Number.isFinite(gradNorm);
    if (!(sum.weight > 0)) {
      this.emit({
        type: 'warning',
        code: 'empty_step',
        message: `step ${this.state.step + 1}: its micro-batches have no loss weight (no label tokens or examples); no update`,
      });
    } else if (finite) {
      await this.update(sum, rates, gradNorm, scale);
      this.state.epochLoss.sum += sum.lossSum;
      this.state.epochLoss.weight += sum.weight;
    } else if (this.state.lossScale) {
      await this.reduceLossScale(loss);
    } else {
      await this.save();
      throw new TrainerOrtError(
        'E_NON_FINITE_LOSS',
        `step ${this.state.step + 1} (epoch ${epoch + 1}, micro-batches ${start}–${end - 1}): the ${Number.isFinite(loss) ? 'gradient' : 'loss'} is not finite (loss ${loss}, gradient norm ${gradNorm}). ` +
          `The last good state is saved in ${this.checkpoint}. Try a lower learning_rate (now ${this.options.learningRate}), ` +
          `max_grad_norm: 1 if clipping is off, check the data of these micro-batches, and for bf16 try mixed_precision: no; ` +
          'resume: auto continues from the saved state.',
      );
    }

    this.state.step += 1;
    this.state.position = end;
    const seconds = Math.max((performance.now() - started) / 1000, 1e-9);
    const event: StepEvent = {
      type: 'step',
      step: this.state.step,
      epoch: epoch + 1,
      loss,
      lr: mainLr,
      grad_norm: gradNorm,
      examples_per_s: examples / seconds,
      ...(unit === 'tokens' ? { tokens_per_s: units / seconds } : { images_per_s: units / seconds }),
      ...(this.state.lossScale ? { loss_scale: scale } : {}),
      ...(workers ? { workers } : {}),
      total_steps: this.totalSteps,
      total_epochs: this.totalEpochs,
    };
    this.emit(event);
    const epochEnded = end >= this.microBatches;
    if (epochEnded) {
      const { sum: lossSum, weight } = this.state.epochLoss;
      this.emit({ type: 'epoch_end', epoch: epoch + 1, step: this.state.step, loss: lossSum / weight });
      this.state = { ...this.state, epoch: epoch + 1, position: 0, epochLoss: { sum: 0, weight: 0 } };
    }
    if (this.isDue(this.options.checkpoints, epochEnded)) await this.save();
    const due = this.periodicTasks().filter((task) => this.isDue(task, epochEnded));
    if (due.length > 0) {
      const { values } = await this.engine.state();
      for (const task of due) await task.take(this.point(), values);
    }
  }

  /** Whether a schedule falls on the step just taken (the last step always does). */
  private isDue(
    { everySteps, everyEpochs }: { everySteps?: number; everyEpochs?: number },
    epochEnded: boolean,
  ): boolean {
    return (
      (everySteps !== undefined && this.state.step % everySteps === 0) ||
      (epochEnded && everyEpochs !== undefined && this.state.epoch % everyEpochs === 0) ||
      this.state.step === this.totalSteps
    );
  }

  /** Samples first, then the validation loss. */
  private periodicTasks(): PeriodicTask[] {
    const { samples, validation } = this.options;
    return [samples, validation].filter((task) => task !== undefined);
  }

  private point(): LoopPoint {
    return { step: this.state.step, epoch: this.state.epoch, precision: this.engine.precision };
  }

  /** The step's micro-batches through the engine, and what they held. */
  private async gradients(epoch: number, start: number, end: number, scale: number) {
    const { data } = this.options;
    this.engine.begin(scale);
    let examples = 0;
    let units = 0;
    let unit: 'tokens' | 'images' = 'tokens';
    for (let index = start; index < end; index++) {
      const batch = this.takePrefetched(epoch, index) ?? (await data.batch(epoch, index));
      const count = data.count(batch);
      examples += count.examples;
      if ('tokens' in count) units += count.tokens;
      else [units, unit] = [units + count.images, 'images'];
      await this.engine.add(batch, epoch, index);
    }
    return { ...(await this.engine.end()), examples, units, unit };
  }

  private takePrefetched(epoch: number, index: number): Batch | undefined {
    const prefetched = this.prefetched;
    if (prefetched?.epoch !== epoch || prefetched.index !== index) return undefined;
    this.prefetched = undefined;
    return prefetched.batch;
  }

  /** A worker died: the state is still the last completed step's; save it and say so. */
  private async workerFailed(error: WorkerError): Promise<WorkerError> {
    await this.save();
    return new WorkerError(
      'E_WORKER_FAILED',
      `${error.message}. Training stopped in step ${this.state.step + 1}; the state after step ${this.state.step} is saved in ${this.checkpoint}, and resume: auto continues from it.`,
      { ...(error.worker === undefined ? {} : { worker: error.worker }), cause: error },
    );
  }

  private async update(sum: StepSums, rates: Map<string, number>, gradNorm: number, scale: number) {
    const { maxGradNorm, optimizer } = this.options;
    const clip = maxGradNorm > 0 ? Math.min(1, maxGradNorm / (gradNorm + CLIP_EPSILON)) : 1;
    await this.engine.update(
      updateScalars(optimizer, rates, this.state.updates + 1, clip / (sum.weight * scale)),
    );
    this.state.updates += 1;
    if (this.state.lossScale)
      this.state.lossScale = nextLossScale(this.state.lossScale, true, this.growthInterval);
  }

  /** fp16: skip the step and halve the scale; stop (after saving) when even a scale below 1 overflows. */
  private async reduceLossScale(loss: number): Promise<void> {
    const current = this.state.lossScale!;
    const next = nextLossScale(current, false, this.growthInterval);
    if (next.scale < MIN_LOSS_SCALE) {
      await this.save();
      throw new TrainerOrtError(
        'E_NON_FINITE_LOSS',
        `step ${this.state.step + 1}: fp16 gradients overflow even at loss scale ${current.scale} (loss ${loss}), so the forward pass itself overflows in float16. ` +
          `Use mixed_precision: bf16 (on GPUs that have it) or no; resume: auto continues from the last good state, saved in ${this.checkpoint}.`,
      );
    }
    this.state.lossScale = next;
    this.emit({
      type: 'warning',
      code: 'loss_scale_reduced',
      message: `step ${this.state.step + 1}: non-finite fp16 gradients, step skipped; loss scale ${current.scale} → ${next.scale}`,
    });
  }

  private async save(): Promise<void> {
    if (this.savedStep === this.state.step) return;
    const meta: CheckpointMeta = {
      format: 'lora-trainer-ort-checkpoint',
      version: 1,
      ...structuredClone(this.state),
      microBatchesPerEpoch: this.microBatches,
      rng: { algorithm: 'xoshiro128**', seed: this.options.seed },
      optimizer: this.options.optimizer.type,
      parameters: this.engine.parameters.map((p) => ({
        name: p.name,
        shape: [...p.shape],
        group: groupOf(p),
      })),
      ...(this.options.config === undefined ? {} : { config: this.options.config }),
    };
    const path = await writeCheckpoint(this.options.outputDir, { meta, ...(await this.engine.state()) });
    await pruneCheckpoints(this.options.outputDir, this.options.checkpoints.keepLast);
    this.checkpoint = path;
    this.savedStep = this.state.step;
    this.emit({ type: 'checkpoint', epoch: this.reachedEpoch(), step: this.state.step, path });
  }

  /** 1-based epoch of the last step taken (the state points at the next micro-batch). */
  private reachedEpoch(): number {
    return this.state.position === 0 ? this.state.epoch : this.state.epoch + 1;
  }

  private async result(stopped: TrainingLoopResult['stopped']): Promise<TrainingLoopResult> {
    const { values } = await this.engine.state();
    const parameters = new Map(
      this.engine.parameters.map((p) => [p.name, hostTensor('float32', p.shape, values.get(p.name)!)]),
    );
    return {
      stopped,
      step: this.state.step,
      epoch: this.reachedEpoch(),
      updates: this.state.updates,
      parameters,
      checkpoint: this.checkpoint,
      precision: this.engine.precision,
    };
  }
}
