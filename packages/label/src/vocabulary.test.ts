import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLIP_VOCABULARY, MAX_VOCABULARY_PHRASES, MOOD_CATEGORIES, readVocabulary } from './vocabulary.ts';

async function vocabFile(content: string): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'vocab-')), 'vocab.txt');
  await writeFile(path, content);
  return path;
}

describe('CLIP_VOCABULARY', () => {
  it('has style, medium, lighting and mood phrases, without repeats', () => {
    expect(Object.keys(CLIP_VOCABULARY)).toEqual(['style', 'medium', 'lighting', 'mood']);
    for (const phrases of Object.values(CLIP_VOCABULARY)) {
      expect(phrases.length).toBeGreaterThanOrEqual(15);
      expect(new Set(phrases).size).toBe(phrases.length);
    }
    expect([...MOOD_CATEGORIES].sort()).toEqual(['lighting', 'mood']);
  });
});

describe('readVocabulary', () => {
  it('reads phrases under [category] headers, skipping comments, blanks and repeats', async () => {
    const path = await vocabFile(
      'loose phrase\n# a comment\n\n[Style]\nanime\r\nanime\n  oil painting  \n[mood]\neerie\n',
    );
    expect(await readVocabulary(path)).toEqual({
      general: ['loose phrase'],
      style: ['anime', 'oil painting'],
      mood: ['eerie'],
    });
  });

  it.each([
    ['no phrases', '# only a comment\n[style]\n', /lists no phrases/],
    [
      'too many phrases',
      Array.from({ length: MAX_VOCABULARY_PHRASES + 1 }, (_, i) => `p${i}`).join('\n'),
      /MAX_VOCABULARY_PHRASES/,
    ],
  ])('rejects %s with LABEL_VOCABULARY_INVALID', async (_name, content, message) => {
    await expect(readVocabulary(await vocabFile(content))).rejects.toMatchObject({
      code: 'E_LABEL_VOCABULARY_INVALID',
      message: expect.stringMatching(message),
    });
  });

  it('says which file is missing', async () => {
    await expect(readVocabulary('/no/vocab.txt')).rejects.toMatchObject({ code: 'E_LABEL_FILE_NOT_FOUND' });
  });
});
