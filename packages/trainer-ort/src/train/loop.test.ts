import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Graph, hostTensor } from '@lora/engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Checkpoint, listCheckpoints, readCheckpoint } from './checkpoint.ts';
import { runTrainingLoop, type TrainingLoopResult } from './loop.ts';
import type { LoopEvent } from './options.ts';
import { learningRate } from './schedule.ts';
import {
  type DataOptions,
  type MlpBatch,
  type MlpOverrides,
  mlpData,
  mlpModel,
  parameterBytes,
  referenceLoop,
} from './test-model.ts';

const folders: string[] = [];
afterAll(async () => {
  await Promise.all(folders.map((f) => rm(f, { recursive: true, force: true })));
});

const options = (overrides: MlpOverrides = {}) => referenceLoop(folders, overrides);

async function train(overrides: MlpOverrides = {}) {
  const events: LoopEvent[] = [];
  const opts = await options({ ...overrides, onEvent: (e) => events.push(e) });
  const result = await runTrainingLoop(opts);
  return { result, events, outputDir: opts.outputDir, steps: events.filter((e) => e.type === 'step') };
}

/** A data source that throws (like a killed process) the first time it reaches (epoch, index). */
function crashAt(epoch: number, index: number): Partial<DataOptions> {
  let crashed = false;
  return {
    onBatch: (e, i) => {
      if (!crashed && e === epoch && i === index) {
        crashed = true;
        throw new Error(`simulated crash at epoch ${e}, micro-batch ${i}`);
      }
    },
  };
}

const initialValues = (model = mlpModel({ dropout: 0.1 })) =>
  new Map(model.build(new Graph(), { computeDtype: 'float32' }).parameters.map((p) => [p.name, p.initial]));

let reference: TrainingLoopResult;
beforeAll(async () => {
  reference = (await train()).result;
});

