/**
 * The LLaMA, Qwen2 and Mistral graphs against golden values from an independent plain-PyTorch
 * implementation (tools/golden/llm_reference.py): logits, loss, LoRA gradients, and the LoRA
 * weights after 3 AdamW steps of the training loop, as written to the PEFT adapter. Relative
 * error is max |a − b| / max |b| over each tensor.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph, gradients, type HostTensor, writeModel } from '@lora/engine';
import { readSafetensors, toFloat32 } from '@lora/safetensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoraParameter } from '../../lora.ts';
import { Session } from '../../session.ts';
import { valuesOf } from '../../testing.ts';
import { runTrainingLoop } from '../../train/loop.ts';
import type { MemoryOptions } from '../memory.ts';
import { ADAPTER_WEIGHTS, writeLlamaAdapter } from './adapter.ts';
import { openLlamaCheckpoint } from './checkpoint.ts';
import { type LlamaBatch, LlamaModel } from './model.ts';
import { byParameter, FIXTURES, fixtureFolder, goldenBatch, readGolden, relativeError } from './testing.ts';

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'llama-golden-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe.each(FIXTURES)('%s against the PyTorch reference (fp32)', (name) => {
  const golden = readGolden(name);
  let session: Session;
  let model: LlamaModel;
  let parameters: readonly LoraParameter[];

  beforeAll(async () => {
    model = new LlamaModel(await openLlamaCheckpoint(fixtureFolder(name)), {
      targetModules: golden.target_modules,
      rank: golden.rank,
      alpha: golden.alpha,
      initial: byParameter(golden.lora_start),
    });
    const graph = new Graph(`${name}_step`);
    const built = model.build(graph, { computeDtype: 'float32' });
    graph.output(built.logits, 'logits');
    graph.output(built.lossSum, 'loss_sum');
    graph.output(built.weight, 'weight');
    const grads = gradients(
      built.lossSum,
      built.parameters.map((p) => p.tensor),
    );
    built.parameters.forEach((p, i) => {
      graph.output(grads[i]!, `grad:${p.name}`);
    });
    parameters = built.parameters;
    const modelPath = await writeModel(graph, join(scratch, name));
    session = await Session.create(modelPath, { device: 'cpu', threads: 1, optimization: 'basic' });
  });
  afterAll(async () => {
    await session?.dispose();
  });

  it('logits, loss and every LoRA gradient match within 1e-4', async () => {
    // The parameters start from the reference's LoRA values (B ≠ 0, so every gradient is non-trivial).
    const feeds: Record<string, HostTensor> = model.feeds(goldenBatch(golden));
    for (const p of parameters) feeds[p.name] = { dtype: 'float32', shape: p.shape, data: p.initial };
    const out = await session.run(feeds);
    expect(out['logits']!.shape).toEqual(golden.logits_shape);
    expect(relativeError(valuesOf(out['logits']), golden.logits)).toBeLessThan(1e-4);
    const weight = valuesOf(out['weight'])[0]!;
    const labelled = golden.labels.flatMap((row) => row.slice(1)).filter((l) => l !== -100).length;
    expect(weight).toBe(labelled);
    const loss = valuesOf(out['loss_sum'])[0]! / weight;
    expect(Math.abs(loss - golden.loss) / golden.loss).toBeLessThan(1e-4);
    const expected = byParameter(golden.lora_grads);
    expect(parameters.map((p) => p.name).sort()).toEqual([...expected.keys()].sort());
    for (const [parameterName, grad] of expected) {
      // The graph differentiates the loss SUM; the reference, the mean.
      const actual = valuesOf(out[`grad:${parameterName}`]).map((g) => g / weight);
      expect(relativeError(actual, grad), parameterName).toBeLessThan(1e-4);
    }
  });

  it('3 steps of the training loop (in-graph AdamW) give the reference losses; the PEFT adapter holds the reference weights', async () => {
    const { lr, betas, eps, weight_decay: weightDecay } = golden.adamw;
    const batch = goldenBatch(golden);
    const losses: number[] = [];
    const result = await runTrainingLoop<LlamaBatch>({
      model,
      data: { microBatchesPerEpoch: 1, batch: async () => batch, count: () => ({ examples: 2, tokens: 16 }) },
      outputDir: join(scratch, `${name}-loop`),
      seed: 0,
      maxSteps: 3,
      gradientAccumulationSteps: 1,
      learningRate: lr,
      schedule: { scheduler: 'constant' },
      optimizer: { type: 'adamw', betas, eps, weightDecay },
      maxGradNorm: 0,
      mixedPrecision: 'no',
      device: 'cpu',
      threads: 1,
      checkpoints: { keepLast: 1 },
      onEvent: (event) => {
        if (event.type === 'step') losses.push(event.loss);
      },
    });
    expect(relativeError(losses, golden.adamw.losses)).toBeLessThan(1e-4);

    const adapter = join(scratch, `${name}-adapter`);
    await mkdir(adapter);
    const values = new Map([...result.parameters].map(([key, tensor]) => [key, tensor.data]));
    await writeLlamaAdapter(adapter, model.spec, model.lora, values, { baseModelNameOrPath: name });
    const { tensors } = await readSafetensors(join(adapter, ADAPTER_WEIGHTS));
    for (const [module, after] of Object.entries(golden.adamw.lora_after_3_steps)) {
      for (const [suffix, expected] of [
        ['lora_A', after.A],
        ['lora_B', after.B],
      ] as const) {
        const key = `base_model.model.${module}.${suffix}.weight`;
        const stored = toFloat32(tensors.get(key)!.data as Uint8Array, 'F32');
        expect(relativeError(stored, expected), key).toBeLessThan(1e-4);
      }
    }
  });
});

/** The loss and every LoRA gradient of fixture `name`'s golden batch, with the given memory options. */
async function lossAndGradients(name: string, memory: MemoryOptions, label: string) {
  const golden = readGolden(name);
  const checkpoint = await openLlamaCheckpoint(fixtureFolder(name));
  const model = new LlamaModel(checkpoint, {
    targetModules: golden.target_modules,
    rank: golden.rank,
    alpha: golden.alpha,
    initial: byParameter(golden.lora_start),
    memory,
  });
  const graph = new Graph(`${name}_${label}`);
  const built = model.build(graph, { computeDtype: 'float32' });
  graph.output(built.lossSum, 'loss_sum');
  gradients(
    built.lossSum,
    built.parameters.map((p) => p.tensor),
  ).forEach((g, i) => {
    graph.output(g, `grad:${built.parameters[i]!.name}`);
  });
  const session = await Session.create(await writeModel(graph, join(scratch, `${name}-${label}`)), {
    device: 'cpu',
    threads: 1,
  });
  try {
    const feeds: Record<string, HostTensor> = model.feeds(goldenBatch(golden));
    for (const p of built.parameters) feeds[p.name] = { dtype: 'float32', shape: p.shape, data: p.initial };
    const out = await session.run(feeds);
    const names = ['loss_sum', ...built.parameters.map((p) => `grad:${p.name}`)];
    return { values: new Map(names.map((n) => [n, valuesOf(out[n])])), graph, spec: checkpoint.spec };
  } finally {
    await session.dispose();
  }
}

