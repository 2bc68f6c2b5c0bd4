/**
 * Models with `shapeKey`: one gradients graph per micro-batch shape, built on first use, all
 * training the same LoRA parameters through one update graph. The fixture is the loop's MLP
 * with a static batch dim; 9 examples in micro-batches of 2 make sizes 2, 2, 2, 2, 1 in every
 * epoch, so two graphs (`b2`, `b1`), and steps of 2 micro-batches take (0, 1), (2, 3), (4).
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTrainingLoop, type TrainingLoopResult } from './loop.ts';
import type { TrainableModel } from './model.ts';
import type { TrainingLoopOptions } from './options.ts';
import { type MlpBatch, mlpData, mlpLoop, mlpModel, mlpParallel, parameterBytes } from './test-model.ts';

const folders: string[] = [];
afterAll(async () => {
  await Promise.all(folders.map((f) => rm(f, { recursive: true, force: true })));
});

/** The model, recording the shape key of every graph it builds and the size of every batch it feeds. */
function recorded(model: TrainableModel<MlpBatch>) {
  const builds: (string | undefined)[] = [];
  const fed: number[] = [];
  const wrapped: TrainableModel<MlpBatch> = {
    ...model,
    build(graph, options) {
      builds.push(options.shapeKey);
      return model.build(graph, options);
    },
    feeds(batch) {
      fed.push(batch.size);
      return model.feeds(batch);
    },
  };
  return { model: wrapped, builds, fed };
}

async function options(overrides: Partial<TrainingLoopOptions<MlpBatch>> = {}) {
  const opts = await mlpLoop({
    model: mlpModel({ staticBatch: true, dropout: 0.1 }),
    data: mlpData({ examples: 9, batchSize: 2 }),
    checkpoints: { everySteps: 1, keepLast: 0 },
    ...overrides,
  });
  folders.push(opts.outputDir);
  return opts;
}

describe('runTrainingLoop with a multi-shape model', () => {
  let reference: TrainingLoopResult;
  let run: ReturnType<typeof recorded> & { outputDir: string };
  beforeAll(async () => {
    const model = recorded(mlpModel({ staticBatch: true, dropout: 0.1 }));
    const opts = await options({ model: model.model });
    reference = await runTrainingLoop(opts);
    run = { ...model, outputDir: opts.outputDir };
  });

  it('builds one gradients graph per shape key, on first use, and runs each micro-batch in its own', async () => {
    expect(reference).toMatchObject({ stopped: 'completed', step: 9, epoch: 3 });
    // Built once each, in the order the micro-batches first needed them.
    expect(run.builds).toEqual(['b2', 'b1']);
    // The inputs are static, so a batch fed to the other graph would be refused by onnxruntime.
    expect(run.fed).toEqual([2, 2, 2, 2, 1, 2, 2, 2, 2, 1, 2, 2, 2, 2, 1]);
    const graphs = await readdir(join(run.outputDir, 'graphs'));
    expect(graphs.filter((f) => f.startsWith('gradients')).sort()).toEqual([
      'gradients-b1.onnx',
      'gradients-b2.onnx',
    ]);
    expect(graphs).toContain('update.onnx');
  });

  it('trains the parameters the single-graph model trains', async () => {
    const single = await options({ model: mlpModel({ dropout: 0.1 }) });
    const expected = (await runTrainingLoop(single)).parameters;
    for (const [name, t] of reference.parameters) {
      const other = expected.get(name)!.data;
      const scale = Math.max(...Array.from(other, Math.abs));
      t.data.forEach((v, i) => {
        expect(Math.abs(v - other[i]!) / scale, name).toBeLessThan(1e-6);
      });
    }
  });

  it('resumes at a micro-batch of the other shape bit-identically, building the graphs that run needs', async () => {
    const opts = await options();
    // Crash in micro-batch (0, 4), the size-1 one: the checkpoint after step 2 resumes there.
    let crashed = false;
    const crashing = mlpData({
      examples: 9,
      batchSize: 2,
      onBatch: (epoch, index) => {
        if (!crashed && epoch === 0 && index === 4) {
          crashed = true;
          throw new Error('simulated crash');
        }
      },
    });
    await expect(runTrainingLoop({ ...opts, data: crashing })).rejects.toThrow('simulated crash');
    const resumed = recorded(mlpModel({ staticBatch: true, dropout: 0.1 }));
    const result = await runTrainingLoop({ ...opts, model: resumed.model, resume: 'auto' });
    expect(resumed.builds).toEqual(['b1', 'b2']);
    expect(result.step).toBe(9);
    expect(parameterBytes(result.parameters)).toEqual(parameterBytes(reference.parameters));
  });

  const base = mlpModel({ staticBatch: true });
  it.each<[string, Partial<TrainingLoopOptions<MlpBatch>>, RegExp]>([
    ['a shape key that cannot name a file', { model: { ...base, shapeKey: () => 'b 2' } }, /"b 2"/],
    [
      'graphs that start the parameters at other values',
      {
        model: {
          ...base,
          build: (graph, o) => mlpModel({ loraSeed: o.shapeKey === 'b1' ? 8 : 7 }).build(graph, o),
        },
      },
      /graph for shape key 'b1' starts 'fc1\.lora_A\.weight' at other values than the graph for 'b2'/,
    ],
    [
      'data-parallel workers',
      { workers: [{ device: 'cpu' }], parallel: mlpParallel() },
      /one graph per micro-batch shape \(shapeKey\), which data-parallel workers do not support/,
    ],
  ])('refuses %s', async (_, overrides, message) => {
    await expect(runTrainingLoop(await options(overrides))).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
      message: expect.stringMatching(message),
    });
  });
});
