import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTaggerTags, tagText } from './tag-list.ts';

async function tagsFile(content: string): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'tags-')), 'selected_tags.csv');
  await writeFile(path, content);
  return path;
}

describe('tagText', () => {
  it.each([
    ['long_hair', 'long hair'],
    ['hatsune_miku_(vocaloid)', 'hatsune miku (vocaloid)'],
    ['^_^', '^_^'],
    ['>_<', '>_<'],
    ['||_||', '||_||'],
    ['a_b_c', 'a b c'],
  ])('%s → %s', (name, text) => expect(tagText(name)).toBe(text));
});

describe('readTaggerTags', () => {
  it('reads WD14 selected_tags.csv in order, with rating, general and character categories', async () => {
    const path = await tagsFile(
      'tag_id,name,category,count\n9999999,general,9,807\n1,1girl,0,5\n2,"quoted, tag",0,4\n3,hatsune_miku,4,3\n4,some_copyright,3,2\n',
    );
    expect(await readTaggerTags(path)).toEqual([
      { name: 'general', category: 'rating' },
      { name: '1girl', category: 'general' },
      { name: 'quoted, tag', category: 'general' },
      { name: 'hatsune_miku', category: 'character' },
      { name: 'some_copyright', category: 'general' },
    ]);
  });

  it('finds the columns in any order', async () => {
    const path = await tagsFile('category,name\n4,x\n');
    expect(await readTaggerTags(path)).toEqual([{ name: 'x', category: 'character' }]);
  });

  it.each([
    ['no name column', 'tag_id,tag,category\n1,a,0\n', /:1: the header needs "name" and "category"/],
    [
      'a non-numeric category',
      'tag_id,name,category\n1,a,general\n',
      /:2: expected a tag name and a numeric category/,
    ],
    ['an empty name', 'tag_id,name,category\n1,,0\n', /:2: expected a tag name/],
    ['no rows', 'tag_id,name,category\n', /no tags listed/],
    ['a broken quote', 'tag_id,name,category\n1,"a,0\n', /Quote fields/],
  ])('rejects %s with LABEL_TAGS_INVALID', async (_name, content, message) => {
    const path = await tagsFile(content);
    await expect(readTaggerTags(path)).rejects.toMatchObject({
      code: 'E_LABEL_TAGS_INVALID',
      path,
      message: expect.stringMatching(message),
    });
  });

  it('says which file is missing', async () => {
    await expect(readTaggerTags('/no/such/selected_tags.csv')).rejects.toMatchObject({
      code: 'E_LABEL_FILE_NOT_FOUND',
      message: expect.stringContaining('/no/such/selected_tags.csv'),
    });
  });
});
