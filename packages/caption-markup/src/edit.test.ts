import { describe, expect, it } from 'vitest';
import { addTag, promoteTag, removeTag, renameTag } from './edit.ts';
import { extractTags } from './tags.ts';

describe('renameTag', () => {
  it.each([
    ['neon city, rain', 'neon town, rain'],
    ['**neon city**, rain', '**neon town**, rain'],
    ['rain, *Neon City*', 'rain, *neon town*'],
    ['(neon city:1.2), [neon city]', '(neon town:1.2), [neon town]'],
    ['**a, neon city**, b', '**a, neon town**, b'],
    ['x <lora:style:0.7> neon city', 'x <lora:style:0.7> neon city'],
    ['neon city <lora:style:0.7>, b', 'neon town <lora:style:0.7>, b'],
    ['  neon   city  ,b', '  neon town  ,b'],
  ])('%j → %j', (caption, expected) => {
    expect(renameTag(caption, 'neon city', 'neon town').text).toBe(expected);
  });

  it('counts what it changed and what it left because the words are split by markup', () => {
    expect(renameTag('neon city, neon **city**, [neon city|b]', 'neon city', 'x')).toEqual({
      text: 'x, neon **city**, [neon city|b]',
      changed: 1,
      skipped: 2,
    });
  });

  it('writes the new name as plain words, escaping markup characters', () => {
    const { text } = renameTag('**miku**, rain', 'miku', 'hatsune miku (vocaloid)');
    expect(text).toBe('**hatsune miku \\(vocaloid\\)**, rain');
    expect(extractTags(text)[0]).toMatchObject({ text: 'hatsune miku (vocaloid)', role: 'core', weight: 1 });
  });

  it.each(['a, b', '', '  ', 'x BREAK y', '<lora:a:1>'])('refuses %j as a new name', (to) => {
    expect(() => renameTag('a', 'a', to)).toThrow(expect.objectContaining({ code: 'E_INVALID_OPTION' }));
  });
});

describe('removeTag', () => {
  it.each([
    ['neon city, rain', 'rain'],
    ['rain, neon city', 'rain'],
    ['neon city', ''],
    ['a, neon city, b', 'a, b'],
    ['**a, neon city**, b', '**a**, b'],
    ['**neon city, a**, b', '**a**, b'],
    ['((a, neon city), c:1.2)', '((a), c:1.2)'],
    ['(neon city:1.2), *moody*', '*moody*'],
    ['a, Neon City, neon city, b', 'a, b'],
    ['a BREAK neon city, b', 'a BREAK b'],
    ['neon city <lora:style:0.7>, b', ' <lora:style:0.7>, b'],
    ['a, neon **city**', 'a, neon **city**'],
  ])('%j → %j', (caption, expected) => {
    expect(removeTag(caption, 'neon city').text).toBe(expected);
  });

  it('counts the tags it removed and those markup splits', () => {
    expect(removeTag('neon city, neon **city**, b', 'neon city')).toEqual({
      text: 'neon **city**, b',
      changed: 1,
      skipped: 1,
    });
  });
});

describe('addTag', () => {
  it.each([
    ['rain, *moody*', 'plain', 'rain, neon city, *moody*'],
    ['rain, *moody*', 'core', '**neon city**, rain, *moody*'],
    ['rain, *moody*', 'mood', 'rain, *moody*, *neon city*'],
    ['**a**, rain', 'plain', '**a**, rain, neon city'],
    ['', 'plain', 'neon city'],
    ['rain, ', 'mood', 'rain, *neon city*, '],
    ['*a, b*', 'plain', '*a, b*, neon city'],
  ] as const)('%j + %s → %j', (caption, role, expected) => {
    expect(addTag(caption, 'neon city', role)).toEqual({ text: expected, changed: 1, skipped: 0 });
  });

  it('leaves a caption that has the tag in any role, and escapes markup in the new one', () => {
    expect(addTag('**Neon City**, rain', 'neon city')).toEqual({
      text: '**Neon City**, rain',
      changed: 0,
      skipped: 0,
    });
    expect(addTag('rain', 'miku (vocaloid)', 'core').text).toBe('**miku \\(vocaloid\\)**, rain');
    expect(() => addTag('rain', 'a, b')).toThrow(expect.objectContaining({ code: 'E_INVALID_OPTION' }));
  });
});

describe('promoteTag', () => {
  it.each([
    ['neon city, rain', '**neon city**, rain'],
    ['rain, *neon city*', 'rain, **neon city**'],
    ['rain, _neon city_', 'rain, **neon city**'],
    ['(neon city:1.2)', '(**neon city**:1.2)'],
    ['**neon city**, rain', '**neon city**, rain'],
    ['*rain, neon city*', '*rain, neon city*'],
  ])('%j → %j', (caption, expected) => {
    const { text } = promoteTag(caption, 'neon city');
    expect(text).toBe(expected);
    if (text !== caption) expect(extractTags(text).find((t) => t.text === 'neon city')?.role).toBe('core');
  });

  it('counts what it promoted and what it had to leave', () => {
    expect(promoteTag('neon city, *a, neon city*, **neon city**', 'neon city')).toEqual({
      text: '**neon city**, *a, neon city*, **neon city**',
      changed: 1,
      skipped: 1,
    });
  });
});
