import { describe, expect, it } from 'vitest';
import { augment } from './augment.ts';
import { CaptionMarkupError } from './errors.ts';
import { randomCaption, seededRandom } from './testing/fixtures.ts';

/** An rng that returns the given values in turn and records how many were drawn. */
function scripted(...values: number[]) {
  const rng = () => {
    const value = values[rng.calls];
    rng.calls += 1;
    if (value === undefined) throw new Error('rng drawn more often than expected');
    return value;
  };
  rng.calls = 0;
  return rng;
}

const CAPTION = '**sks dog**, grass, *sunny*, sky, **red collar**, tree';

describe('augment', () => {
  it('without shuffle or tag dropout returns the stripped caption in its own order', () => {
    const rng = scripted();
    expect(augment(CAPTION, {}, rng)).toBe('sks dog, grass, sunny, sky, red collar, tree');
    expect(rng.calls).toBe(0);
  });

  it('shuffles with Fisher–Yates from the end; core tags lead, in their order', () => {
    // flex [grass, sunny, sky, tree]: i=3 j=0 → [tree, sunny, sky, grass]; i=2 j=0 → [sky, sunny, tree, grass]; i=1 j=1
    const rng = scripted(0, 0, 0.99);
    expect(augment(CAPTION, { shuffle: true }, rng)).toBe('sks dog, red collar, sky, sunny, tree, grass');
    expect(rng.calls).toBe(3);
  });

  it('keepTokens fixes the first N non-core tags', () => {
    const rng = scripted(0, 0.99);
    expect(augment(CAPTION, { shuffle: true, keepTokens: 2 }, rng)).toBe(
      'sks dog, red collar, grass, sunny, tree, sky',
    );
  });

  it('tag dropout draws once per flex tag and never drops core or fixed tags', () => {
    const rng = scripted(0.1, 0.9, 0.1, 0.9);
    expect(augment(CAPTION, { tagDropout: 0.5, keepTokens: 0 }, rng)).toBe(
      'sks dog, red collar, sunny, tree',
    );
    expect(augment(CAPTION, { tagDropout: 1, keepTokens: 1 }, seededRandom(1))).toBe(
      'sks dog, red collar, grass',
    );
  });

  it('follows the kohya keep_tokens_separator example', () => {
    // flex [ccc, ddd, eee, fff]: i=3 j=0 → [fff, ddd, eee, ccc]; i=2 j=1 → [fff, eee, ddd, ccc]; i=1 j=1
    const rng = scripted(0, 0.5, 0.9);
    const caption = 'aaa, bbb ||| ccc, ddd, eee, fff ||| ggg, hhh';
    expect(augment(caption, { shuffle: true, keepTokensSeparator: '|||' }, rng)).toBe(
      'aaa, bbb, fff, eee, ddd, ccc, ggg, hhh',
    );
  });

  it('core tags lead even from the fixed suffix', () => {
    expect(
      augment('a ||| b, c ||| **d**', { shuffle: true, keepTokensSeparator: '|||' }, scripted(0.99)),
    ).toBe('d, a, b, c');
  });

  it('caption dropout draws first and empties the whole caption, prefix included', () => {
    expect(augment(CAPTION, { captionDropout: 0.5, prefix: 'photo' }, scripted(0.4))).toBe('');
    const rng = scripted(0.6);
    expect(augment(CAPTION, { captionDropout: 0.5 }, rng)).toBe(
      'sks dog, grass, sunny, sky, red collar, tree',
    );
    expect(rng.calls).toBe(1);
  });

  it('adds prefix and suffix with a space, as kohya does', () => {
    expect(augment('a, b', { prefix: 'photo of', suffix: 'hd' }, scripted())).toBe('photo of a, b hd');
    expect(augment('**a**, b', { prefix: 'sks,', shuffle: true }, scripted(0))).toBe('a, b, sks');
  });

  it('keeps A1111 weights per tag so they survive shuffling', () => {
    expect(augment('(a, b:1.2), <lora:x:1>, c', { shuffle: true }, scripted(0.99, 0.99))).toBe(
      '(a:1.2), (b:1.2), c',
    );
  });

  it('is deterministic for a seed and permutes tags without losing any (property)', () => {
    const random = seededRandom(9);
    for (let run = 0; run < 300; run += 1) {
      const caption = randomCaption(random);
      const seed = Math.floor(random() * 1e9);
      const first = augment(caption, { shuffle: true, keepTokens: 1 }, seededRandom(seed));
      expect(augment(caption, { shuffle: true, keepTokens: 1 }, seededRandom(seed))).toBe(first);
      const plain = augment(caption, {}, seededRandom(seed)).split(', ').filter(Boolean).sort();
      expect(first.split(', ').filter(Boolean).sort()).toEqual(plain);
      expect(first).not.toMatch(/\*\*|<lora/);
    }
  });

  it.each([
    [{ tagDropout: 1.5 }, /tagDropout must be a probability between 0 and 1, got 1.5/],
    [{ captionDropout: Number.NaN }, /captionDropout must be a probability/],
    [{ keepTokens: -1 }, /keepTokens must be a whole number ≥ 0, got -1/],
    [{ keepTokens: 1.5 }, /keepTokens must be a whole number/],
  ])('rejects bad options with E_INVALID_OPTION: %j', (options, message) => {
    const call = () => augment('a', options, scripted());
    expect(call).toThrow(message);
    expect(call).toThrow(CaptionMarkupError);
    try {
      call();
    } catch (error) {
      expect(CaptionMarkupError.isInstance(error) && error.code).toBe('E_INVALID_OPTION');
    }
  });
});
