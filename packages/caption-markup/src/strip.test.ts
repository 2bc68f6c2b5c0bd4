import { describe, expect, it } from 'vitest';
import { parsePromptAttention } from './a1111.ts';
import { parse } from './parse.ts';
import { writeStripped } from './render.ts';
import { stripMarkup } from './strip.ts';
import { randomCaption, randomMarkup, seededRandom } from './testing/fixtures.ts';
import { CaptionWriter } from './writer.ts';

describe('stripMarkup', () => {
  it.each([
    [
      'the issue example',
      '**cyberpunk city at night**, neon signs, rain-soaked streets, *cinematic lighting*, ultra-detailed',
      'cyberpunk city at night, neon signs, rain-soaked streets, cinematic lighting, ultra-detailed',
    ],
    ['whitespace and commas are normalised', '  a ,  b,c\t,\n d  ', 'a, b, c, d'],
    ['empty tags are dropped', ',a,, ,b,', 'a, b'],
    ['underscore aliases', '__core__, _mood_, long_hair, ^_^', 'core, mood, long_hair, ^_^'],
    ['markers removed inside words', 'a**b**c', 'abc'],
    ['marker escapes resolved', '\\*star\\*, snake\\_case', '*star*, snake_case'],
    ['A1111 escapes kept', '\\(o\\)_\\(o\\), a\\\\b, [a\\|b|c]', '\\(o\\)_\\(o\\), a\\\\b, [a\\|b|c]'],
    ['attention kept, weight canonical', '(rain: 1.2 ), [fog], ( mist )', '(rain:1.2), [fog], (mist)'],
    ['emphasis inside attention', '(**rain**:1.2)', '(rain:1.2)'],
    ['extra networks removed', 'a, <lora:film:0.7>, b <hypernet:x:1>', 'a, b'],
    ['prompt editing and alternation kept', '[from: to :0.5], [a | b]', '[from:to:0.5], [a|b]'],
    ['BREAK kept', 'a BREAK b', 'a BREAK b'],
    ['unpaired markers stay', 'smile :), 2 * 3, **open', 'smile :), 2 * 3, **open'],
    ['unreadable weight stays as written', '(a:1.2.3)', '(a:1.2.3)'],
    ['nothing else changes', 'Ünïcödé 漢字 😀 a/b "q"', 'Ünïcödé 漢字 😀 a/b "q"'],
    ['empty', '', ''],
  ])('%s', (_rule, text, expected) => {
    expect(stripMarkup(text)).toBe(expected);
  });

  it.each([
    ['brackets and weights go', '(rain:1.2), [fog], ((mist))', 'rain, fog, mist'],
    ['all escapes resolve', '\\(o\\)_\\(o\\), a\\\\b', '(o)_(o), a\\b'],
    ['prompt editing keeps to', '[from:to:0.5], [only:3]', 'to, only'],
    ['alternation keeps the first option', '[cat|dog] ears', 'cat ears'],
    ['BREAK becomes a comma', 'a BREAK b', 'a, b'],
    ['nested editing inside alternation', '[[a:b:2]|c]', 'b'],
    ['unreadable weight stays as text', '(a:1.2.3)', 'a:1.2.3'],
  ])("attention: 'drop': %s", (_rule, text, expected) => {
    expect(stripMarkup(text, { attention: 'drop' })).toBe(expected);
  });

  it('gives A1111 the weights the markup meant', () => {
    expect(parsePromptAttention(stripMarkup('**(city:1.2)**, *[fog]*, <lora:x:1>'))).toEqual([
      ['city', 1.2],
      [', ', 1],
      ['fog', 0.9090909090909091],
    ]);
  });

  it.each([
    ['keep', true],
    ['drop', false],
  ] as const)(
    'equals the tree renderer on random input (attention: %s, property)',
    (attention, keepAttention) => {
      const random = seededRandom(7);
      for (let run = 0; run < 2000; run += 1) {
        const text = run % 2 === 0 ? randomMarkup(random) : randomCaption(random);
        const writer = new CaptionWriter();
        writeStripped(parse(text).children, writer, keepAttention);
        expect(stripMarkup(text, { attention }), JSON.stringify(text)).toBe(writer.finish());
      }
    },
  );

  it('is idempotent on its own output for well-formed captions (property)', () => {
    const random = seededRandom(11);
    for (let run = 0; run < 1000; run += 1) {
      const once = stripMarkup(randomCaption(random));
      expect(stripMarkup(once)).toBe(once);
    }
  });
});
