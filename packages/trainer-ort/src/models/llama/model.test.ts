import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph, type HostTensor, writeModel } from '@lora/engine';
import { beforeAll, describe, expect, it } from 'vitest';
import { Session } from '../../session.ts';
import { valuesOf } from '../../testing.ts';
import { ModelError } from '../model-error.ts';
import { type LlamaCheckpoint, openLlamaCheckpoint } from './checkpoint.ts';
import { LLAMA_INPUTS, type LlamaBatch, LlamaModel } from './model.ts';
import { byParameter, fixtureFolder, forward, goldenBatch, readGolden, relativeError } from './testing.ts';
import { LLAMA_LINEAR_MODULES } from './weights.ts';

const golden = readGolden('mistral');
let checkpoint: LlamaCheckpoint;
beforeAll(async () => {
  checkpoint = await openLlamaCheckpoint(fixtureFolder('mistral'));
});

const lora = { targetModules: ['q_proj', 'v_proj'] as const, rank: 4, alpha: 8 };
const batchOf = (rows: number[][], masks: number[][], labels = rows): LlamaBatch => ({
  batchSize: rows.length,
  seqLen: rows[0]!.length,
  inputIds: Int32Array.from(rows.flat()),
  labels: Int32Array.from(labels.flat()),
  attentionMask: Int32Array.from(masks.flat()),
});

