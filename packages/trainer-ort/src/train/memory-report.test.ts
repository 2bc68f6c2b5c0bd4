import { parseConfig, type TrainerEvent } from '@lora/config';
import { describe, expect, it } from 'vitest';
import type { MemoryOptions } from '../models/memory.ts';
import { memoryNeed, memoryReporter, memorySavers, RUNTIME_BYTES } from './memory-report.ts';
import type { TrainableModel } from './model.ts';
import { buildGradientsGraph } from './step-graphs.ts';
import { HIDDEN, IN, mlpModel, OUT } from './test-model.ts';

const sdConfig = (lines: string[] = []) =>
  parseConfig(
    [
      'base_model: /models/sd15.safetensors',
      'train_data_dir: /data/style',
      'output_dir: /runs/style',
      ...lines,
    ].join('\n'),
    '/runs/config.yaml',
  );

describe('the memory estimate said before the first step', () => {
  const built = buildGradientsGraph(mlpModel(), 'fp32');

  it('adds the frozen weights, the activations, LoRA with its optimizer state, and the runtime', () => {
    const need = memoryNeed(built, { batch: 1000 });
    // Frozen float32 weights of both layers, plus the graph's few small constants.
    expect(need.weights).toBeGreaterThanOrEqual(4 * (HIDDEN * IN + OUT * HIDDEN));
    expect(need.weights).toBeLessThan(4 * (HIDDEN * IN + OUT * HIDDEN) + 1024);
    // Rank-2 LoRA on both layers: values fed (4 bytes), gradient sums and two moments (12 bytes).
    const values = 2 * (IN + HIDDEN) + 2 * (HIDDEN + OUT);
    const batch = 4 * 1000 * (IN + OUT) + 4 + 4; // x, target, examples, loss_scale
    expect(need.training).toBe(4 * values + 12 * values + batch);
    // At least the hidden layer's activations of the 1000 examples are alive at once.
    expect(need.activations).toBeGreaterThan(4 * 1000 * HIDDEN);
    expect(need.total).toBe(need.weights + need.activations + need.training + RUNTIME_BYTES);
    // Twice the batch, about twice the activations.
    const double = memoryNeed(built, { batch: 2000 }).activations;
    expect(double / need.activations).toBeGreaterThan(1.9);
    expect(double / need.activations).toBeLessThan(2.1);
  });

  const source = (batch: number) => ({
    dims: { batch },
    modelWith: (memory: MemoryOptions) => mlpModel({ memory }) as TrainableModel<unknown>,
  });

  it('warns with the settings that need less when the memory would not hold the step, and names the bucket', () => {
    const events: TrainerEvent[] = [];
    const info: string[] = [];
    const batch = 2 ** 24;
    const report = memoryReporter(
      sdConfig(['batch_size: 4']),
      source(batch),
      (m) => info.push(m),
      (e) => events.push(e),
      1024,
    );
    // One graph per shape key, as SD has per bucket (the test model's key is its static batch).
    const key = `b${batch}`;
    const kept = buildGradientsGraph(mlpModel(), 'fp32', key);
    report(kept, key, 'fp32');
    // The other side of the trade: the same model with its first layer checkpointed.
    const recomputed = memoryNeed(
      buildGradientsGraph(mlpModel({ memory: { checkpointBlocks: true } }), 'fp32', key),
      {},
    );
    const gib = (bytes: number) => (bytes / 2 ** 30).toFixed(2).replace('.', '\\.');
    expect(info).toEqual([
      expect.stringMatching(
        new RegExp(
          `^memory for a step at latent size ${key}: about` +
            ' \\d+\\.\\d\\d GiB \\(frozen weights 0\\.00 GiB, activations up to \\d+\\.\\d\\d GiB, ' +
            'LoRA, optimizer state and batch \\d+\\.\\d\\d GiB, runtime 0\\.75 GiB\\); ' +
            `with gradient_checkpointing and memory_efficient_attention: about ${gib(recomputed.total)} GiB \\(activations up to ${gib(recomputed.activations)} GiB\\)$`,
        ),
      ),
    ]);
    expect(recomputed.activations).not.toBe(memoryNeed(kept, {}).activations);
    expect(events).toEqual([
      {
        type: 'warning',
        code: 'memory_estimate',
        message: expect.stringMatching(
          /more than this machine's 0\.00 GiB; to need less, set gradient_checkpointing: true, or memory_efficient_attention: true, or a smaller batch_size .*, or a lower resolution$/,
        ),
      },
    ]);
  });

  it('suggests only what is not set yet, and says nothing more where the memory is unknown (a GPU)', () => {
    const events: TrainerEvent[] = [];
    const config = sdConfig(['gradient_checkpointing: true', 'memory_efficient_attention: true']);
    const checkpointed = buildGradientsGraph(mlpModel({ memory: { checkpointBlocks: true } }), 'fp32');
    memoryReporter(
      config,
      source(1),
      () => {},
      (e) => events.push(e),
      1024,
    )(checkpointed, undefined, 'fp32');
    expect(events).toHaveLength(1);
    expect((events[0] as { message: string }).message).toMatch(
      /^a step needs .*; to need less, set a lower resolution$/,
    );
    const info: string[] = [];
    memoryReporter(
      config,
      source(1),
      (m) => info.push(m),
      (e) => events.push(e),
      undefined,
    )(checkpointed, undefined, 'fp32');
    expect(info[0]).toMatch(
      /activations up to .* with gradient checkpointing, .*; without gradient checkpointing: about/,
    );
    expect(events).toHaveLength(1);
  });

  it('suggests base_precision only for float32 weights not yet converted: bf16 for LLaMA, fp16 for SD', () => {
    const llm = parseConfig(
      ['base_model: /models/llama', 'train_data: /data/chat.jsonl', 'output_dir: /runs/chat'].join('\n'),
      '/runs/config.yaml',
    );
    expect(memorySavers(llm, true)).toContain('base_precision: bf16');
    expect(memorySavers(sdConfig(), true)).toContain('base_precision: fp16');
    expect(memorySavers(sdConfig(), false).join()).not.toContain('base_precision');
    expect(memorySavers(sdConfig(['base_precision: bf16']), true).join()).not.toContain('base_precision');
  });
});
