import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type CaptionEdit, updateCaptions } from './caption-files.ts';
import { scanImageFolders } from './scan.ts';
import { tempDir, writeText } from './test-fixtures.ts';

const csvEdit = (dir: string, name: string, expected: string | null, caption: string): CaptionEdit => ({
  image: join(dir, name),
  target: { kind: 'metadata', csv: join(dir, 'metadata.csv') },
  expected,
  caption,
});

describe('updateCaptions', () => {
  it('replaces one metadata.csv row, keeping the other rows and columns, and leaves no temporary file', async () => {
    const dir = await tempDir();
    await writeText(join(dir, 'metadata.csv'), 'file_name,text,score\na.png,old a,5\nb.png,"b, two",7\n');
    const result = await updateCaptions([csvEdit(dir, 'a.png', 'old a', '**new a**, rain')]);
    expect(result).toEqual({ written: [join(dir, 'metadata.csv')], conflicts: [] });
    expect(await readFile(join(dir, 'metadata.csv'), 'utf8')).toBe(
      'file_name,text,score\na.png,"**new a**, rain",5\nb.png,"b, two",7\n',
    );
    expect(await readdir(dir)).toEqual(['metadata.csv']);
  });

  it('adds a row, or creates the metadata.csv, for an image that had no caption', async () => {
    const dir = await tempDir();
    await updateCaptions([csvEdit(dir, 'sub/c.png', null, 'c')]);
    expect(await readFile(join(dir, 'metadata.csv'), 'utf8')).toBe('file_name,text\nsub/c.png,c\n');
  });

  it('refuses every edit, writing nothing, when one caption changed on disk, and says what it is now', async () => {
    const dir = await tempDir();
    const before = 'file_name,text\na.png,a\nb.png,changed elsewhere\n';
    await writeText(join(dir, 'metadata.csv'), before);
    await writeText(join(dir, 'c.txt'), 'c\n');
    const result = await updateCaptions([
      csvEdit(dir, 'a.png', 'a', 'a2'),
      csvEdit(dir, 'b.png', 'b', 'b2'),
      {
        image: join(dir, 'c.png'),
        target: { kind: 'sidecar', path: join(dir, 'c.txt') },
        expected: 'c',
        caption: 'c2',
      },
    ]);
    expect(result).toEqual({
      written: [],
      conflicts: [
        {
          image: join(dir, 'b.png'),
          file: join(dir, 'metadata.csv'),
          expected: 'b',
          current: 'changed elsewhere',
        },
      ],
    });
    expect(await readFile(join(dir, 'metadata.csv'), 'utf8')).toBe(before);
    expect(await readFile(join(dir, 'c.txt'), 'utf8')).toBe('c\n');
  });

  it('a caption added elsewhere to an uncaptioned image is a conflict', async () => {
    const dir = await tempDir();
    await writeText(join(dir, 'a.txt'), 'written by someone else\n');
    const target = { kind: 'sidecar', path: join(dir, 'a.txt') } as const;
    const result = await updateCaptions([
      { image: join(dir, 'a.png'), target, expected: null, caption: 'mine' },
    ]);
    expect(result.conflicts[0]?.current).toBe('written by someone else');
    expect(await readFile(join(dir, 'a.txt'), 'utf8')).toBe('written by someone else\n');
  });

  it('replaces only the line of a sidecar that training reads, keeping CRLF and later lines', async () => {
    const dir = await tempDir();
    await writeText(join(dir, 'a.txt'), '\r\nold caption\r\nnote: keep me\r\n');
    const target = { kind: 'sidecar', path: join(dir, 'a.txt') } as const;
    await updateCaptions([{ image: join(dir, 'a.png'), target, expected: 'old caption', caption: 'new' }]);
    expect(await readFile(join(dir, 'a.txt'), 'utf8')).toBe('\r\nnew\r\nnote: keep me\r\n');
  });

  it('reads back through the scan as the caption of the image, from the file it came from', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'a.png'), '');
    await writeText(join(dir, 'a.txt'), 'old\n');
    const [image] = (await scanImageFolders({ dirs: [dir] })).images;
    expect(image).toMatchObject({ caption: 'old', captionFrom: 'sidecar', captionPath: join(dir, 'a.txt') });
    const target = { kind: 'sidecar', path: image!.captionPath! } as const;
    await updateCaptions([{ image: image!.path, target, expected: image!.caption, caption: '**new**' }]);
    expect((await scanImageFolders({ dirs: [dir] })).images[0]?.caption).toBe('**new**');
  });

  it.each([
    ['a line break', 'a\nb', 'E_INVALID_OPTIONS', /one line/],
    ['too long', 'x'.repeat(70_000), 'E_LIMIT_EXCEEDED', /MAX_CAPTION_BYTES/],
  ])('refuses a caption with %s', async (_name, caption, code, message) => {
    const dir = await tempDir();
    const error = await updateCaptions([csvEdit(dir, 'a.png', null, caption)]).catch((e: unknown) => e);
    expect(error).toMatchObject({ code, message: expect.stringMatching(message) });
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses to rewrite a metadata.csv with a row it would drop', async () => {
    const dir = await tempDir();
    const before = 'file_name,text\na.png,a\n,orphan caption\n';
    await writeText(join(dir, 'metadata.csv'), before);
    const error = await updateCaptions([csvEdit(dir, 'a.png', 'a', 'b')]).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'E_INVALID_CSV',
      message: expect.stringMatching(/:3: the file name is empty; fix that row first/),
    });
    expect(await readFile(join(dir, 'metadata.csv'), 'utf8')).toBe(before);
  });

  it('leaves a sidecar it cannot read as it is', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'a.txt'), Buffer.from([0x66, 0xff, 0x0a]));
    const target = { kind: 'sidecar', path: join(dir, 'a.txt') } as const;
    const error = await updateCaptions([
      { image: join(dir, 'a.png'), target, expected: null, caption: 'x' },
    ]).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'E_INVALID_STATE',
      message: expect.stringMatching(/not UTF-8.*unchanged/),
    });
    expect(await readFile(join(dir, 'a.txt'))).toEqual(Buffer.from([0x66, 0xff, 0x0a]));
  });
});
