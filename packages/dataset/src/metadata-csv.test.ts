import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  csvField,
  type MetadataRow,
  normalizeRelativePath,
  readMetadataCsv,
  writeMetadataCsv,
} from './metadata-csv.ts';
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
    expect(captions.get('a.png')).toEqual({ caption: 'tag one, tag two', line: 2, extra: {} });
    expect(captions.get('b.png')?.caption).toBe('line1\nline2');
    expect(captions.get('sub/c.png')).toEqual({ caption: 'say "hi"', line: 5, extra: {} });
  });

  it('headerless rows keep unquoted commas in the caption', async () => {
    const { captions } = await parse('a.png,red,blue, green\n');
    expect(captions.get('a.png')?.caption).toBe('red,blue, green');
  });

  it('reports empty names, missing captions and repeated files without failing', async () => {
    const { captions, problems } = await parse('file_name,text\n,orphan\nb.png\na.png,one\n./a.png,two\n');
    expect(captions.get('a.png')).toEqual({ caption: 'two', line: 5, extra: {} });
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
    expect(error).toMatchObject({ code: 'E_INVALID_CSV', message: expect.stringMatching(message) });
    if (line !== undefined) expect(error).toMatchObject({ line });
  });
  it('keeps the other columns by name; empty or repeated names become column_N', async () => {
    const { captions, extraColumns } = await parse('score,Caption,,file_name,score\n1,a cat,x,a.png,2\n');
    expect(extraColumns).toEqual(['score', 'column_3', 'column_5']);
    expect(captions.get('a.png')?.extra).toEqual({ score: '1', column_3: 'x', column_5: '2' });
  });
});

describe('writeMetadataCsv', () => {
  it('reads back through readMetadataCsv with every caption and column intact', async () => {
    const rows: MetadataRow[] = [
      { file: 'a.png', caption: '**neon city**, high quality, detailed', extra: { score: '0.9' } },
      { file: 'sub dir/b "2".png', caption: 'say "hi", *moody*', extra: { source: 'web, 2024' } },
      { file: 'c.png', caption: 'line one\nline two' },
      { file: 'd.png', caption: '' },
    ];
    const path = join(await tempDir(), 'metadata.csv');
    await writeMetadataCsv(path, rows);
    expect((await readFile(path, 'utf8')).split('\n')[0]).toBe('file_name,text,score,source');
    const { captions, problems, extraColumns } = await readMetadataCsv(path);
    expect(problems).toEqual([]);
    expect(extraColumns).toEqual(['score', 'source']);
    expect([...captions].map(([file, entry]) => [file, entry.caption])).toEqual(
      rows.map((row) => [row.file, row.caption]),
    );
    expect(captions.get('a.png')?.extra).toEqual({ score: '0.9', source: '' });
    expect(captions.get('sub dir/b "2".png')?.extra).toEqual({ score: '', source: 'web, 2024' });
  });

  it('round-trips a file with extra columns', async () => {
    const text = 'file_name,text,score\na.png,"x, y",1\nb.png,z,2\n';
    const path = await writeText(join(await tempDir(), 'metadata.csv'), text);
    const { captions } = await readMetadataCsv(path);
    await writeMetadataCsv(
      path,
      [...captions].map(([file, { caption, extra }]) => ({ file, caption, extra })),
    );
    expect(await readFile(path, 'utf8')).toBe(text);
  });

  it('replaces an existing file whole and leaves no temporary file', async () => {
    const dir = await tempDir();
    const path = await writeText(join(dir, 'metadata.csv'), `old ${'content '.repeat(50)}\n`);
    await writeMetadataCsv(path, [{ file: 'a.png', caption: 'new' }]);
    expect(await readFile(path, 'utf8')).toBe('file_name,text\na.png,new\n');
    expect(await readdir(dir)).toEqual(['metadata.csv']);
  });

  it('fails with WRITE_FAILED naming the file when its folder is missing', async () => {
    const path = join(await tempDir(), 'missing', 'metadata.csv');
    await expect(writeMetadataCsv(path, [])).rejects.toMatchObject({
      code: 'E_WRITE_FAILED',
      path,
      message: expect.stringContaining(path),
    });
  });
});

describe('csvField', () => {
  it.each([
    ['plain', 'plain'],
    ['a, b', '"a, b"'],
    ['say "hi"', '"say ""hi"""'],
    ['two\nlines', '"two\nlines"'],
    [' padded ', '" padded "'],
    ['', ''],
  ])('%j → %j', (value, field) => expect(csvField(value)).toBe(field));
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
