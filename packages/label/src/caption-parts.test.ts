import { describe, expect, it } from 'vitest';
import { captionParts, clipTags, isMoodTag, taggerTags } from './caption-parts.ts';
import type { TaggedImage, TagScore } from './wd14.ts';

const tag = (text: string, confidence: number, category: TagScore['category'] = 'general'): TagScore => ({
  tag: text.replaceAll(' ', '_'),
  text,
  category,
  confidence,
});

describe('isMoodTag', () => {
  it.each([
    ['night', true],
    ['neon lights', true],
    ['lens flare', true],
    ['sunset', true],
    ['dramatic', true],
    ['depth of field', true],
    ['light brown hair', false],
    ['dark skin', false],
    ['night sky', false],
    ['1girl', false],
  ])('%s → %s', (text, mood) => expect(isMoodTag(text)).toBe(mood));
});

describe('taggerTags', () => {
  const image: TaggedImage = {
    path: 'a.png',
    tags: [
      tag('1girl', 0.99),
      tag('hatsune miku (vocaloid)', 0.95, 'character'),
      tag('night', 0.9),
      tag('solo', 0.85),
      tag('long hair', 0.8),
      tag('neon lights', 0.7),
      tag('smile', 0.5),
    ],
    rating: tag('general', 0.9, 'rating'),
  };

  it("keeps each tag's confidence, the rating first, then characters", () => {
    expect(taggerTags(image, { rating: true }).slice(0, 4)).toEqual([
      { text: 'general', role: 'plain', score: 0.9 },
      { text: 'hatsune miku (vocaloid)', role: 'core', score: 0.95 },
      { text: '1girl', role: 'core', score: 0.99 },
      { text: 'night', role: 'mood', score: 0.9 },
    ]);
  });

  it('makes characters and the most confident content tags core, light and mood tags mood', () => {
    expect(captionParts(taggerTags(image))).toEqual({
      core: ['hatsune miku (vocaloid)', '1girl', 'solo', 'long hair'],
      plain: ['smile'],
      mood: ['night', 'neon lights'],
    });
  });

  it.each([
    [{ coreTags: 1 }, ['hatsune miku (vocaloid)', '1girl'], ['solo', 'long hair', 'smile']],
    [
      { coreTags: 0, rating: true },
      ['hatsune miku (vocaloid)'],
      ['general', '1girl', 'solo', 'long hair', 'smile'],
    ],
  ])('with %j', (options, core, plain) => {
    expect(captionParts(taggerTags(image, options))).toMatchObject({ core, plain });
  });
});

describe('clipTags', () => {
  it('ranks style and medium phrases together for core, lighting and mood phrases become mood', () => {
    const tags = clipTags(
      {
        path: 'a.png',
        categories: {
          style: [
            { phrase: 'cyberpunk', score: 0.31 },
            { phrase: 'anime', score: 0.2 },
          ],
          medium: [
            { phrase: 'digital painting', score: 0.29 },
            { phrase: 'cyberpunk', score: 0.1 },
          ],
          lighting: [{ phrase: 'neon lighting', score: 0.33 }],
          mood: [{ phrase: 'mysterious', score: 0.25 }],
        },
      },
      { coreTags: 2 },
    );
    // Best first, each with its similarity; the second `cyberpunk` (0.1) is dropped.
    expect(tags).toEqual([
      { text: 'neon lighting', role: 'mood', score: 0.33 },
      { text: 'cyberpunk', role: 'core', score: 0.31 },
      { text: 'digital painting', role: 'core', score: 0.29 },
      { text: 'mysterious', role: 'mood', score: 0.25 },
      { text: 'anime', role: 'plain', score: 0.2 },
    ]);
    expect(captionParts(tags)).toEqual({
      core: ['cyberpunk', 'digital painting'],
      plain: ['anime'],
      mood: ['neon lighting', 'mysterious'],
    });
  });
});
