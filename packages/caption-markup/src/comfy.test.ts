import { describe, expect, it } from 'vitest';
import { MAX_COMFY_NESTING, parseComfyWeights, safeParseComfyWeights } from './comfy.ts';

// Expected values were produced by running ComfyUI's `token_weights(escape_important(text), 1.0)`
// (comfy/sd1_clip.py @ b55c224) under CPython 3.11, then `unescape_important` on each piece.
describe('parseComfyWeights', () => {
  it.each([
    ['an explicit weight replaces the inherited one', '((a:1.5))', [['a', 1.5]]],
    ['the inner explicit weight wins', '((a:1.2):1.3)', [['a', 1.2]]],
    ['unbalanced parentheses stay literal', '(unbalanced', [['(unbalanced', 1]]],
    [
      'after an unclosed ( everything is literal',
      'a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).',
      [
        ['a ', 1],
        ['(((house:1.3)) [on] a (hill:0.5), sun, (((sky))).', 1],
      ],
    ],
    ['square brackets and their escapes are literal', '[a] \\[b\\] \\\\c', [['[a] \\[b\\] \\\\c', 1]]],
    ['a bad number is kept as text', '(a:1.2.3)', [['a:1.2.3', 1.1]]],
    ['the weight is split at the last colon', '(a:2:1.5)', [['a:2', 1.5]]],
    ['a colon at position 0 is not a weight', '(:1.5)', [[':1.5', 1.1]]],
    ['Python float() accepts e notation', '(a:1e1)', [['a', 10]]],
    ['Python float() accepts underscores between digits', '(a:1_5)', [['a', 15]]],
    ['Python float() accepts inf', '(a:inf)', [['a', Number.POSITIVE_INFINITY]]],
    ['Python float() accepts -Infinity', '(a:-Infinity)', [['a', Number.NEGATIVE_INFINITY]]],
    ['Python float() strips spaces', '(a: 1.5 )', [['a', 1.5]]],
    ['escaped parentheses', '\\(a\\)', [['(a)', 1]]],
    ['escaped parentheses inside a group', '(\\(a\\):1.2)', [['(a)', 1.2]]],
    ['a ) at level 0 makes the rest literal', 'a) (b)', [['a) (b)', 1]]],
    [') before a group', ')(a)', [[')(a)', 1]]],
    ['an unclosed outer group', '((a)', [['(a', 1.1]]],
    ['digits of any script', '(a:١.٥)', [['a', 1.5]]],
    ['Unicode whitespace is stripped', '(a:\u30001.5)', [['a', 1.5]]],
    ['ASCII U+001C is not stripped by float()', '(a:\u001c1.5)', [['a:\u001c1.5', 1.1]]],
    ['empty prompt', '', []],
    ['plain text', 'plain', [['plain', 1]]],
    [
      'no merging of equal weights',
      '(a)(b)',
      [
        ['a', 1.1],
        ['b', 1.1],
      ],
    ],
    [
      'BREAK is plain text',
      '(a:1.2) BREAK (b)',
      [
        ['a', 1.2],
        [' BREAK ', 1],
        ['b', 1.1],
      ],
    ],
  ])('%s', (_rule, text, expected) => {
    expect(parseComfyWeights(text)).toEqual(expected);
  });

  it('nan weights come back as NaN', () => {
    expect(parseComfyWeights('(a:nan)')[0]![1]).toBeNaN();
  });

  it('refuses nesting where ComfyUI hits RecursionError, with a typed error', () => {
    const deep = `${'('.repeat(MAX_COMFY_NESTING + 2)}a${')'.repeat(MAX_COMFY_NESTING + 2)}`;
    const result = safeParseComfyWeights(deep);
    expect(result.success).toBe(false);
    if (!result.success) expect(result.error.code).toBe('E_TOO_DEEP');
    expect(parseComfyWeights(`${'('.repeat(50)}a${')'.repeat(50)}`)).toEqual([['a', expectedNested(50)]]);
  });
});

function expectedNested(levels: number): number {
  let weight = 1.0;
  for (let level = 0; level < levels; level += 1) weight *= 1.1;
  return weight;
}
