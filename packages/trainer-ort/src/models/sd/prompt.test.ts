import { describe, expect, it } from 'vitest';
import { CHUNK_TOKENS, extractLoraTags, type PromptTokenizer, promptChunks, weightStates } from './prompt.ts';

/** One id per word (1 + its letter count, commas 99); BOS 100, EOS 101. */
const words: PromptTokenizer = {
  tokenIds: (text) =>
    text
      .split(/(,)|\s+/)
      .filter((w) => w !== undefined && w !== '')
      .map((w) => (w === ',' ? 99 : 1 + w.length)),
  bosId: 100,
  eosId: 101,
};

describe('A1111 prompt chunks', () => {
  it('frames a short prompt in BOS / EOS, pads with EOS, and gives each token its weight', () => {
    const { ids, weights } = promptChunks('a (red:1.5) [ball]', words);
    expect(ids).toHaveLength(1);
    expect(ids[0]!.slice(0, 5)).toEqual([100, 2, 4, 5, 101]);
    expect(ids[0]).toHaveLength(CHUNK_TOKENS + 2);
    expect(ids[0]!.slice(4).every((id) => id === 101)).toBe(true);
    expect(weights[0]!.slice(0, 5)).toEqual([1, 1, 1.5, 1 / 1.1, 1]);
  });

  it('pads after the first EOS with the pad id when it differs (SD 2.x: "!", A1111\'s id_pad 0)', () => {
    const { ids } = promptChunks('a ball', { ...words, padId: 0 });
    expect(ids[0]!.slice(0, 5)).toEqual([100, 2, 5, 101, 0]);
    expect(ids[0]!.slice(4).every((id) => id === 0)).toBe(true);
  });

  it('starts a chunk at BREAK and when 75 tokens are full, moving the words after a recent comma on', () => {
    expect(promptChunks('a BREAK b', words).ids.map((row) => row[1])).toEqual([2, 2]);
    // 70 words, a comma, 10 more: the chunk fills at 75 with the comma 5 back, so 4 words move.
    const prompt = `${Array(70).fill('x').join(' ')} , ${Array(10).fill('yy').join(' ')}`;
    const { ids } = promptChunks(prompt, words);
    expect(ids).toHaveLength(2);
    expect(ids[0]!.indexOf(99)).toBe(71);
    expect(ids[0]![72]).toBe(101); // the chunk ends after the comma
    expect(ids[1]!.slice(1, 11)).toEqual(Array(10).fill(3));
    expect(promptChunks('', words).ids).toEqual([[100, ...Array(CHUNK_TOKENS + 1).fill(101)]]);
  });

  it('takes <lora:name:weight> tags out of the prompt', () => {
    expect(extractLoraTags('a cat <lora:style_v1:0.7>, <lora:detail> night')).toEqual({
      prompt: 'a cat ,  night',
      loras: [
        { name: 'style_v1', weight: 0.7 },
        { name: 'detail', weight: 1 },
      ],
    });
  });

  it("weights states as A1111: times the token's weight, then back to the chunk's mean", () => {
    // Two tokens of two values: means 2.5 before; weights 2 and 1 → [2, 4, 3, 4], mean 3.25.
    const out = weightStates(Float32Array.of(1, 2, 3, 4), [2, 1]);
    const scale = 2.5 / 3.25;
    [2, 4, 3, 4].forEach((v, i) => {
      expect(out[i]).toBeCloseTo(v * scale, 6);
    });
    expect(weightStates(Float32Array.of(1, 2, 3, 4), [1, 1])).toEqual(Float32Array.of(1, 2, 3, 4));
  });
});
