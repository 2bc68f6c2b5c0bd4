import { describe, expect, it } from 'vitest';
import { tagFrequency } from './frequency.ts';
import { coreTags, extractTags } from './tags.ts';

describe('extractTags', () => {
  it('reads the issue example', () => {
    expect(
      extractTags('**cyberpunk city at night**, neon signs, *cinematic lighting*, ultra-detailed'),
    ).toEqual([
      { text: 'cyberpunk city at night', role: 'core', weight: 1, span: [0, 27] },
      { text: 'neon signs', role: 'plain', weight: 1, span: [29, 39] },
      { text: 'cinematic lighting', role: 'mood', weight: 1, span: [41, 61] },
      { text: 'ultra-detailed', role: 'plain', weight: 1, span: [63, 77] },
    ]);
  });

  it.each([
    [
      'A1111 weights, multiplied innermost first',
      '((a:1.5)), [b], (((c)))',
      [
        ['a', 1.6500000000000001],
        ['b', 0.9090909090909091],
        ['c', 1.3310000000000004],
      ],
    ],
    [
      'a group over several tags weights each',
      '(p, q:1.2)',
      [
        ['p', 1.2],
        ['q', 1.2],
      ],
    ],
    [
      'a group around part of a tag does not weight it',
      'a (b) c, (d) (e)',
      [
        ['a b c', 1],
        ['d e', 1],
      ],
    ],
    ['emphasis does not change the weight', '**(a:0.8)**', [['a', 0.8]]],
  ])('weight: %s', (_rule, text, expected) => {
    expect(extractTags(text).map((tag) => [tag.text, tag.weight])).toEqual(expected);
  });

  it.each([
    [
      'emphasis over several tags marks each',
      '**a, b**, c',
      [
        ['a', 'core'],
        ['b', 'core'],
        ['c', 'plain'],
      ],
    ],
    ['core beats mood anywhere in the tag', '*moody **city** street*', [['moody city street', 'core']]],
    ['emphasis around no words marks nothing', '*,* x', [['x', 'plain']]],
    [
      'underscore aliases',
      '__a__, _b_',
      [
        ['a', 'core'],
        ['b', 'mood'],
      ],
    ],
  ])('role: %s', (_rule, text, expected) => {
    expect(extractTags(text).map((tag) => [tag.text, tag.role])).toEqual(expected);
  });

  it.each([
    [
      'markers and escapes resolved',
      '\\(o\\)_\\(o\\), snake\\_case, a\\\\b',
      ['(o)_(o)', 'snake_case', 'a\\b'],
    ],
    ['extra networks and empty tags left out', 'a, <lora:x:1>, , b <hypernet:y>', ['a', 'b']],
    ['BREAK separates tags', 'a BREAK b', ['a', 'b']],
    ['editing keeps to, alternation its first option', '[from:to:3], [cat|dog] ears', ['to', 'cat ears']],
    ['brackets separate words as A1111 tokenizes them', 'name_(series)', ['name_ series']],
    ['whitespace collapsed', '  a \t b  ', ['a b']],
  ])('text: %s', (_rule, text, expected) => {
    expect(extractTags(text).map((tag) => tag.text)).toEqual(expected);
  });

  it('lower-cases only when asked', () => {
    expect(extractTags('**Neon CITY**').map((tag) => tag.text)).toEqual(['Neon CITY']);
    expect(extractTags('**Neon CITY**', { lowercase: true }).map((tag) => tag.text)).toEqual(['neon city']);
  });

  it('spans cover the markup of each tag, without surrounding whitespace', () => {
    const text = ' **a, b** ,  (c:1.2) ';
    expect(extractTags(text).map((tag) => text.slice(...tag.span))).toEqual(['**a', 'b**', '(c:1.2)']);
  });

  it('coreTags keeps the bold ones in order', () => {
    expect(coreTags('x, **b**, *m*, __a__').map((tag) => tag.text)).toEqual(['b', 'a']);
  });
});

describe('tagFrequency', () => {
  it("counts as kohya's ss_tag_frequency does, markers removed", () => {
    const frequency = tagFrequency(['**Cat**, sky, sky', 'cat, *sky*', ' , (dog:1.2)']);
    expect({ ...frequency.counts }).toEqual({ cat: 2, sky: 3, dog: 1 });
    expect(Object.keys(frequency.counts)).toEqual(['cat', 'sky', 'dog']);
    expect({ ...frequency.byRole.core }).toEqual({ cat: 1 });
    expect({ ...frequency.byRole.mood }).toEqual({ sky: 1 });
    expect({ ...frequency.byRole.plain }).toEqual({ sky: 2, cat: 1, dog: 1 });
  });

  it('keeps case when asked, and treats __proto__ as a plain key', () => {
    const frequency = tagFrequency(['Cat, cat, constructor, \\_\\_proto\\_\\_'], { lowercase: false });
    expect(frequency.counts['Cat']).toBe(1);
    expect(frequency.counts['cat']).toBe(1);
    expect(frequency.counts['constructor']).toBe(1);
    expect(Object.getOwnPropertyDescriptor(frequency.counts, '__proto__')?.value).toBe(1);
    expect(JSON.stringify(frequency.counts)).toBe('{"Cat":1,"cat":1,"constructor":1,"__proto__":1}');
  });

  it('accepts any iterable', () => {
    function* captions() {
      yield 'a';
      yield 'a, b';
    }
    expect({ ...tagFrequency(captions()).counts }).toEqual({ a: 2, b: 1 });
  });
});
