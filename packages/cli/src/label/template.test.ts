import { lint } from '@lora/caption-markup';
import { describe, expect, it } from 'vitest';
import { DEFAULT_TEMPLATE } from './default-template.ts';
import { applyTemplate, checkTemplate, escapeTag, type TemplateValues } from './template.ts';

describe('applyTemplate', () => {
  it.each<[string, TemplateValues, string | undefined]>([
    [DEFAULT_TEMPLATE, { caption: ['neon city'] }, '**neon city**, high quality, detailed'],
    // Bold over several tags is split per tag, as the caption lint wants.
    [
      DEFAULT_TEMPLATE,
      { caption: ['rainy street', 'neon city'] },
      '**rainy street**, **neon city**, high quality, detailed',
    ],
    // The template's order is kept (the issue: "{caption}, *calm*, photo" came out reordered).
    ['*moody*, {caption} ,  **subject**', { caption: ['cat'] }, '*moody*, cat, **subject**'],
    ['{caption}, *calm*, photo', { caption: ['cat'] }, 'cat, *calm*, photo'],
    ['{caption}, {caption}', { caption: ['a'] }, 'a, a'],
    // Model tags: other tags and mood tags appended when the template does not place them.
    [
      DEFAULT_TEMPLATE,
      { caption: ['1girl', 'solo'], tags: ['smile'], mood: ['night', 'neon lights'] },
      '**1girl**, **solo**, high quality, detailed, smile, *night*, *neon lights*',
    ],
    [
      '{mood}, **{caption}**, {tags}, masterpiece',
      { caption: ['cat'], tags: ['sofa', 'window'], mood: ['cozy'] },
      '*cozy*, **cat**, sofa, window, masterpiece',
    ],
    // Markup characters in model tags are escaped; kaomoji underscores stay.
    [
      DEFAULT_TEMPLATE,
      { caption: ['hatsune miku (vocaloid)', '^_^'], tags: ['a*b', '[x]'] },
      '**hatsune miku \\(vocaloid\\)**, **^_^**, high quality, detailed, a\\*b, \\[x\\]',
    ],
    // Tags the template already writes are not repeated; a caption left empty takes the next tag.
    [
      DEFAULT_TEMPLATE,
      { caption: ['Detailed'], tags: ['cat', 'high quality'] },
      '**cat**, high quality, detailed',
    ],
    [DEFAULT_TEMPLATE, { caption: [], tags: [], mood: ['night'] }, undefined],
  ])('%s with %j → %j', (template, values, text) => {
    const caption = applyTemplate(template, values);
    expect(caption).toBe(text);
    if (caption !== undefined && template !== '{caption}, {caption}') expect(lint(caption)).toEqual([]);
  });
});

describe('escapeTag', () => {
  it.each([
    ['name (series)', 'name \\(series\\)'],
    ['>_<', '>_<'],
    ['_edge_', '\\_edge\\_'],
    ['back\\slash', 'back\\\\slash'],
    ['a|b', 'a\\|b'],
  ])('%s → %s', (tag, escaped) => expect(escapeTag(tag)).toBe(escaped));
});

describe('checkTemplate', () => {
  it.each([
    ['**{subject}**', /\{subject\}, which is not a placeholder; the ones available are \{caption\}/],
    ['{}', /\{\}, which is not a placeholder/],
    ['high quality', /has no \{caption\}, so every image would get the same caption/],
    ['{tags}, {mood}', /has no \{caption\}/],
  ])('rejects %j', (template, message) => {
    expect(() => checkTemplate(template)).toThrow(
      expect.objectContaining({ code: 'E_USAGE', message: expect.stringMatching(message) }),
    );
  });

  it.each([DEFAULT_TEMPLATE, '{mood}, **{caption}**, {tags}'])('accepts %j', (template) =>
    expect(() => checkTemplate(template)).not.toThrow(),
  );
});
