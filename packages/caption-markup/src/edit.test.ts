import { describe, expect, it } from 'vitest';
import { renameTag } from './edit.ts';
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
