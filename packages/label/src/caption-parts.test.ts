import { describe, expect, it } from 'vitest';
import { clipCaptionParts, isMoodTag, taggerCaptionParts } from './caption-parts.ts';
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

describe('taggerCaptionParts', () => {
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

  it('makes characters and the most confident content tags core, light and mood tags mood', () => {
    expect(taggerCaptionParts(image)).toEqual({
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
    expect(taggerCaptionParts(image, options)).toMatchObject({ core, plain });
  });
});

describe('clipCaptionParts', () => {
  it('ranks style and medium phrases together for core, lighting and mood phrases become mood', () => {
    const parts = clipCaptionParts(
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
    expect(parts).toEqual({
      core: ['cyberpunk', 'digital painting'],
      plain: ['anime'],
      mood: ['neon lighting', 'mysterious'],
    });
  });
});
