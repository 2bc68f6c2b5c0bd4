import { TextTokenizer } from '@lora/dataset';
import { describe, expect, it } from 'vitest';
import { byteLevelAlphabet, byteLevelTokenizerJson, learnByteLevelBpe } from './demo-bpe.ts';

describe('byteLevelAlphabet', () => {
  it.each([
    [0x20, 'Ġ'],
    [0x0a, 'Ċ'],
    [0x41, 'A'],
    [0xad, 'Ń'],
    [0xff, 'ÿ'],
  ])('maps byte %i to %s, as GPT-2 does', (byte, char) => {
    expect(byteLevelAlphabet()[byte]).toBe(char);
  });

  it('gives every byte its own character', () => {
    expect(new Set(byteLevelAlphabet()).size).toBe(256);
  });
});

describe('learnByteLevelBpe', () => {
  it('merges the most frequent pair first, inside pre-tokenized words only', () => {
    const { merges, vocab } = learnByteLevelBpe(['low lower lowest', 'low low'], 3);
    // "lo" occurs in every word (5×), then "low" (5×); the space belongs to the next word ("Ġlow").
    expect(merges.slice(0, 2)).toEqual(['l o', 'lo w']);
    expect(vocab.get('low')).toBe(257);
    expect(merges.every((merge) => !merge.includes('w Ġ'))).toBe(true);
  });

  it('stops when no pair occurs twice', () => {
    expect(learnByteLevelBpe(['abcd'], 10).merges).toEqual([]);
    expect(learnByteLevelBpe(['abab'], 10).merges).toEqual(['a b']); // then 'ab ab' occurs once
  });

  it('breaks ties by the smaller pair, so the result depends only on the input', () => {
    expect(learnByteLevelBpe(['xy ba'], 5).merges).toEqual([]);
    expect(learnByteLevelBpe(['zy zy ab ab'], 1).merges).toEqual(['a b']);
    expect(learnByteLevelBpe(['zy zy ab ab'], 1)).toEqual(learnByteLevelBpe(['zy zy ab ab'], 1));
  });
});

describe('byteLevelTokenizerJson', () => {
  const texts = ['The capital of France is Paris.', 'The sky is blue.', 'Add 3 and 4.'];
  const bpe = learnByteLevelBpe(texts, 50);
  const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
  const tokenizer = TextTokenizer.fromJson(byteLevelTokenizerJson(bpe, specials), {
    eos_token: '<|im_end|>',
    pad_token: '<|endoftext|>',
  });

  it.each([
    'The capital of France is Paris.',
    'unseen wörds, emoji 🦙 and\ttabs\n',
    '<|im_start|>user\nAdd 3 and 4.<|im_end|>\n',
  ])('loads in @huggingface/tokenizers and round-trips %j', (text) => {
    expect(tokenizer.decode(tokenizer.encode(text, false))).toBe(text);
  });

  it('uses the learned merges and keeps special tokens whole', () => {
    expect(tokenizer.encode('The', false)).toEqual([bpe.vocab.get('The')]);
    expect(tokenizer.encode('<|im_end|>', false)).toEqual([bpe.vocab.size + 2]);
    expect([tokenizer.eosId, tokenizer.padId]).toEqual([bpe.vocab.size + 2, bpe.vocab.size]);
  });

  it('adds no special tokens of its own (chat templates bring them)', () => {
    expect(tokenizer.encode('The sky', true)).toEqual(tokenizer.encode('The sky', false));
  });
});
