import { describe, expect, it } from 'vitest';
import { format } from './format.ts';
import { parse } from './parse.ts';
import { extractTags } from './tags.ts';
import { randomCaption, randomMarkup, seededRandom } from './testing/fixtures.ts';

describe('format', () => {
  it.each([
    ['one space after commas, none before', '*moody* ,**city**,,rain', '*moody*, **city**, rain'],
    ['whitespace collapsed and trimmed', '  a   b\t,\nc  ', 'a b, c'],
    ['no space inside brackets, weight as written', '( rain : 1.20 ), [ fog ]', '(rain:1.20), [fog]'],
    ['prompt editing and alternation tightened', '[ a : b : 0.5 ], [x | y]', '[a:b:0.5], [x|y]'],
    [
      'unpaired markers are escaped so they stay literal',
      '**open, smile :), (a',
      '\\*\\*open, smile :\\), \\(a',
    ],
    ['escapes and extra networks kept', '\\(o\\)_\\(o\\) <lora:a:0.7>', '\\(o\\)_\\(o\\) <lora:a:0.7>'],
    ['a space that keeps a backslash from escaping', '(a\\ )', '(a\\ )'],
    ['BREAK kept', 'a,BREAK,b', 'a, BREAK, b'],
  ])('%s', (_rule, text, expected) => {
    expect(format(text)).toBe(expected);
    expect(format(parse(text))).toBe(expected);
  });

  it.each([
    ['core, then plain, then mood', '*moody* ,**city**,,rain', '**city**, rain, *moody*'],
    ['emphasis over several tags is split per tag', 'a, *b, c*, **d, e**', '**d**, **e**, a, *b*, *c*'],
    ['attention over several tags is split per tag', '(a, **b**:1.2)', '(**b**:1.2), (a:1.2)'],
    ['each BREAK chunk is sorted on its own', '*a*, b BREAK *c*, **d**', 'b, *a* BREAK **d**, *c*'],
  ])('sort: %s', (_rule, text, expected) => {
    expect(format(text, { sort: true })).toBe(expected);
  });

  it.each([
    ['emphasis over several tags is split in place', 'a, *b, c*, **d, e**', 'a, *b*, *c*, **d**, **e**'],
    ['attention over several tags is split in place', '(a, **b**:1.2)', '(a:1.2), (**b**:1.2)'],
    ['mood before core stays there', '*moody* ,**city**,,rain', '*moody*, **city**, rain'],
  ])('split: %s', (_rule, text, expected) => {
    expect(format(text, { split: true })).toBe(expected);
  });

  it('returns well-formed captions unchanged (property)', () => {
    const random = seededRandom(3);
    for (let run = 0; run < 2000; run += 1) {
      const caption = randomCaption(random);
      expect(format(parse(caption))).toBe(caption);
    }
  });

  it('is idempotent and keeps tags, roles and weights on any input (property)', () => {
    const random = seededRandom(8);
    const meaning = (text: string) =>
      extractTags(text).map(({ text: words, role, weight }) => [words, role, weight]);
    for (let run = 0; run < 3000; run += 1) {
      const text = randomMarkup(random);
      const once = format(text);
      expect(format(once), JSON.stringify(text)).toBe(once);
      expect(meaning(once), JSON.stringify(text)).toEqual(meaning(text));
    }
  });
});
