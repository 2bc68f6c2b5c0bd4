import { describe, expect, it } from 'vitest';
import { CLIP_MODULES, LLM_MODULES, moduleMismatch, resolveTargetModules, UNET_MODULES } from './modules.ts';

describe('resolveTargetModules', () => {
  it.each([
    [['q_proj', 'v_proj'], false, ['to_q', 'to_v'], []],
    [['q_proj', 'v_proj'], true, ['to_q', 'to_v'], ['q_proj', 'v_proj']],
    [['to_q', 'to_k', 'to_v', 'to_out'], false, ['to_q', 'to_k', 'to_v', 'to_out'], []],
    [['to_q', 'ff'], true, ['to_q', 'ff'], [...CLIP_MODULES]],
    [['out_proj', 'fc1', 'proj_in'], true, ['to_out', 'proj_in'], ['out_proj', 'fc1']],
    ['all-linear', false, [...UNET_MODULES], []],
    ['all-linear', true, [...UNET_MODULES], [...CLIP_MODULES]],
  ] as const)('sd %j with train_text_encoder %s', (names, textEncoder, unet, text_encoder) => {
    const targets = resolveTargetModules({
      task: 'sd',
      target_modules: names,
      train_text_encoder: textEncoder,
    });
    expect(targets).toEqual({ task: 'sd', unet, text_encoder });
  });

  it.each([
    [
      ['v_proj', 'q_proj'],
      ['q_proj', 'v_proj'],
    ],
    ['all-linear', [...LLM_MODULES]],
  ] as const)('llm %j', (names, model) => {
    expect(resolveTargetModules({ task: 'llm', target_modules: names })).toEqual({ task: 'llm', model });
  });
});

describe('moduleMismatch', () => {
  it.each([
    ['to_q', 'llm', 'Stable Diffusion UNet layer'],
    ['out_proj', 'llm', 'o_proj'],
    ['fc1', 'llm', 'up_proj'],
    ['o_proj', 'sd', 'to_out'],
    ['down_proj', 'sd', 'ff'],
  ] as const)('%s is not a %s layer', (name, task, hint) => {
    expect(moduleMismatch(name, task)).toContain(hint);
  });

  it.each([
    ...LLM_MODULES.map((name) => [name, 'llm'] as const),
    ...UNET_MODULES.map((name) => [name, 'sd'] as const),
    ...CLIP_MODULES.map((name) => [name, 'sd'] as const),
  ])('%s fits %s', (name, task) => {
    expect(moduleMismatch(name, task)).toBeUndefined();
  });
});
