import { parseConfig } from '@lora/config';
import { describe, expect, it } from 'vitest';
import { loopSettingsFromConfig, TEXT_ENCODER_GROUP } from './options.ts';

describe('loopSettingsFromConfig', () => {
  it('maps an SD config, giving the text encoder its own learning rate', () => {
    const config = parseConfig(
      [
        'base_model: /models/sd15.safetensors',
        'train_data_dir: /data/style',
        'output_dir: /runs/style',
        'train_text_encoder: true',
        'text_encoder_lr: 0.00005',
        'learning_rate: 0.0001',
        'lr_scheduler: cosine_with_restarts',
        'lr_cycles: 3',
        'warmup_ratio: 0.1',
        'save_every_n_steps: 50',
        'resume: auto',
      ].join('\n'),
      '/runs/config.yaml',
    );
    const settings = loopSettingsFromConfig(config);
    expect(settings).toMatchObject({
      seed: 42,
      epochs: 10,
      gradientAccumulationSteps: 2,
      learningRate: 1e-4,
      groupLearningRates: { [TEXT_ENCODER_GROUP]: 5e-5 },
      schedule: { scheduler: 'cosine_with_restarts', cycles: 3, warmupRatio: 0.1 },
      optimizer: { type: 'adamw', betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 },
      maxGradNorm: 1,
      mixedPrecision: 'auto',
      device: 'auto',
      checkpoints: { everyEpochs: 1, everySteps: 50, keepLast: 3 },
      resume: 'auto',
      config,
    });
    expect(settings).not.toHaveProperty('maxSteps');
  });

  it('maps an LLM config with max_steps and no parameter groups', () => {
    const config = parseConfig(
      [
        'base_model: /models/llama',
        'train_data: /data/chat.jsonl',
        'output_dir: /runs/chat',
        'max_steps: 300',
      ].join('\n'),
      '/runs/config.yaml',
    );
    const settings = loopSettingsFromConfig(config);
    expect(settings).toMatchObject({ maxSteps: 300, schedule: { scheduler: 'cosine' } });
    expect(settings).not.toHaveProperty('epochs');
    expect(settings).not.toHaveProperty('groupLearningRates');
    expect(settings.schedule).not.toHaveProperty('warmupSteps');
  });

  it.each([
    ['neither key', [], undefined],
    ['device_ids: [0], the device this process uses anyway', ['device_ids: [0]'], undefined],
    ['num_workers: 1', ['num_workers: 1'], undefined],
    [
      'device_ids: [0, 1]',
      ['device: cuda', 'device_ids: [0, 1]'],
      [
        { device: 'cuda', deviceId: 0 },
        { device: 'cuda', deviceId: 1 },
      ],
    ],
    ['device_ids: [2] (one worker on another GPU)', ['device_ids: [2]'], [{ device: 'auto', deviceId: 2 }]],
    ['num_workers: 3', ['num_workers: 3'], [{ device: 'cpu' }, { device: 'cpu' }, { device: 'cpu' }]],
  ])('maps %s onto workers', (_, lines, workers) => {
    const config = parseConfig(
      ['base_model: /models/llama', 'train_data: /data/chat.jsonl', 'output_dir: /runs/chat', ...lines].join(
        '\n',
      ),
      '/runs/config.yaml',
    );
    expect(loopSettingsFromConfig(config).workers).toEqual(workers);
  });
});
