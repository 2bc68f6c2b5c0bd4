import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCsvRecords } from './csv.ts';
import { readTextRecords } from './text-records.ts';
import { findInvalidUtf8 } from './utf8.ts';

const dir = mkdtempSync(join(tmpdir(), 'utf8-'));
const file = (name: string, bytes: Buffer) => {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
};

describe('findInvalidUtf8', () => {
  it.each([
    ['ASCII', Buffer.from('a,b\nc\n'), undefined],
    ['2-, 3- and 4-byte characters', Buffer.from('é€𝄞\n'), undefined],
    ['Latin-1 é on line 2', Buffer.from([0x61, 0x0a, 0x63, 0x61, 0x66, 0xe9, 0x0a]), { line: 2, offset: 5 }],
    ['an overlong "/"', Buffer.from([0x61, 0xc0, 0xaf]), { line: 1, offset: 1 }],
    ['a UTF-16 surrogate', Buffer.from([0xed, 0xa0, 0x80]), { line: 1, offset: 0 }],
    ['above U+10FFFF', Buffer.from([0xf4, 0x90, 0x80, 0x80]), { line: 1, offset: 0 }],
    ['a character cut at the end', Buffer.from([0x61, 0xe2, 0x82]), { line: 1, offset: 1 }],
  ])('%s', (_, bytes, expected) => {
    expect(findInvalidUtf8(bytes)).toEqual(expected);
  });
});

describe('readers refuse text that is not UTF-8, naming line and byte', () => {
  // Past the first 64 KiB chunk, with a multi-byte character split across the chunk boundary before it.
  const long = Buffer.concat([
    Buffer.from('file_name,text\n'),
    Buffer.from(`a.png,${'x'.repeat(65_536 - 22)}€\n`),
    Buffer.from('b.png,caf'),
    Buffer.from([0xe9]),
    Buffer.from('\n'),
  ]);

  it('metadata.csv', async () => {
    const path = file('metadata.csv', long);
    const read = async () => {
      for await (const _ of readCsvRecords(path));
    };
    await expect(read()).rejects.toMatchObject({
      code: 'E_INVALID_ENCODING',
      line: 3,
      message: expect.stringMatching(
        new RegExp(`metadata\\.csv:3: not UTF-8 at byte ${long.length - 2}\\. Save the file as UTF-8`),
      ),
    });
  });

  it.each([
    [
      'train.jsonl',
      Buffer.concat([Buffer.from('{"text":"ok"}\n{"text":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]),
      2,
    ],
    [
      'train.json',
      Buffer.concat([
        Buffer.from('[{"text":"ok"},\n{"text":"caf'),
        Buffer.from([0xe9]),
        Buffer.from('"}]\n'),
      ]),
      2,
    ],
  ])('%s', async (name, bytes, line) => {
    const path = file(name, bytes);
    const read = async () => {
      for await (const _ of readTextRecords(path));
    };
    await expect(read()).rejects.toMatchObject({
      code: 'E_INVALID_ENCODING',
      message: expect.stringMatching(new RegExp(`${name.replace('.', '\\.')}:${line}: not UTF-8 at byte`)),
    });
  });
});
