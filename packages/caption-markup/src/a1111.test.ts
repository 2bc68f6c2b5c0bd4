import { describe, expect, it } from 'vitest';
import { parsePromptAttention, safeParsePromptAttention, splitBreak } from './a1111.ts';
import { CaptionMarkupError } from './errors.ts';

// Expected values were produced by running A1111's `parse_prompt_attention` (prompt_parser.py @ 28bd8e1)
// under CPython 3.11; weights are written as Python's `repr` prints them, so they compare bit for bit.
describe('parsePromptAttention', () => {
  it.each([
    ['normal text', [['normal text', 1]]],
    [
      'an (important) word',
      [
        ['an ', 1],
        ['important', 1.1],
        [' word', 1],
      ],
    ],
    ['(unbalanced', [['unbalanced', 1.1]]],
    ['\\(literal\\]', [['(literal]', 1]]],
    ['(unnecessary)(parens)', [['unnecessaryparens', 1.1]]],
    [
      'a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).',
      [
        ['a ', 1],
        ['house', 1.5730000000000004],
        [' ', 1.1],
        ['on', 1],
        [' a ', 1.1],
        ['hill', 0.55],
        [', sun, ', 1.1],
        ['sky', 1.4641000000000006],
        ['.', 1.1],
      ],
    ],
  ])('matches the A1111 docstring: %j', (text, expected) => {
    expect(parsePromptAttention(text)).toEqual(expected);
  });

  it.each([
    [
      'escapes: \\\\ is a backslash, a lone \\ vanishes, \\: escapes nothing',
      '\\\\ and \\a and a\\:b',
      [['\\ and a and a:b', 1]],
    ],
    ['weight in Arabic-Indic digits (Python \\d, float())', '(a:١.٥)', [['a', 1.5]]],
    ['spaces around the weight', '(a: 1.5 )', [['a', 1.5]]],
    ['U+001C counts as \\s around the weight', '(a:\u001c1.5\u001c)', [['a', 1.5]]],
    [
      'BREAK splits with the int marker -1',
      'a BREAK b',
      [
        ['a', 1],
        ['BREAK', -1],
        ['b', 1],
      ],
    ],
    [
      'BREAK inside brackets is weighted too',
      '(a BREAK b)',
      [
        ['a', 1.1],
        ['BREAK', -1.1],
        ['b', 1.1],
      ],
    ],
    [
      'an explicit weight of 1 keeps BREAK at -1',
      '(a BREAK b:1)',
      [
        ['a', 1],
        ['BREAK', -1],
        ['b', 1],
      ],
    ],
    ['\\b is Unicode: é is a word character', 'éBREAK b', [['éBREAK b', 1]]],
    [
      '\\s is Unicode: U+0085 is whitespace',
      'a\u0085BREAK\u0085b',
      [
        ['a', 1],
        ['BREAK', -1],
        ['b', 1],
      ],
    ],
    [
      'a lone BREAK',
      'BREAK',
      [
        ['', 1],
        ['BREAK', -1],
        ['', 1],
      ],
    ],
    [
      'BREAK BREAK leaves an empty piece between',
      'a BREAK BREAK b',
      [
        ['a', 1],
        ['BREAK', -1],
        ['', 1],
        ['BREAK', -1],
        ['b', 1],
      ],
    ],
    ['BREAK must be a whole word', 'xBREAK, BREAKy, _BREAK', [['xBREAK, BREAKy, _BREAK', 1]]],
    ['nested brackets multiply inner first', '((a:1.5))', [['a', 1.6500000000000001]]],
    ['(x) then [x] is exactly 1', '[(a)]', [['a', 1]]],
    ['square brackets take no weight', '[a:0.5]', [['a:0.5', 0.9090909090909091]]],
    ['unclosed [ applies 1/1.1 at the end', '[a', [['a', 0.9090909090909091]]],
    ['unclosed ( applies before unclosed [', '([a', [['a', 1]]],
    ['unclosed [ then (', '[(a', [['a', 1]]],
    ['unmatched closers are text', 'a)b]c', [['a)b]c', 1]]],
    [':weight) without ( is text', 'a:1.2)', [['a:1.2)', 1]]],
    ['empty prompt', '', [['', 1]]],
    ['equal neighbours merge', '(a)(b)', [['ab', 1.1]]],
    [
      'markdown markers are plain text',
      '**(a)**',
      [
        ['**', 1],
        ['a', 1.1],
        ['**', 1],
      ],
    ],
    ['signed weights', '(a:+.5)', [['a', 0.5]]],
    ['negative weight', '(a:-1)', [['a', -1]]],
    ['no e notation: the colon is text', '(a:1e3)', [['a:1e3', 1.1]]],
    ['no underscores: the colon is text', '(a:1_0)', [['a:1_0', 1.1]]],
    ['trailing dot', '(a:5.)', [['a', 5]]],
    ['explicit weights multiply', '((a:1.2):1.3)', [['a', 1.56]]],
    ['[[a]]', '[[a]]', [['a', 0.8264462809917354]]],
    [
      'crossed brackets keep separate stacks',
      '(a[b)c]',
      [
        ['a', 1.1],
        ['b', 1],
        ['c', 0.9090909090909091],
      ],
    ],
    ['(((a)))', '(((a)))', [['a', 1.3310000000000004]]],
  ])('%s', (_rule, text, expected) => {
    expect(parsePromptAttention(text)).toEqual(expected);
  });

  it.each(['(a:1.2.3)', '(a:.)', '(a:..5)'])(
    'raises E_INVALID_WEIGHT where Python float() raises: %s',
    (text) => {
      expect(() => parsePromptAttention(text)).toThrow(CaptionMarkupError);
      const result = safeParsePromptAttention(text);
      expect(result.success).toBe(false);
      if (!result.success) {
        expect(result.error.code).toBe('E_INVALID_WEIGHT');
        expect(result.error.message).toContain('offset 3');
      }
    },
  );

  it('safe form returns the value on success', () => {
    expect(safeParsePromptAttention('(a)')).toEqual({ success: true, value: [['a', 1.1]] });
  });
});

describe('splitBreak', () => {
  it.each([
    ['a BREAK b', ['a', 'b']],
    ['a  BREAK\tBREAK  b', ['a', '', 'b']],
    ['BREAKBREAK', ['BREAKBREAK']],
    ['(BREAK)', ['(', ')']],
    ['a\u3000BREAK\u3000b', ['a', 'b']],
    ['a\ufeffBREAK b', ['a\ufeff', 'b']],
  ])('%j → %j', (text, expected) => {
    expect(splitBreak(text)).toEqual(expected);
  });
});
