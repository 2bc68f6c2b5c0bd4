import { describe, expect, it } from 'vitest';
import { referenceParsePromptAttention } from './a1111.reference.ts';
import { parsePromptAttention, type WeightedPiece } from './a1111.ts';
import { CaptionMarkupError } from './errors.ts';
import { seededRandom } from './testing/fixtures.ts';

// Tokens that reach every alternative of `re_attention` and every edge of Python's `\s`, `\d` and `\b`.
const TOKENS = [
  ['(', ')', '[', ']', ':', ':', '\\', ' ', '  ', ',', '.', '+', '-', 'e', '_', 'a', 'cat', 'é', 'ネオン'],
  // Digits: ASCII, Arabic-Indic, and Osmanya and mathematical ones outside the BMP (all Python `\d`).
  ['0', '1', '2', '5', '9', '١', '٥', '𐒠', '𝟙'],
  // Python spaces (U+001C and U+0085 are, U+FEFF is not), and a lone surrogate.
  ['\u3000', '\u0085', '\u001c', '\u00a0', '\ufeff', '\u2028', '\t', '\n', '\ud800'],
  ['BREAK', ' BREAK ', 'BREAK_', 'xBREAK'],
  // Weights, valid and not; 17 digits, where a single division would round wrong, take the slow path.
  [':1.2)', ':0.5)', ': 1.15 )', ':+.5)', ':-1)', ':5.)', ':0)', ':-0)', ':١.٥)', ':𝟙)', ':𐒠.5)'],
  [':\u3000 2\u001c)', ':368063017.09095693)', ':1.2.3)', ':.)', ':..5)', ':+)', ':1e3)', ':1_0)'],
].flat();

function randomPrompt(random: () => number): string {
  let prompt = '';
  const length = Math.floor(random() * 40);
  for (let index = 0; index < length; index += 1) prompt += TOKENS[Math.floor(random() * TOKENS.length)];
  return prompt;
}

/** The result, or the error's code and message; weights by their shortest round-trip text, -0 included. */
function outcome(parse: (text: string) => WeightedPiece[], text: string): unknown {
  try {
    return parse(text).map(([piece, weight]) => [piece, Object.is(weight, -0) ? '-0' : String(weight)]);
  } catch (error) {
    if (!CaptionMarkupError.isInstance(error)) throw error;
    return { code: error.code, message: error.message };
  }
}

describe('parsePromptAttention against the regex transliteration of A1111', () => {
  it('agrees on 5,000 seeded random prompts, errors included (property)', () => {
    const random = seededRandom(12);
    let errors = 0;
    let breaks = 0;
    for (let run = 0; run < 5000; run += 1) {
      const prompt = randomPrompt(random);
      const expected = outcome(referenceParsePromptAttention, prompt);
      expect(outcome(parsePromptAttention, prompt), JSON.stringify(prompt)).toEqual(expected);
      if (!Array.isArray(expected)) errors += 1;
      else if (expected.some(([piece]) => piece === 'BREAK')) breaks += 1;
    }
    // The alphabet must keep reaching the rare paths, or the agreement proves little.
    expect(errors).toBeGreaterThan(100);
    expect(breaks).toBeGreaterThan(1000);
  });

  it.each([
    ['more pieces than the reused buffers hold', 'a(b)'.repeat(70_000)],
    ['many short runs of text, then a BREAK', `${'[a]:'.repeat(30_000)} BREAK b`],
    ['deep unclosed nesting', `${'(['.repeat(5_000)}a`],
  ])('agrees on %s, and on a small prompt after it', (_case, prompt) => {
    expect(outcome(parsePromptAttention, prompt)).toEqual(outcome(referenceParsePromptAttention, prompt));
    expect(parsePromptAttention('(a) b')).toEqual([
      ['a', 1.1],
      [' b', 1],
    ]);
  });
});
