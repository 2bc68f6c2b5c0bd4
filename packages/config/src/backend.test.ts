import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  backendModuleName,
  resolveMixedPrecision,
  type StepMetrics,
  type TrainerBackend,
  type TrainerEvent,
} from './backend.ts';
import { parseConfig } from './load.ts';

describe('backend contract helpers', () => {
  it.each([
    ['auto', 'cuda', 'fp16'],
    ['auto', 'cpu', 'fp32'],
    ['auto', 'webgpu', 'fp32'],
    ['no', 'cuda', 'fp32'],
    ['bf16', 'cuda', 'bf16'],
    ['fp16', 'cpu', 'fp16'],
  ] as const)('mixed_precision %s on %s computes in %s', (setting, device, precision) => {
    expect(resolveMixedPrecision(setting, device)).toBe(precision);
  });

  it.each([
    ['ort', '@lora/trainer-ort'],
    ['remote', '@lora/trainer-remote'],
    ['my-trainer', 'my-trainer'],
    ['@acme/lora-backend', '@acme/lora-backend'],
  ])('backend %s loads %s', (name, module) => {
    expect(backendModuleName(name)).toBe(module);
  });

  it('step metrics carry tokens or images per second', () => {
    expectTypeOf<{
      step: 1;
      epoch: 1;
      loss: 1;
      lr: 1;
      grad_norm: 1;
      examples_per_s: 1;
    }>().not.toExtend<StepMetrics>();
    expectTypeOf<{
      step: 1;
      epoch: 1;
      loss: 1;
      lr: 1;
      grad_norm: 1;
      examples_per_s: 1;
      images_per_s: 1;
    }>().toExtend<StepMetrics>();
  });

  it('lets a backend report progress and artifacts through the run', async () => {
    const fake: TrainerBackend = {
      name: 'fake',
      async train({ config, outputDir, emit, signal }) {
        const result = {
          stopped: signal.aborted ? ('aborted' as const) : ('completed' as const),
          step: 1,
          epoch: 1,
          adapter: `${outputDir}/${config.output_name}.safetensors`,
          config: `${outputDir}/config.yaml`,
          metrics: `${outputDir}/metrics.jsonl`,
        };
        emit({
          type: 'step',
          step: 1,
          epoch: 1,
          loss: 0.1,
          lr: config.learning_rate,
          grad_norm: 1,
          examples_per_s: 2,
          images_per_s: 2,
        });
        emit({ type: 'done', ...result });
        return result;
      },
    };
    const config = parseConfig('train_data_dir: d\nbase_model: m\noutput_dir: out\n', '/c/run.yaml');
    const events: TrainerEvent[] = [];
    const controller = new AbortController();
    controller.abort();
    const logger = { debug() {}, info() {}, warn() {} };
    const result = await fake.train({
      config,
      outputDir: config.output_dir,
      signal: controller.signal,
      logger,
      emit: (event) => events.push(event),
    });
    expect(result).toMatchObject({ stopped: 'aborted', adapter: '/c/out/out.safetensors' });
    expect(events.map((event) => event.type)).toEqual(['step', 'done']);
  });
});
