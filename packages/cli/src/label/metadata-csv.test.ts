import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readMetadataCsv } from '@lora/dataset';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test-fixtures.ts';
import { csvField, metadataCsv, writeFileAtomic } from './metadata-csv.ts';

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

describe('metadataCsv', () => {
  it('reads back through @lora/dataset with every caption intact', async () => {
    const rows: [string, string][] = [
      ['a.png', '**neon city**, high quality, detailed'],
      ['sub dir/b "2".png', 'say "hi", *moody*'],
      ['c.png', 'line one\nline two'],
      ['d.png', ''],
    ];
    const path = join(tempDir(), 'metadata.csv');
    await writeFileAtomic(path, metadataCsv(rows));
    const { captions, problems } = await readMetadataCsv(path);
    expect(problems).toEqual([]);
    expect([...captions].map(([file, entry]) => [file, entry.caption])).toEqual(rows);
    expect(readFileSync(path, 'utf8').split('\n')[0]).toBe('file_name,text');
  });

  it('replaces an existing file whole', async () => {
    const path = join(tempDir(), 'metadata.csv');
    writeFileSync(path, 'old content that is longer than the new one\n');
    await writeFileAtomic(path, 'new\n');
    expect(readFileSync(path, 'utf8')).toBe('new\n');
  });
});
