import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { normalizeRelativePath, readMetadataCsv } from './metadata-csv.ts';
import { tempDir, writeText } from './test-fixtures.ts';

async function parse(content: string) {
  return readMetadataCsv(await writeText(join(await tempDir(), 'metadata.csv'), content));
}

describe('readMetadataCsv', () => {
  it.each([
    ['file_name,text', 'file_name,text\na.png,a cat\n'],
    ['filename,caption', 'filename,caption\na.png,a cat\n'],
    ['columns in another order, any case', 'Caption,extra,FILE_NAME\na cat,x,a.png\n'],
    ['headerless', 'a.png,a cat\n'],
    ['BOM and CRLF', '\uFEFFfile_name,text\r\na.png,a cat\r\n'],
  ])('reads %s', async (_name, content) => {
    const { captions, problems } = await parse(content);
    expect(captions.get('a.png')?.caption).toBe('a cat');
    expect(problems).toEqual([]);
  });

  it('keeps quoted commas, quotes and newlines, and reports line numbers', async () => {
    const { captions } = await parse(
      'file_name,text\n"a.png","tag one, tag two"\nb.png,"line1\nline2"\nsub\\c.png,"say ""hi"""\n',
    );
    expect(captions.get('a.png')).toEqual({ caption: 'tag one, tag two', line: 2 });
    expect(captions.get('b.png')?.caption).toBe('line1\nline2');
    expect(captions.get('sub/c.png')).toEqual({ caption: 'say "hi"', line: 5 });
  });

  it('headerless rows keep unquoted commas in the caption', async () => {
    const { captions } = await parse('a.png,red,blue, green\n');
    expect(captions.get('a.png')?.caption).toBe('red,blue, green');
  });

  it('reports empty names, missing captions and repeated files without failing', async () => {
    const { captions, problems } = await parse('file_name,text\n,orphan\nb.png\na.png,one\n./a.png,two\n');
    expect(captions.get('a.png')).toEqual({ caption: 'two', line: 5 });
    expect(problems).toEqual([
      { line: 2, message: 'the file name is empty' },
      { line: 3, message: 'no caption field for "b.png"' },
      { line: 5, message: '"./a.png" is listed again (first on line 4); this line wins' },
    ]);
  });

  it.each([
    ['a header with no caption column', 'file_name,tags\na.png,x\n', /file_name or filename.*"tags"/, 1],
    ['an unclosed quote', 'file_name,text\na.png,"oops\n', /Quote fields/, undefined],
    ['a stray quote', 'file_name,text\na.png,bad"quote"x\n', /metadata\.csv:2/, 2],
  ])('fails on %s with INVALID_CSV', async (_name, content, message, line) => {
    const error = await parse(content).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'INVALID_CSV', message: expect.stringMatching(message) });
    if (line !== undefined) expect(error).toMatchObject({ line });
  });
});

describe('normalizeRelativePath', () => {
  it.each([
    ['a.png', 'a.png'],
    ['./a.png', 'a.png'],
    ['sub\\b.png', 'sub/b.png'],
    [' x/../y.png ', 'y.png'],
  ])('%j → %j', (input, expected) => {
    expect(normalizeRelativePath(input)).toBe(expected);
  });
});
