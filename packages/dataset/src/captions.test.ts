import { describe, expect, it } from 'vitest';
import { checkCaptionOptions, datasetTagFrequency, lintCaption, processCaption } from './captions.ts';
import { createRng } from './rng.ts';

describe('processCaption', () => {
  it('strips markup when there are no options', () => {
    expect(processCaption('**sks dog**, *sunny*, <lora:x:0.5> grass', undefined, createRng(1))).toBe(
      'sks dog, sunny, grass',
    );
  });

  it('augments deterministically from the sample rng, keeping core tags first', () => {
    const caption = '**sks dog**, grass, sky, tree, river, *sunny*';
    const options = { shuffle: true };
    const a = processCaption(caption, options, createRng(5, 2, 0, 0, 0));
    expect(processCaption(caption, options, createRng(5, 2, 0, 0, 0))).toBe(a);
    expect(a.startsWith('sks dog, ')).toBe(true);
    expect(a.split(', ').sort()).toEqual(['grass', 'river', 'sks dog', 'sky', 'sunny', 'tree']);
    const variants = new Set(
      Array.from({ length: 20 }, (_, i) => processCaption(caption, options, createRng(5, 2, 0, i, 0))),
    );
    expect(variants.size).toBeGreaterThan(5);
  });

  it('drops the whole caption at captionDropout 1 and adds prefix text', () => {
    expect(processCaption('a, b', { captionDropout: 1 }, createRng(1))).toBe('');
    expect(processCaption('a, b', { prefix: 'photo of' }, createRng(1))).toBe('photo of a, b');
  });

  it.each([[{ tagDropout: 2 }], [{ keepTokens: -1 }]])('rejects %j as INVALID_OPTIONS', (options) => {
    expect(() => checkCaptionOptions(options)).toThrow(
      expect.objectContaining({ code: 'E_INVALID_OPTIONS' }),
    );
  });
});

describe('lintCaption', () => {
  it('reports markup problems with spans, never as skip-worthy errors', () => {
    const findings = lintCaption('a, (b, c');
    expect(findings.length).toBeGreaterThan(0);
    expect(findings.every((finding) => finding.severity !== 'error')).toBe(true);
    expect(findings[0]!.message).toMatch(/^unbalanced-bracket: /);
    expect(findings[0]!.span).toEqual([3, 4]);
    expect(lintCaption('clean, caption')).toEqual([]);
  });
});

describe('datasetTagFrequency', () => {
  it('counts tags per dataset folder, once per image, markup stripped and lower-cased', () => {
    const frequency = datasetTagFrequency([
      { dataset: '10_style', caption: '**Neon City**, *rain*, night' },
      { dataset: '10_style', caption: 'neon city, Night' },
      { dataset: '5_other', caption: 'cat' },
      { dataset: '5_other', caption: null },
    ]);
    expect(Object.keys(frequency)).toEqual(['10_style', '5_other']);
    expect({ ...frequency['10_style']!.counts }).toEqual({ 'neon city': 2, rain: 1, night: 2 });
    expect({ ...frequency['10_style']!.byRole.core }).toEqual({ 'neon city': 1 });
    expect({ ...frequency['5_other']!.counts }).toEqual({ cat: 1 });
  });
});