const largestError = (a: Map<string, number[]>, b: Map<string, number[]>) =>
  Math.max(...[...b].map(([n, want]) => relativeError(a.get(n)!, want)));

describe('memory options', () => {
  it.each(FIXTURES)(
    '%s: the loss and every LoRA gradient with decoder layers recomputed equal those without (1e-6)',
    async (name) => {
      const kept = await lossAndGradients(name, {}, 'kept');
      const recomputed = await lossAndGradients(name, { checkpointBlocks: true }, 'recomputed');
      // One recomputation per decoder layer, tied to the gradient arriving at it.
      expect(recomputed.graph.checkpoints).toHaveLength(kept.spec.numLayers);
      for (const [output, want] of kept.values) {
        expect(relativeError(recomputed.values.get(output)!, want), output).toBeLessThan(1e-6);
      }
    },
  );

  it.each(FIXTURES)(
    '%s: weights held in bf16 give the same step with the LM head converted in 24-row parts as in one',
    async (name) => {
      const whole = await lossAndGradients(name, { weightDtype: 'bfloat16' }, 'bf16');
      const parts = await lossAndGradients(
        name,
        { weightDtype: 'bfloat16', vocabularyChunk: 24 },
        'bf16-parts',
      );
      const slices = (graph: Graph) => graph.nodes.filter((n) => n.opType === 'Slice').length;
      expect(slices(parts.graph) - slices(whole.graph)).toBeGreaterThanOrEqual(
        Math.ceil(whole.spec.vocabSize / 24),
      );
      // The input gradient sums one product per part: float32 rounding in another order.
      expect(largestError(parts.values, whole.values)).toBeLessThan(5e-6);
      // bf16 rounding is real: the float32 weights give another step.
      expect(largestError(whole.values, (await lossAndGradients(name, {}, 'f32')).values)).toBeGreaterThan(
        1e-5,
      );
    },
  );
});
