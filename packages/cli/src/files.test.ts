import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeAtomically, writeTextAtomically } from './files.ts';

describe('atomic writes', () => {
  it("replace the file whole and never touch a file of the user's named like a temporary one", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'files-'));
    const path = join(dir, 'metadata.csv');
    writeFileSync(`${path}.tmp`, 'the user’s own notes');
    writeTextAtomically(path, 'a\n');
    await writeAtomically(path, (temporary) => writeFileSync(temporary, 'b\n'));
    expect(readFileSync(path, 'utf8')).toBe('b\n');
    await expect(
      writeAtomically(path, (temporary) => {
        writeFileSync(temporary, 'half');
        throw new Error('the writer failed');
      }),
    ).rejects.toThrow('the writer failed');
    expect(readFileSync(path, 'utf8')).toBe('b\n');
    expect(readFileSync(`${path}.tmp`, 'utf8')).toBe('the user’s own notes');
    expect(readdirSync(dir).sort()).toEqual(['metadata.csv', 'metadata.csv.tmp']);
  });
});
