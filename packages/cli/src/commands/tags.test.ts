import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { tempDir, writeImage } from '../test-fixtures.ts';
import { formatTags, mainRole, tagRows, tagStats, tags } from './tags.ts';

describe('tagStats', () => {
  it('counts tags by role from a metadata.csv', async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'metadata.csv'),
      'file_name,text\na.png,"**Neon City**, rain, *moody*"\nb.png,"**neon city**, *rain*"\nc.png,"rain, night"\n',
    );
    const report = await tagStats(join(dir, 'metadata.csv'));
    expect(report.captions).toBe(3);
    expect(report.tags).toEqual([
      { tag: 'rain', count: 3, core: 0, mood: 1, plain: 2 },
      { tag: 'neon city', count: 2, core: 2, mood: 0, plain: 0 },
      { tag: 'moody', count: 1, core: 0, mood: 1, plain: 0 },
      { tag: 'night', count: 1, core: 0, mood: 0, plain: 1 },
    ]);
    const text = formatTags(report, 2);
    expect(text).toContain('core (bold):    2 uses of 1 tags');
    expect(text).toContain('mood (italic):  2 uses of 2 tags');
    expect(text).toContain('top 2 tags:');
    expect(text).not.toContain('night');
  });

  it('reads captions of a folder (sidecar files), per dataset folder', async () => {
    const dir = tempDir();
    await writeImage(join(dir, '5_cats', 'a.png'), '#fff');
    writeFileSync(join(dir, '5_cats', 'a.txt'), '**cat**, sofa');
    await writeImage(join(dir, '3_dogs', 'b.png'), '#000');
    writeFileSync(join(dir, '3_dogs', 'b.txt'), 'sofa');
    const report = await tagStats(dir);
    expect(Object.keys(report.datasets).sort()).toEqual(['3_dogs', '5_cats']);
    expect(report.tags[0]).toEqual({ tag: 'sofa', count: 2, core: 0, mood: 0, plain: 2 });
  });
});

describe('tagRows and mainRole', () => {
  it('sums folders and breaks count ties by name', () => {
    const rows = tagRows({
      a: { counts: { b: 1, a: 1 }, byRole: { core: { b: 1 }, mood: {}, plain: { a: 1 } } },
      c: { counts: { a: 1 }, byRole: { core: {}, mood: { a: 1 }, plain: {} } },
    });
    expect(rows).toEqual([
      { tag: 'a', count: 2, core: 0, mood: 1, plain: 1 },
      { tag: 'b', count: 1, core: 1, mood: 0, plain: 0 },
    ]);
  });

  it.each([
    [{ core: 1, mood: 1, plain: 1 }, 'core'],
    [{ core: 0, mood: 2, plain: 2 }, 'mood'],
    [{ core: 1, mood: 0, plain: 3 }, 'plain'],
  ] as const)('%j → %s', (counts, role) => expect(mainRole({ tag: 't', count: 3, ...counts })).toBe(role));
});

describe('lora tags --svg --png', () => {
  afterEach(() => vi.restoreAllMocks());

  it('says where it wrote the keyword cloud', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'metadata.csv'), 'file_name,text\na.png,"**neon**, rain"\n');
    const out: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out.push(String(chunk));
      return true;
    });
    const [svg, png] = [join(dir, 'cloud.svg'), join(dir, 'cloud.png')];
    expect(await tags(join(dir, 'metadata.csv'), { svg, png })).toBe(0);
    expect(out.join('')).toMatch(/^keyword cloud: .*cloud\.svg, .*cloud\.png$/m);
    expect(existsSync(svg) && existsSync(png)).toBe(true);
  });
});