describe('LlamaModel', () => {
  it('names LoRA parameters by PEFT module path; all-linear is all seven modules of every layer', () => {
    const all = new LlamaModel(checkpoint, { ...lora, targetModules: 'all-linear' });
    const names = [...all.loraShapes().keys()];
    expect(names).toHaveLength(2 * 7 * 2);
    expect(names.slice(0, 4)).toEqual([
      'model.layers.0.self_attn.q_proj.lora_A.weight',
      'model.layers.0.self_attn.q_proj.lora_B.weight',
      'model.layers.0.self_attn.k_proj.lora_A.weight',
      'model.layers.0.self_attn.k_proj.lora_B.weight',
    ]);
    expect(all.targets).toEqual(LLAMA_LINEAR_MODULES);
    expect(
      new LlamaModel(checkpoint, { ...lora, targetModules: [...LLAMA_LINEAR_MODULES] }).loraShapes(),
    ).toEqual(all.loraShapes());
    // q_proj of Mistral's explicit head_dim: 4 heads × 16 = 64 outputs from 32 inputs.
    expect(all.loraShapes().get('model.layers.1.self_attn.q_proj.lora_B.weight')).toEqual([64, 4]);
    expect(all.loraShapes().get('model.layers.1.mlp.down_proj.lora_A.weight')).toEqual([4, 48]);
  });

  it('feeds shifted labels: position t learns token t + 1, and -100 or the last position learns nothing', () => {
    const model = new LlamaModel(checkpoint, lora);
    const feeds = model.feeds(batchOf([[5, 6, 7, 8]], [[1, 1, 1, 1]], [[-100, -100, 7, 8]]));
    const vocab = checkpoint.spec.vocabSize;
    expect(valuesOf(feeds[LLAMA_INPUTS.labelMask])).toEqual([0, 1, 1, 0]);
    expect(valuesOf(feeds[LLAMA_INPUTS.labelIndex]).slice(1, 3)).toEqual([1 * vocab + 7, 2 * vocab + 8]);
  });

  it('builds one graph for any batch size and sequence length', async () => {
    const model = new LlamaModel(checkpoint, lora);
    const graph = new Graph('dynamic');
    const built = model.build(graph, { computeDtype: 'float32' });
    graph.output(built.lossSum, 'loss_sum');
    const folder = await mkdtemp(join(tmpdir(), 'llama-dynamic-'));
    const session = await Session.create(await writeModel(graph, folder), { device: 'cpu', threads: 1 });
    try {
      for (const [rows, seq] of [
        [1, 3],
        [3, 11],
      ] as const) {
        const ids = Array.from({ length: rows }, (_, r) =>
          Array.from({ length: seq }, (_, t) => (r * 7 + t) % 64),
        );
        const feeds: Record<string, HostTensor> = model.feeds(
          batchOf(
            ids,
            ids.map((row) => row.map(() => 1)),
          ),
        );
        for (const p of built.parameters)
          feeds[p.name] = { dtype: 'float32', shape: p.shape, data: p.initial };
        const lossSum = valuesOf((await session.run(feeds))['loss_sum'])[0]!;
        // Fresh LoRA (B = 0) on random weights: about ln(64) per learned token.
        expect(lossSum / (rows * (seq - 1))).toBeGreaterThan(2);
        expect(lossSum / (rows * (seq - 1))).toBeLessThan(8);
      }
    } finally {
      await session.dispose();
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('pads on the right without changing the real tokens: logits equal those of the unpadded sequence', async () => {
    const model = new LlamaModel(checkpoint, lora);
    const tokens = [3, 14, 15, 9, 26, 5];
    const alone = await forward(model, batchOf([tokens], [tokens.map(() => 1)]));
    const padded = await forward(
      model,
      batchOf([[...tokens, 0, 0]], [[1, 1, 1, 1, 1, 1, 0, 0]], [[...tokens, -100, -100]]),
    );
    const real = padded.logits.slice(0, alone.logits.length);
    expect(relativeError(real, alone.logits)).toBeLessThan(1e-6);
    expect(padded.loss).toBeCloseTo(alone.loss, 5);
  });

  it('keeps left padding finite: a query that sees no token gets a uniform softmax, not NaN', async () => {
    const model = new LlamaModel(checkpoint, lora);
    const { loss, logits } = await forward(
      model,
      batchOf([[0, 0, 7, 8, 9]], [[0, 0, 1, 1, 1]], [[-100, -100, 7, 8, 9]]),
    );
    expect(Number.isFinite(loss)).toBe(true);
    expect(logits.every(Number.isFinite)).toBe(true);
  });

  it('starts from given values (an init adapter) instead of LoRA initialisation', async () => {
    const start = byParameter(golden.lora_start);
    const model = new LlamaModel(checkpoint, { ...lora, initial: start });
    const built = model.build(new Graph('start'), { computeDtype: 'float32' });
    for (const p of built.parameters) expect(p.initial).toBe(start.get(p.name));
    const fresh = new LlamaModel(checkpoint, lora).build(new Graph('fresh'), { computeDtype: 'float32' });
    expect(
      fresh.parameters
        .filter((p) => p.name.endsWith('lora_B.weight'))
        .every((p) => p.initial.every((v) => v === 0)),
    ).toBe(true);
    expect((await forward(model, goldenBatch(golden))).loss).toBeCloseTo(golden.loss, 4);
  });

  it.each([
    [
      'a token id outside the vocabulary',
      batchOf([[1, 64]], [[1, 1]]),
      /token id 64 is outside the model's vocabulary \(0–63\)/,
    ],
    [
      'a label outside the vocabulary',
      batchOf([[1, 2]], [[1, 1]], [[1, -1]]),
      /label -1 is neither -100 nor a token id/,
    ],
    [
      'arrays that do not match batchSize × seqLen',
      { ...batchOf([[1, 2]], [[1, 1]]), seqLen: 3 },
      /inputIds holds 2 values, not batchSize × seqLen = 1 × 3/,
    ],
  ])('refuses a batch with %s', (_, batch, message) => {
    const model = new LlamaModel(checkpoint, lora);
    expect(() => model.feeds(batch)).toThrow(
      expect.objectContaining({ code: 'E_MODEL_BATCH', message: expect.stringMatching(message) }),
    );
  });

  it.each([
    ['no target module', { ...lora, targetModules: [] }, 'E_MODEL_CONFIG', /target_modules selects no layer/],
    [
      'start values of the wrong size',
      { ...lora, initial: new Map([['model.layers.0.self_attn.q_proj.lora_A.weight', new Float32Array(3)]]) },
      'E_MODEL_ADAPTER',
      /has 3 values; its shape \[4, 32\] needs 128/,
    ],
    [
      'start values of an untrained module',
      { ...lora, initial: new Map([['model.layers.0.mlp.up_proj.lora_A.weight', new Float32Array(128)]]) },
      'E_MODEL_ADAPTER',
      /model\.layers\.0\.mlp\.up_proj\.lora_A\.weight, which the model does not train/,
    ],
  ])('refuses %s', (_, options, code, message) => {
    const build = () =>
      new LlamaModel(checkpoint, options).build(new Graph('bad'), { computeDtype: 'float32' });
    expect(build).toThrow(ModelError);
    expect(build).toThrow(expect.objectContaining({ code, message: expect.stringMatching(message) }));
  });
});
