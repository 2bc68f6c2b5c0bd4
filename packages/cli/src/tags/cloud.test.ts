import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test-fixtures.ts';
import { type CloudTag, fontSize, tagCloudSvg, textWidth, writeTagCloud } from './cloud.ts';

const tags: CloudTag[] = [
  { tag: 'neon city', count: 40, role: 'core' },
  { tag: 'rain', count: 10, role: 'plain' },
  { tag: 'moody <dark> & "wet"', count: 5, role: 'mood' },
];

describe('tagCloudSvg', () => {
  it('draws core bold, mood italic, escapes text and sizes by frequency', () => {
    const svg = tagCloudSvg(tags);
    const text = (tag: string) => svg.split('\n').find((line) => line.includes(`</title>${tag}</text>`))!;
    expect(text('neon city')).toContain('font-weight="bold"');
    expect(text('neon city')).toContain(`font-size="${fontSize(40, 40)}"`);
    expect(text('moody &lt;dark&gt; &amp; &quot;wet&quot;')).toContain('font-style="italic"');
    expect(text('rain')).not.toMatch(/font-weight|font-style/);
    expect(fontSize(40, 40)).toBeGreaterThan(fontSize(10, 40));
  });

  it.each([
    [1, 40, 22],
    [40, 40, 64],
    [10, 40, 39],
  ])('fontSize(%i of %i) = %i', (count, max, size) => expect(fontSize(count, max)).toBe(size));

  it.each([
    ['mmm', 'iii', false],
    ['ABC', 'abc', false],
    ['abc', 'abc', true],
  ])('estimates %s wider than %s (bold: %s on the first)', (wide, narrow, bold) => {
    expect(textWidth(wide, 20, bold)).toBeGreaterThan(textWidth(narrow, 20, false));
  });

  it('estimates in proportion to the font size', () => {
    expect(textWidth('neon city', 40, false)).toBeCloseTo(2 * textWidth('neon city', 20, false), 9);
  });

  it('wraps many tags onto more rows, so the picture grows', () => {
    const many = Array.from({ length: 60 }, (_, i) => ({
      tag: `tag number ${i}`,
      count: 60 - i,
      role: 'plain' as const,
    }));
    const height = (svg: string) => Number(/height="(\d+)"/.exec(svg)![1]);
    expect(height(tagCloudSvg(many))).toBeGreaterThan(height(tagCloudSvg(tags)));
  });
});

describe('writeTagCloud', () => {
  it('writes an SVG and a PNG that sharp reads, and both change with the data', async () => {
    const dir = tempDir();
    await writeTagCloud(tags, { svg: join(dir, 'a.svg'), png: join(dir, 'a.png') });
    await writeTagCloud(
      tags.map((tag) => ({ ...tag, count: 50 - tag.count })),
      { svg: join(dir, 'b.svg'), png: join(dir, 'b.png') },
    );
    expect(await sharp(join(dir, 'a.png')).metadata()).toMatchObject({ format: 'png', width: 800 });
    expect(readFileSync(join(dir, 'a.svg'), 'utf8')).not.toBe(readFileSync(join(dir, 'b.svg'), 'utf8'));
    expect(readFileSync(join(dir, 'a.png')).equals(readFileSync(join(dir, 'b.png')))).toBe(false);
    // Not a blank page: the text put dark pixels on the white background.
    const stats = await sharp(join(dir, 'a.png')).stats();
    expect(stats.channels[0]!.min).toBeLessThan(128);
  });
});
