import { lint } from '@lora/caption-markup';
import { describe, expect, it } from 'vitest';
import { highlight } from './highlight.ts';

const classesOf = (text: string) =>
  highlight(text).map(({ text: part, className }) => [part, className] as [string, string]);

describe('highlight', () => {
  it('marks core, mood, weights, networks and commas, covering every character once', () => {
    const text = '**neon city**, *moody*, (rain:1.2) <lora:film:0.6>';
    const segments = highlight(text);
    expect(segments.map(({ text: part }) => part).join('')).toBe(text);
    expect(classesOf(text)).toEqual([
      ['**', 'core marker'],
      ['neon city', 'core'],
      ['**', 'core marker'],
      [',', 'comma'],
      [' ', ''],
      ['*', 'mood marker'],
      ['moody', 'mood'],
      ['*', 'mood marker'],
      [',', 'comma'],
      [' ', ''],
      ['(', 'weighted weight'],
      ['rain', 'weighted'],
      [':1.2)', 'weighted weight'],
      [' ', ''],
      ['<lora:film:0.6>', 'network'],
    ]);
  });

  it('underlines lint findings where they are', () => {
    const text = 'a, b, a';
    expect(lint(text).map(({ code }) => code)).toEqual(['duplicate-tag']);
    expect(classesOf(text).at(-1)).toEqual(['a', 'lint-warning']);
  });

  it('keeps an empty-tag finding visible on the character after it', () => {
    expect(classesOf('a,,b')).toContainEqual([',', 'comma lint-warning']);
  });
});
