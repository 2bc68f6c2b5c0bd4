import { describe, expect, it } from 'vitest';
import { parseConfig } from './load.ts';
import { type ConfigWarningCode, configWarnings, type WarningContext } from './warnings.ts';

const SD = 'train_data_dir: d\nbase_model: m\noutput_dir: o\n';
const LLM = 'train_data: t.jsonl\nbase_model: m\noutput_dir: o\n';
const codes = (base: string, lines: string, context?: WarningContext) =>
  configWarnings(parseConfig(`${base}${lines}\n`, '/c/run.yaml'), context).map((warning) => [
    warning.code,
    warning.path[0],
  ]);

describe('configWarnings', () => {
  it.each([SD, LLM])('has no advice for the defaults', (base) => {
    expect(codes(base, '')).toEqual([]);
  });

  it.each<[string, string, string, WarningContext, ConfigWarningCode, string]>([
    ['sd rank above 32', SD, 'lora_rank: 64', {}, 'high_rank', 'lora_rank'],
    ['llm rank above 64', LLM, 'lora_rank: 128', {}, 'high_rank', 'lora_rank'],
    ['alpha far above rank', SD, 'lora_alpha: 64', {}, 'alpha_scale', 'lora_alpha'],
    ["kohya's alpha 1 at rank 16", SD, 'lora_alpha: 1', {}, 'alpha_scale', 'lora_alpha'],
    ['sd epochs above 20', SD, 'epochs: 30', {}, 'many_epochs', 'epochs'],
    ['llm epochs above 5', LLM, 'epochs: 8', {}, 'many_epochs', 'epochs'],
    ['sd learning rate above 1e-3', SD, 'learning_rate: 5e-3', {}, 'high_learning_rate', 'learning_rate'],
    ['tiny learning rate', LLM, 'learning_rate: 1e-8', {}, 'low_learning_rate', 'learning_rate'],
    [
      'batch larger than the dataset',
      SD,
      'batch_size: 8',
      { datasetSize: 5 },
      'batch_exceeds_dataset',
      'batch_size',
    ],
    [
      'warmup past the run',
      SD,
      'warmup_steps: 100\nepochs: 2',
      { datasetSize: 40 },
      'warmup_exceeds_steps',
      'warmup_steps',
    ],
    [
      'fp16 on cpu',
      LLM,
      'mixed_precision: fp16',
      { device: 'cpu' },
      'half_precision_on_cpu',
      'mixed_precision',
    ],
    [
      'warmup with constant',
      SD,
      'lr_scheduler: constant\nwarmup_ratio: 0.1',
      {},
      'ignored_key',
      'warmup_ratio',
    ],
    ['cycles without restarts', SD, 'lr_cycles: 3', {}, 'ignored_key', 'lr_cycles'],
    [
      'more workers than cores',
      LLM,
      'device: cpu\nnum_workers: 8',
      { cores: 2 },
      'workers_exceed_cores',
      'num_workers',
    ],
    [
      'text_encoder_lr without the text encoder',
      SD,
      'text_encoder_lr: 5e-5',
      {},
      'ignored_key',
      'text_encoder_lr',
    ],
    ['keep_tokens without shuffling', SD, 'keep_tokens: 1', {}, 'ignored_key', 'keep_tokens'],
    ['CLIP names for sd', SD, 'target_modules: [q_proj, v_proj]', {}, 'module_mapping', 'target_modules'],
    ['a strong noise offset', SD, 'noise_offset: 0.3', {}, 'high_noise_offset', 'noise_offset'],
  ])('warns about %s', (_, base, lines, context, code, key) => {
    expect(codes(base, lines, context)).toEqual([[code, key]]);
  });

  it.each<[string, string, WarningContext]>([
    ['rank 32', 'lora_rank: 32', {}],
    ['alpha = 2 × rank', 'lora_alpha: 32', {}],
    ['20 epochs', 'epochs: 20', {}],
    ['a batch equal to the dataset', 'batch_size: 5', { datasetSize: 5 }],
    ['fp16 on cuda', 'mixed_precision: fp16', { device: 'cuda' }],
    ['keep_tokens with shuffling', 'keep_tokens: 1\nshuffle_caption: true', {}],
  ])('accepts %s', (_, lines, context) => {
    expect(codes(SD, lines, context)).toEqual([]);
  });

  it('spells out which layers CLIP names train', () => {
    const config = parseConfig(
      `${SD}target_modules: [q_proj, v_proj]\ntrain_text_encoder: true\n`,
      '/c/r.yaml',
    );
    expect(configWarnings(config)[0]?.message).toBe(
      "q_proj, v_proj also name the UNet's attention: trains UNet layers to_q, to_v; text encoder: q_proj, v_proj",
    );
  });
});