describe('runTrainingLoop', () => {
  it('trains 3 epochs of 3 steps, reports each step and epoch, and ends with a checkpoint', async () => {
    const { result, events, steps } = await train();
    expect(result).toMatchObject({ stopped: 'completed', step: 9, epoch: 3, updates: 9, precision: 'fp32' });
    expect(steps.map((s) => [s.step, s.epoch])).toEqual(
      [1, 2, 3, 4, 5, 6, 7, 8, 9].map((s) => [s, Math.ceil(s / 3)]),
    );
    for (const s of steps) {
      expect(s).toMatchObject({ loss: expect.any(Number), grad_norm: expect.any(Number) });
      expect(s).not.toHaveProperty('loss_scale');
      expect((s as { tokens_per_s: number }).tokens_per_s).toBeCloseTo(s.examples_per_s * 6, 3);
    }
    const epochs = events.filter((e) => e.type === 'epoch_end');
    expect(epochs.map((e) => [e.epoch, e.step])).toEqual([
      [1, 3],
      [2, 6],
      [3, 9],
    ]);
    const saved = events.flatMap((e) => (e.type === 'checkpoint' ? [e.step] : []));
    expect(saved).toEqual([2, 4, 6, 8, 9]);
    expect(result.checkpoint).toMatch(/checkpoints[/\\]step-9$/);
    // The final parameters are the ones in the last checkpoint, and they moved.
    const last = await readCheckpoint(result.checkpoint!);
    expect(parameterBytes(new Map([...last.values].map(([k, v]) => [k, { data: v }])))).toEqual(
      parameterBytes(result.parameters),
    );
    expect(last.meta).toMatchObject({ step: 9, updates: 9, epoch: 3, position: 0, optimizer: 'adamw' });
    const initial = initialValues();
    expect(result.parameters.get('fc2.lora_B.weight')!.data).not.toEqual(initial.get('fc2.lora_B.weight'));
  });

  it('gives bit-identical parameters for the same seed, and different ones for another seed', async () => {
    const again = await train();
    expect(parameterBytes(again.result.parameters)).toEqual(parameterBytes(reference.parameters));
    const other = await train({ seed: 43 });
    expect(parameterBytes(other.result.parameters)).not.toEqual(parameterBytes(reference.parameters));
  });

  // Steps of an epoch take micro-batches (0, 1), (2, 3), (4); checkpoints follow steps 2, 4, 6, 8, 9.
  it.each([
    ['mid-accumulation, before the first checkpoint', [[0, 3]], 1],
    ['mid-accumulation, one step after a checkpoint', [[1, 1]], 3],
    ['at the first micro-batch of an epoch', [[1, 0]], 3],
    ['in the last, partial step', [[2, 4]], 9],
    [
      'twice: the resumed run is interrupted again',
      [
        [0, 4],
        [2, 2],
      ],
      7,
    ],
  ] as const)('resumes after a crash %s to bit-identical parameters', async (_, crashes, firstStep) => {
    const opts = await options();
    for (const [epoch, index] of crashes) {
      await expect(
        runTrainingLoop({
          ...opts,
          resume: 'auto',
          data: mlpData({ examples: 10, batchSize: 2, ...crashAt(epoch, index) }),
        }),
      ).rejects.toThrow('simulated crash');
    }
    const events: LoopEvent[] = [];
    const result = await runTrainingLoop({ ...opts, resume: 'auto', onEvent: (e) => events.push(e) });
    expect(result.step).toBe(9);
    expect(parameterBytes(result.parameters)).toEqual(parameterBytes(reference.parameters));
    // Counters continue: the resumed run reports only the steps it took.
    const steps = events.flatMap((e) => (e.type === 'step' ? [e.step] : []));
    expect(steps).toEqual(Array.from({ length: 10 - firstStep }, (_, i) => firstStep + i));
  });

  it('on abort finishes the current step, saves a checkpoint and resumes from it bit-identically', async () => {
    const controller = new AbortController();
    const opts = await options({
      signal: controller.signal,
      dataOptions: { onBatch: (e, i) => e === 1 && i === 0 && controller.abort() },
    });
    const stopped = await runTrainingLoop(opts);
    // Abort fired in step 4's first micro-batch: the step completes (both micro-batches), then stops.
    expect(stopped).toMatchObject({ stopped: 'aborted', step: 4, epoch: 2 });
    expect(stopped.checkpoint).toMatch(/step-4$/);
    const saved = await readCheckpoint(stopped.checkpoint!);
    expect(saved.meta).toMatchObject({ step: 4, epoch: 1, position: 2 });
    expect(parameterBytes(new Map([...saved.values].map(([k, v]) => [k, { data: v }])))).toEqual(
      parameterBytes(stopped.parameters),
    );
    const resumed = await runTrainingLoop({
      ...opts,
      signal: new AbortController().signal,
      resume: stopped.checkpoint!,
    });
    expect(parameterBytes(resumed.parameters)).toEqual(parameterBytes(reference.parameters));
  });

  it('keeps only the newest keepLast checkpoints', async () => {
    const { outputDir } = await train({ checkpoints: { everySteps: 1, keepLast: 2 } });
    expect((await listCheckpoints(outputDir)).map((c) => c.step)).toEqual([8, 9]);
  });

  it('hands the LoRA values to samples, then validation: before step 1, on schedule and after the last step', async () => {
    const taken: string[] = [];
    const initial = initialValues();
    const recorder = (what: string) => ({
      async take(point: { step: number; epoch: number }, values: ReadonlyMap<string, Float32Array>) {
        const same = [...values].every(([name, v]) => v.every((x, i) => x === initial.get(name)![i]));
        const moved = same ? 'initial' : 'moved';
        taken.push(`${what}@${point.step}/${point.epoch}:${moved}`);
      },
    });
    const { result } = await train({
      samples: { everySteps: 4, ...recorder('sample') },
      validation: { everyEpochs: 1, ...recorder('validation') },
    });
    expect(taken).toEqual([
      'sample@0/0:initial',
      'validation@0/0:initial',
      'validation@3/1:moved',
      'sample@4/1:moved',
      'validation@6/2:moved',
      'sample@8/2:moved',
      'sample@9/3:moved',
      'validation@9/3:moved',
    ]);
    // Periodic work reads the state; it does not change the run.
    expect(parameterBytes(result.parameters)).toEqual(parameterBytes(reference.parameters));
  });

  it('saves every N epochs', async () => {
    const { events } = await train({ checkpoints: { everyEpochs: 2, keepLast: 0 } });
    expect(events.flatMap((e) => (e.type === 'checkpoint' ? [e.step] : []))).toEqual([6, 9]);
  });

  it('stops on a non-finite fp32 loss after saving the last good state, and says what to try', async () => {
    const opts = await options({ dataOptions: { poison: { at: [[1, 0]], value: Number.NaN } } });
    const failure = runTrainingLoop(opts);
    await expect(failure).rejects.toMatchObject({
      code: 'E_NON_FINITE_LOSS',
      message: expect.stringMatching(/step 4 .*learning_rate.*resume: auto/s),
    });
    const checkpoints = await listCheckpoints(opts.outputDir);
    expect(checkpoints.at(-1)!.step).toBe(3);
    await expect(failure).rejects.toThrow(checkpoints.at(-1)!.path);
    // The saved state is the good one: resuming on clean data reproduces the reference run.
    const resumed = await runTrainingLoop({
      ...opts,
      resume: 'auto',
      data: mlpData({ examples: 10, batchSize: 2 }),
    });
    expect(parameterBytes(resumed.parameters)).toEqual(parameterBytes(reference.parameters));
  });

  it('in fp16 skips a step with non-finite gradients, halves the loss scale, and doubles it after N good steps', async () => {
    const { result, events, steps, outputDir } = await train({
      mixedPrecision: 'fp16',
      gradientAccumulationSteps: 1,
      epochs: 1,
      lossScale: { initial: 16, growthInterval: 2 },
      checkpoints: { everySteps: 1, keepLast: 0 },
      // An infinite input makes every gradient of step 3 NaN. (A large finite one does not: the CPU
      // provider's float16 cast saturates at 65504, and tanh then has a zero derivative.)
      dataOptions: { poison: { at: [[0, 2]], value: Number.POSITIVE_INFINITY } },
    });
    expect(result.precision).toBe('fp16');
    expect(steps.map((s) => s.loss_scale)).toEqual([16, 16, 32, 16, 16]);
    expect(events.filter((e) => e.type === 'warning').map((e) => e.code)).toEqual(['loss_scale_reduced']);
    expect(result).toMatchObject({ step: 5, updates: 4 });
    const [two, three, five] = (await Promise.all(
      [2, 3, 5].map((s) => readCheckpoint(join(outputDir, 'checkpoints', `step-${s}`))),
    )) as [Checkpoint, Checkpoint, Checkpoint];
    expect(three.values).toEqual(two.values);
    expect(three.meta.lossScale).toEqual({ scale: 16, goodSteps: 0 });
    expect(five.meta.lossScale).toEqual({ scale: 32, goodSteps: 0 });
    // Still learning in fp16: every update moved fc2's B away from zero.
    expect(five.values.get('fc2.lora_B.weight')!.some((v) => v !== 0)).toBe(true);
  });

  it('stops in fp16 when even a loss scale below 1 overflows, and suggests bf16 or fp32', async () => {
    const opts = await options({
      mixedPrecision: 'fp16',
      lossScale: { initial: 2 },
      dataOptions: {
        poison: {
          at: [
            [0, 0],
            [0, 2],
            [0, 4],
          ],
          value: Number.POSITIVE_INFINITY,
        },
      },
    });
    await expect(runTrainingLoop(opts)).rejects.toMatchObject({
      code: 'E_NON_FINITE_LOSS',
      message: expect.stringMatching(/loss scale 1 .*bf16/),
    });
  });

  it('skips the update of a step whose micro-batches carry no loss weight, with a warning', async () => {
    const model = mlpModel();
    const empty = {
      ...model,
      feeds: (b: MlpBatch) => ({
        ...model.feeds(b),
        examples: hostTensor('float32', [], Float32Array.of(0)),
      }),
    };
    const { result, events } = await train({ model: empty, maxSteps: 1 });
    expect(events.filter((e) => e.type === 'warning').map((e) => e.code)).toEqual(['empty_step']);
    expect(result).toMatchObject({ step: 1, updates: 0 });
    expect(parameterBytes(result.parameters)).toEqual(
      parameterBytes(new Map([...initialValues(model)].map(([k, v]) => [k, { data: v }]))),
    );
  });

  it('accumulating 2 micro-batches of 2 updates as one batch of 4 does', async () => {
    const base = { model: mlpModel(), epochs: 2, checkpoints: { keepLast: 0 } } as const;
    const accumulated = await train({
      ...base,
      dataOptions: { examples: 8, batchSize: 2 },
      gradientAccumulationSteps: 2,
    });
    const whole = await train({
      ...base,
      dataOptions: { examples: 8, batchSize: 4 },
      gradientAccumulationSteps: 1,
    });
    expect(accumulated.steps).toHaveLength(4);
    accumulated.steps.forEach((s, i) => {
      expect(s.loss).toBeCloseTo(whole.steps[i]!.loss, 5);
      expect(s.grad_norm).toBeCloseTo(whole.steps[i]!.grad_norm, 5);
    });
    for (const [name, t] of accumulated.result.parameters) {
      const other = whole.result.parameters.get(name)!.data;
      t.data.forEach((v, i) => {
        expect(v).toBeCloseTo(other[i]!, 5);
      });
    }
  });

  it('clips the global gradient norm to maxGradNorm and reports the norm before clipping', async () => {
    const sgd = { type: 'sgd', momentum: 0, weightDecay: 0 } as const;
    const base = {
      model: mlpModel(),
      optimizer: sgd,
      learningRate: 1,
      schedule: { scheduler: 'constant' },
      maxSteps: 1,
    } as const;
    const initial = initialValues(mlpModel());
    const delta = (r: TrainingLoopResult) =>
      [...r.parameters].flatMap(([name, t]) => Array.from(t.data, (v, i) => v - initial.get(name)![i]!));
    const norm = (v: number[]) => Math.sqrt(v.reduce((a, b) => a + b * b, 0));
    const free = await train({ ...base, maxGradNorm: 0 });
    const clipped = await train({ ...base, maxGradNorm: 0.1 });
    const loose = await train({ ...base, maxGradNorm: 1e6 });
    const gradNorm = free.steps[0]!.grad_norm;
    expect(norm(delta(free.result))).toBeCloseTo(gradNorm, 5);
    expect(clipped.steps[0]!.grad_norm).toBe(gradNorm);
    expect(norm(delta(clipped.result))).toBeCloseTo(0.1, 5);
    const ratio = 0.1 / gradNorm;
    delta(clipped.result).forEach((d, i) => {
      expect(d).toBeCloseTo(delta(free.result)[i]! * ratio, 6);
    });
    expect(parameterBytes(loose.result.parameters)).toEqual(parameterBytes(free.result.parameters));
  });

  it('follows the schedule (warmup by ratio) and gives a parameter group its own learning rate', async () => {
    const { result, steps } = await train({
      model: mlpModel({ secondGroup: 'text_encoder' }),
      schedule: { scheduler: 'linear', warmupRatio: 0.25 },
      groupLearningRates: { text_encoder: 0 },
    });
    const expected = steps.map((_, i) =>
      learningRate({ scheduler: 'linear', baseLr: 0.05, totalSteps: 9, warmupSteps: 3 }, i),
    );
    expect(steps.map((s) => s.lr)).toEqual(expected);
    expect(expected.slice(0, 4)).toEqual([0, 0.05 / 3, 0.1 / 3, 0.05]);
    const initial = initialValues();
    expect(result.parameters.get('fc2.lora_A.weight')!.data).toEqual(initial.get('fc2.lora_A.weight'));
    expect(result.parameters.get('fc1.lora_A.weight')!.data).not.toEqual(initial.get('fc1.lora_A.weight'));
  });

  it('resume: auto skips a corrupt latest checkpoint for the one before it, and ends bit-identical', async () => {
    const opts = await options();
    await expect(
      runTrainingLoop({ ...opts, data: mlpData({ examples: 10, batchSize: 2, ...crashAt(1, 3) }) }),
    ).rejects.toThrow('simulated crash');
    // Checkpoints after steps 2 and 4 exist; the newest is cut short as a full disk would leave it.
    const newest = join(opts.outputDir, 'checkpoints', 'step-4', 'lora.safetensors');
    await writeFile(newest, (await readFile(newest)).subarray(0, 100));
    const events: LoopEvent[] = [];
    const result = await runTrainingLoop({ ...opts, resume: 'auto', onEvent: (e) => events.push(e) });
    const warnings = events.flatMap((e) => (e.type === 'warning' ? [e] : []));
    expect(warnings).toEqual([
      expect.objectContaining({
        code: 'checkpoint_skipped',
        message: expect.stringMatching(/skips .*step-4, which cannot be used \(.*lora\.safetensors/),
      }),
    ]);
    expect(events.find((e) => e.type === 'step')).toMatchObject({ step: 3 });
    expect(parameterBytes(result.parameters)).toEqual(parameterBytes(reference.parameters));
  });

  it('refuses a checkpoint saved past the last step of the run, or with counters that disagree', async () => {
    const { result, outputDir } = await train();
    const state = join(result.checkpoint!, 'state.json');
    const meta = JSON.parse(await readFile(state, 'utf8')) as Record<string, unknown>;
    await writeFile(state, JSON.stringify({ ...meta, step: 1e15 }));
    const opts = await options({ outputDir });
    await expect(runTrainingLoop({ ...opts, resume: result.checkpoint! })).rejects.toMatchObject({
      code: 'E_CHECKPOINT_INVALID',
      message: expect.stringMatching(
        /after step 1000000000000000, past this run's last step 9 \(raise epochs/,
      ),
    });
    await writeFile(state, JSON.stringify({ ...meta, updates: 10 }));
    await expect(runTrainingLoop({ ...opts, resume: result.checkpoint! })).rejects.toMatchObject({
      code: 'E_CHECKPOINT_INVALID',
      message: expect.stringMatching(/counters disagree \(step 9, updates 10/),
    });
  });

  it('stores the config in checkpoints and warns when a resumed run changes it', async () => {
    const opts = await options({ config: { learning_rate: 0.05, seed: 42 }, maxSteps: 2 });
    const first = await runTrainingLoop(opts);
    const state = JSON.parse(await readFile(join(first.checkpoint!, 'state.json'), 'utf8'));
    expect(state.config).toEqual({ learning_rate: 0.05, seed: 42 });
    const warnings: LoopEvent[] = [];
    await runTrainingLoop({
      ...opts,
      maxSteps: 3,
      resume: 'auto',
      config: { learning_rate: 0.01, seed: 42 },
      onEvent: (e) => e.type === 'warning' && warnings.push(e),
    });
    expect(warnings).toEqual([
      expect.objectContaining({
        code: 'resume_config_changed',
        message: expect.stringContaining('learning_rate'),
      }),
    ]);
  });

  it.each([
    ['a folder without a checkpoint', 'E_CHECKPOINT_NOT_FOUND', (dir: string) => ({ resume: dir })],
    [
      "another optimizer's state",
      'E_CHECKPOINT_INVALID',
      () => ({ resume: 'auto', optimizer: { type: 'sgd', momentum: 0.9, weightDecay: 0 } as const }),
    ],
  ])('refuses to resume from %s', async (_, code, change) => {
    const opts = await options({ maxSteps: 1 });
    await runTrainingLoop(opts);
    await expect(runTrainingLoop({ ...opts, ...change(opts.outputDir) })).rejects.toMatchObject({ code });
  });

  it.each<[string, MlpOverrides]>([
    ['both epochs and maxSteps', { epochs: 2, maxSteps: 3 }],
    ['gradientAccumulationSteps 0', { gradientAccumulationSteps: 0 }],
    ['a negative learning rate', { learningRate: -1 }],
    ['warmup steps and ratio', { schedule: { scheduler: 'linear', warmupSteps: 1, warmupRatio: 0.1 } }],
    ['beta 1', { optimizer: { type: 'adamw', betas: [1, 0.999], eps: 1e-8, weightDecay: 0 } }],
    ['an empty data source', { dataOptions: { examples: 0 } }],
    ['an empty workers list', { workers: [] }],
    ['a negative CUDA device id', { workers: [{ device: 'cuda', deviceId: -1 }] }],
  ])('refuses %s', async (_, overrides) => {
    await expect(runTrainingLoop(await options(overrides))).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
  });
});
