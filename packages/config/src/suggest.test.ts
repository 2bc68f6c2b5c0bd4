import { describe, expect, it } from 'vitest';
import { closest, editDistance, suggestKey, suggestValue } from './suggest.ts';

describe('editDistance', () => {
  it.each([
    ['', '', 0],
    ['abc', '', 3],
    ['lora_rank', 'lora_rank', 0],
    ['lora_rnak', 'lora_rank', 1],
    ['epoch', 'epochs', 1],
    ['kitten', 'sitting', 3],
  ])('%j → %j is %i', (a, b, distance) => {
    expect(editDistance(a, b)).toBe(distance);
    expect(editDistance(b, a)).toBe(distance);
  });
});

describe('suggestions', () => {
  it.each([
    ['network_dim', '"lora_rank"? ("network_dim" is the kohya name)'],
    [
      'v_parameterization',
      '"prediction_type"? ("v_parameterization" is the kohya (write prediction_type: v_prediction) name)',
    ],
    ['network-alpha', '"lora_alpha"?'],
    ['lora_target', '"target_modules"? ("lora_target" is the LLaMA-Factory name)'],
    ['sequence_len', '"max_seq_len"? ("sequence_len" is the axolotl name)'],
    ['epoch', '"epochs"?'],
    ['LEARNING_RATE', '"learning_rate"?'],
  ])('suggests a key for %s', (unknown, hint) => {
    expect(suggestKey(unknown)).toContain(hint);
  });

  it.each(['zzz', 'hello_world', 'toString'])('suggests nothing for %s', (unknown) => {
    expect(suggestKey(unknown)).toBe('');
  });

  it.each([
    ['mixed_precision', 'fp32', ['auto', 'fp16', 'bf16', 'no'], 'no'],
    ['mixed_precision', false, ['auto', 'fp16', 'bf16', 'no'], 'no'],
    ['lr_scheduler', 'Cosine', ['constant', 'cosine'], 'cosine'],
    ['target_modules', 'to_out.0', ['to_out'], 'to_out'],
    ['device', 'gpu', ['auto', 'cuda', 'cpu'], 'cuda'],
    ['prediction_type', 'v_parameterization', ['auto', 'epsilon', 'v_prediction'], 'v_prediction'],
  ])('suggests a %s value for %j', (key, value, allowed, hint) => {
    expect(suggestValue(key, value, allowed)).toBe(`; did you mean ${hint}?`);
  });

  it('keeps suggestions within a typo of the input', () => {
    expect(closest('cosine_restarts', ['cosine', 'cosine_with_restarts'])).toBeUndefined();
    expect(closest('linaer', ['linear', 'cosine'])).toBe('linear');
  });
});
