import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readMetadataCsv } from '@lora/dataset';
import { describe, expect, it } from 'vitest';
import { tempDir, writeImage } from '../test-fixtures.ts';
import { formatLabelReport, type LabelOptions, labelImages } from './label.ts';

async function dataset(): Promise<string> {
  const dir = tempDir();
  await writeImage(join(dir, '10_neon city', 'rainy_street.png'), '#f00');
  await writeImage(join(dir, '10_neon city', 'nightMarket.png'), '#0f0');
  await writeImage(join(dir, 'IMG_0001.png'), '#00f');
  return dir;
}

const csvCaptions = async (path: string) =>
  Object.fromEntries(
    [...(await readMetadataCsv(path)).captions].map(([file, entry]) => [file, entry.caption]),
  );

describe('labelImages --model none', () => {
  it('writes metadata.csv from the names through the template, and skips images with no words', async () => {
    const dir = await dataset();
    const report = await labelImages({ input: dir, template: '{caption}, photo' });
    expect(report.skipped).toEqual([
      { image: join(dir, 'IMG_0001.png'), reason: expect.stringContaining('no words') },
    ]);
    expect(await csvCaptions(join(dir, 'metadata.csv'))).toEqual({
      '10_neon city/nightMarket.png': 'night market, neon city, photo',
      '10_neon city/rainy_street.png': 'rainy street, neon city, photo',
    });
    expect(formatLabelReport(report)).toMatch(
      /^wrote 2 captions to .*metadata\.csv \(0 existing kept, 0 replaced, 1 skipped\)/,
    );
  });

  it('--dry-run lists the captions it would write and writes nothing', async () => {
    const dir = await dataset();
    writeFileSync(join(dir, 'metadata.csv'), 'file_name,text\n10_neon city/rainy_street.png,hand written\n');
    const report = await labelImages({ input: dir, dryRun: true, overwrite: true });
    expect(report).toMatchObject({ dryRun: true, replaced: 1 });
    expect(report.written.map((w) => w.caption)).toEqual([
      '**night market**, **neon city**, high quality, detailed',
      '**rainy street**, **neon city**, high quality, detailed',
    ]);
    expect(readFileSync(join(dir, 'metadata.csv'), 'utf8')).toBe(
      'file_name,text\n10_neon city/rainy_street.png,hand written\n',
    );
    expect(formatLabelReport(report)).toMatch(
      /^would write 2 captions to .*; --dry-run: nothing was written$/m,
    );
  });

  it('keeps existing captions (metadata.csv rows and .txt files) unless --overwrite', async () => {
    const dir = await dataset();
    writeFileSync(
      join(dir, 'metadata.csv'),
      'file_name,text\n10_neon city/rainy_street.png,hand written\nelsewhere.png,keep me\n',
    );
    writeFileSync(join(dir, '10_neon city', 'nightMarket.txt'), 'from a sidecar\n');

    const kept = await labelImages({ input: dir });
    expect(kept).toMatchObject({ kept: 2, replaced: 0, written: [] });
    expect(await csvCaptions(join(dir, 'metadata.csv'))).toEqual({
      '10_neon city/rainy_street.png': 'hand written',
      'elsewhere.png': 'keep me',
    });

    const replaced = await labelImages({ input: dir, overwrite: true });
    expect(replaced).toMatchObject({ kept: 0, replaced: 2 });
    expect(await csvCaptions(join(dir, 'metadata.csv'))).toEqual({
      '10_neon city/rainy_street.png': '**rainy street**, **neon city**, high quality, detailed',
      // Rows for files that are not there are the user's; they stay.
      'elsewhere.png': 'keep me',
      '10_neon city/nightMarket.png': '**night market**, **neon city**, high quality, detailed',
    });
  });

  it('writes .txt files beside the images with --format txt, never over existing ones', async () => {
    const dir = await dataset();
    writeFileSync(join(dir, '10_neon city', 'nightMarket.txt'), 'mine\n');
    const report = await labelImages({ input: dir, format: 'txt', template: '{caption}' });
    expect(report).toMatchObject({
      format: 'txt',
      kept: 1,
      written: [{ caption: 'rainy street, neon city' }],
    });
    expect(readFileSync(join(dir, '10_neon city', 'rainy_street.txt'), 'utf8')).toBe(
      'rainy street, neon city\n',
    );
    expect(readFileSync(join(dir, '10_neon city', 'nightMarket.txt'), 'utf8')).toBe('mine\n');
  });

  it('--format txt writes .txt files for images that metadata.csv captions, and says the CSV wins', async () => {
    const dir = await dataset();
    writeFileSync(join(dir, 'metadata.csv'), 'file_name,text\n10_neon city/rainy_street.png,from the csv\n');
    const report = await labelImages({ input: dir, format: 'txt', template: '{caption}' });
    expect(report).toMatchObject({ kept: 0, inMetadata: 1 });
    expect(readFileSync(join(dir, '10_neon city', 'rainy_street.txt'), 'utf8')).toBe(
      'rainy street, neon city\n',
    );
    expect(readFileSync(join(dir, '10_neon city', 'nightMarket.txt'), 'utf8')).toBe(
      'night market, neon city\n',
    );
    expect(formatLabelReport(report)).toContain(
      'note: 1 of these images has a caption in metadata.csv too, which training reads before .txt files',
    );
    // The CSV is the user's: untouched.
    expect(await csvCaptions(join(dir, 'metadata.csv'))).toEqual({
      '10_neon city/rainy_street.png': 'from the csv',
    });
  });

  it('writes the CSV elsewhere with paths relative to it', async () => {
    const dir = await dataset();
    const output = join(tempDir(), 'captions.csv');
    await labelImages({ input: dir, output });
    const { captions } = await readMetadataCsv(output);
    expect([...captions.keys()].every((file) => file.startsWith('../'))).toBe(true);
  });

  it('keeps the other columns of a metadata.csv it rewrites', async () => {
    const dir = await dataset();
    writeFileSync(
      join(dir, 'metadata.csv'),
      'file_name,text,score\n10_neon city/rainy_street.png,,0.9\nelsewhere.png,keep me,0.5\n',
    );
    const report = await labelImages({ input: dir, template: '{caption}' });
    expect(report.written).toHaveLength(2);
    const { captions, extraColumns } = await readMetadataCsv(join(dir, 'metadata.csv'));
    expect(extraColumns).toEqual(['score']);
    expect(captions.get('10_neon city/rainy_street.png')).toMatchObject({
      caption: 'rainy street, neon city',
      extra: { score: '0.9' },
    });
    expect(captions.get('elsewhere.png')).toMatchObject({ caption: 'keep me', extra: { score: '0.5' } });
    expect(captions.get('10_neon city/nightMarket.png')?.extra).toEqual({ score: '' });
  });

  it.each<[LabelOptions, RegExp]>([
    [{ model: 'blip' }, /--model must be none or wd14 or clip \(got "blip"\)/],
    [{ model: 'wd14', modelPath: 'm.onnx' }, /--model wd14 needs .*--tags <selected_tags\.csv>/],
    [{ model: 'clip' }, /--model clip needs --model-path <folder>/],
    [{ model: 'clip', modelPath: 'x', tags: 't.csv' }, /--tags only applies to --model wd14/],
    [{ model: 'wd14', modelPath: 'x', tags: 't', topK: 2 }, /--top-k only applies to --model clip/],
    [{ modelPath: 'x' }, /--model-path needs --model wd14 or --model clip/],
    [{ device: 'webgpu' }, /--device needs --model wd14 or --model clip/],
    [
      { model: 'wd14', modelPath: 'x', tags: 't', device: 'gpu' },
      /--device must be auto or cpu or cuda or webgpu \(got "gpu"\); .*lora doctor/,
    ],
    [
      { model: 'wd14', modelPath: 'x', tags: 't', threshold: '1.5' },
      /--threshold must be a number from 0 to 1/,
    ],
    [{ model: 'clip', modelPath: 'x', topK: 0.5 }, /--top-k must be a whole number from 1 to 100/],
    [{ format: 'json' }, /--format must be csv or txt \(got "json"\)/],
    [{ template: 'no placeholder' }, /has no \{caption\}/],
  ])('rejects %j', async (options, message) => {
    const dir = await dataset();
    await expect(labelImages({ input: dir, ...options })).rejects.toMatchObject({
      code: 'E_USAGE',
      message: expect.stringMatching(message),
    });
  });
});
