import { copyFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkDataset, type DatasetReport } from './check.ts';
import type { Finding } from './findings.ts';
import { MAX_CAPTION_BYTES, scanImageFolders } from './scan.ts';
import { bmpBytes, tempDir, writeImage, writeText } from './test-fixtures.ts';

let root: string;
let report: DatasetReport;

const at = (path: string) => join(root, path);
const findingsFor = (path: string): Finding[] => report.findings.filter((f) => f.path === at(path));
const codes = (path: string) => findingsFor(path).map((f) => f.code);

beforeAll(async () => {
  root = join(await tempDir(), 'data');
  await writeImage(at('10_style/a.png'), { width: 640, height: 512, seed: 1 });
  await writeText(at('10_style/a.txt'), 'a red fox, forest\n');
  await writeImage(at('10_style/rotated.jpg'), {
    width: 640,
    height: 560,
    format: 'jpeg',
    orientation: 6,
    seed: 2,
  });
  await writeText(at('10_style/rotated.txt'), 'first line\nsecond line\n');
  await writeImage(at('10_style/alpha.png'), { width: 600, height: 600, alpha: true, seed: 3 });
  await writeText(at('10_style/alpha.txt'), '');
  await writeText(at('10_style/corrupt.png'), 'not a png at all');
  await writeText(at('10_style/corrupt.txt'), 'never used');
  await writeText(at('10_style/lonely.txt'), 'no image for me');
  await writeText(at('10_style/bitmap.bmp'), bmpBytes(520, 520, 4));
  await writeImage(at('10_style/nested/deep.webp'), { width: 512, height: 512, format: 'webp', seed: 5 });
  await writeImage(at('2_other/x.png'), { width: 256, height: 256, seed: 6 });
  await copyFile(at('2_other/x.png'), at('2_other/x-copy.png'));
  await writeText(
    at('2_other/metadata.csv'),
    'file_name,text\nx.png,"small, square"\nx-copy.png,copy\nmissing.png,nothing here\n',
  );
  await writeImage(at('10_style/lint.png'), { width: 512, height: 512, seed: 8 });
  await writeText(at('10_style/lint.txt'), 'night, (neon city, rain');
  await writeImage(at('loose.gif'), { width: 512, height: 512, format: 'gif', seed: 7 });
  report = await checkDataset({
    dirs: [root],
    resolution: 512,
    concurrency: 2,
    onProgress: (decoded, total) => progress.push([decoded, total]),
  });
});
const progress: [number, number][] = [];

describe('scanImageFolders', () => {
  it('finds images recursively with kohya repeats, dataset names and captions', async () => {
    const { images } = await scanImageFolders({ dirs: [root] });
    const summary = images.map((image) => [
      image.path.slice(root.length + 1),
      image.dataset,
      image.repeats,
      image.caption,
    ]);
    expect(summary).toEqual([
      ['10_style/a.png', '10_style', 10, 'a red fox, forest'],
      ['10_style/alpha.png', '10_style', 10, ''],
      ['10_style/bitmap.bmp', '10_style', 10, null],
      ['10_style/corrupt.png', '10_style', 10, 'never used'],
      ['10_style/lint.png', '10_style', 10, 'night, (neon city, rain'],
      ['10_style/nested/deep.webp', '10_style', 10, null],
      ['10_style/rotated.jpg', '10_style', 10, 'first line'],
      ['2_other/x-copy.png', '2_other', 2, 'copy'],
      ['2_other/x.png', '2_other', 2, 'small, square'],
      ['loose.gif', 'data', 1, null],
    ]);
  });

  it('uses another sidecar extension and can ignore captions', async () => {
    await writeText(at('10_style/a.caption'), 'kohya style');
    const kohya = await scanImageFolders({ dirs: [at('10_style')], captionExtension: '.caption' });
    expect(kohya.images.find((i) => i.path === at('10_style/a.png'))?.caption).toBe('kohya style');
    const none = await scanImageFolders({ dirs: [root], captions: 'none' });
    expect(none.images.every((image) => image.caption === null)).toBe(true);
    expect(none.findings.filter((f) => f.code === 'orphan-caption')).toEqual([]);
  });

  it('reads an explicit metadata.csv outside the folder, relative to its own folder', async () => {
    const outside = join(root, '..', 'captions.csv');
    await writeText(outside, 'file_name,caption\ndata/loose.gif,from outside\n');
    const { images } = await scanImageFolders({ dirs: [root], metadataPath: outside, captions: 'metadata' });
    expect(images.find((i) => i.path === at('loose.gif'))).toMatchObject({
      caption: 'from outside',
      captionFrom: 'metadata',
    });
    // captions: 'metadata' ignores sidecar files entirely.
    expect(images.find((i) => i.path === at('10_style/a.png'))?.caption).toBeNull();
  });

  it('reports an oversized caption file and uses the image without it', async () => {
    const dir = join(await tempDir(), '3_big');
    await writeImage(join(dir, 'a.png'), { width: 8, height: 8 });
    await writeText(join(dir, 'a.txt'), 'x'.repeat(MAX_CAPTION_BYTES + 1));
    const { images, findings } = await scanImageFolders({ dirs: [dir] });
    expect(images[0]).toMatchObject({ caption: null, repeats: 3 });
    expect(findings).toEqual([
      expect.objectContaining({
        code: 'unreadable-caption',
        path: join(dir, 'a.txt'),
        reason: expect.stringMatching(/MAX_CAPTION_BYTES/),
      }),
    ]);
  });

  it('refuses a repeat count above MAX_REPEATS before reading anything, naming the folder', async () => {
    const dir = join(await tempDir(), 'src');
    await writeImage(join(dir, '1000000000_big', 'a.png'), { width: 8, height: 8 });
    await expect(scanImageFolders({ dirs: [dir] })).rejects.toMatchObject({
      code: 'E_LIMIT_EXCEEDED',
      message: expect.stringMatching(
        /1000000000_big repeats its images 1000000000 times, above MAX_REPEATS \(10000\)/,
      ),
    });
  });

  it('skips symbolic links that lead out of the dataset folder with an error finding, unless followLinksOutside', async () => {
    const base = await tempDir();
    const outside = join(base, 'photos');
    await writeImage(join(outside, 'b.png'), { width: 8, height: 8 });
    const dir = join(base, '5_style');
    await writeImage(join(dir, 'a.png'), { width: 8, height: 8 });
    await symlink(outside, join(dir, 'more'));
    // A link that stays inside the folder is an ordinary file.
    await symlink(join(dir, 'a.png'), join(dir, 'same.png'));
    const skipped = await scanImageFolders({ dirs: [dir], captions: 'none' });
    expect(skipped.images.map((i) => i.path).sort()).toEqual([join(dir, 'a.png'), join(dir, 'same.png')]);
    expect(skipped.findings.filter((f) => f.code === 'link-outside')).toEqual([
      expect.objectContaining({
        severity: 'error',
        path: join(dir, 'more'),
        reason: expect.stringMatching(
          /symbolic link to .*photos, outside the dataset folder .*skipped\. Set follow_symlinks: true/,
        ),
      }),
    ]);
    const followed = await scanImageFolders({ dirs: [dir], captions: 'none', followLinksOutside: true });
    expect(followed.images.map((i) => i.path).sort()).toEqual([
      join(dir, 'a.png'),
      join(dir, 'more', 'b.png'),
      join(dir, 'same.png'),
    ]);
    expect(followed.findings.filter((f) => f.code === 'link-outside')).toEqual([
      expect.objectContaining({
        severity: 'warning',
        reason: expect.stringMatching(/are used \(follow_symlinks: true\)/),
      }),
    ]);
  });

  it('lists a few findings of each lint kind for a huge caption with thousands of repeated tags, and a count', async () => {
    const dir = join(await tempDir(), 'huge');
    await writeImage(join(dir, 'a.png'), { width: 8, height: 8 });
    await writeText(join(dir, 'a.txt'), Array.from({ length: 3000 }, () => 'cat').join(', '));
    const { findings } = await checkDataset({ dirs: [dir] });
    const lint = findings.filter((f) => f.code === 'caption-lint');
    expect(lint).toHaveLength(4);
    expect(lint.at(-1)!.reason).toBe(
      'duplicate-tag: 2996 more in this caption (2999 in all; the first 3 are listed)',
    );
  });

  it('reports a caption file that is not UTF-8 (Latin-1) with line and byte, and uses the image without it', async () => {
    const dir = join(await tempDir(), '2_latin');
    await writeImage(join(dir, 'a.png'), { width: 8, height: 8 });
    await writeFile(join(dir, 'a.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    const { images, findings } = await scanImageFolders({ dirs: [dir] });
    expect(images[0]).toMatchObject({ caption: null, repeats: 2 });
    expect(findings).toEqual([
      expect.objectContaining({
        code: 'unreadable-caption',
        path: join(dir, 'a.txt'),
        reason: expect.stringMatching(/is not UTF-8 at line 1, byte 3/),
      }),
    ]);
  });

  it.each([
    [{ dirs: [] }, 'E_INVALID_OPTIONS'],
    [{ dirs: ['/definitely/not/here'] }, 'E_NOT_FOUND'],
    [{ dirs: ['.'], captionExtension: 'txt' }, 'E_INVALID_OPTIONS'],
  ])('rejects %j with %s', async (options, code) => {
    await expect(scanImageFolders(options)).rejects.toMatchObject({ code });
  });

  it('fails with NOT_FOUND naming an explicit metadata.csv that does not exist', async () => {
    const missing = join(root, '..', 'no-such-metadata.csv');
    await expect(scanImageFolders({ dirs: [root], metadataPath: missing })).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
      path: missing,
      message: expect.stringContaining(missing),
    });
  });
});

describe('checkDataset', () => {
  it('summarises what is used and skipped', () => {
    expect(report.summary).toMatchObject({
      imagesFound: 10,
      imagesUsed: 9,
      imagesSkipped: 1,
      duplicates: 1,
      uncaptioned: 4, // alpha (empty), bitmap, deep, loose
      samplesPerEpoch: 10 * 6 + 2 * 2 + 1,
      errors: 1,
    });
    expect(report.summary.datasets).toEqual([
      { name: '10_style', repeats: 10, images: 6 },
      { name: '2_other', repeats: 2, images: 2 },
      { name: 'data', repeats: 1, images: 1 },
    ]);
    expect(report.images.map((image) => image.path)).not.toContain(at('10_style/corrupt.png'));
  });

  it('reports its progress after each image it decodes, the corrupt one included', () => {
    expect(progress).toEqual(Array.from({ length: 11 }, (_, i) => [i, 10]));
  });

  it('skips and reports a corrupt image without aborting', () => {
    expect(findingsFor('10_style/corrupt.png')).toEqual([
      expect.objectContaining({
        code: 'unreadable-image',
        severity: 'error',
        reason: expect.stringMatching(/corrupt/),
      }),
    ]);
  });

  it.each([
    ['10_style/lonely.txt', ['orphan-caption']],
    ['10_style/rotated.jpg', ['exif-rotation']],
    ['10_style/rotated.txt', ['multi-line-caption']],
    ['10_style/alpha.png', ['empty-caption']],
    ['10_style/bitmap.bmp', ['missing-caption']],
    // Files are visited in name order, so x-copy.png is the first copy and x.png the duplicate.
    ['2_other/x-copy.png', ['too-small']],
    ['2_other/x.png', ['duplicate-image', 'too-small']],
    ['loose.gif', ['missing-caption']],
    ['10_style/a.png', []],
  ])('%s → %j', (path, expected) => {
    expect(codes(path).sort()).toEqual(expected.sort());
  });

  it('reports caption lint from @lora/caption-markup with a span', () => {
    expect(findingsFor('10_style/lint.png')).toEqual([
      expect.objectContaining({
        code: 'caption-lint',
        severity: 'warning',
        reason: expect.stringMatching(/^unbalanced-bracket: /),
        span: [7, 8],
      }),
    ]);
  });

  it('reports a metadata.csv row whose image is missing, with its line', () => {
    expect(report.findings).toContainEqual(
      expect.objectContaining({ code: 'orphan-caption', path: at('2_other/metadata.csv'), line: 4 }),
    );
  });

  it('records upright sizes, hashes and alpha for each used image', () => {
    const rotated = report.images.find((image) => image.path === at('10_style/rotated.jpg'));
    expect(rotated).toMatchObject({ width: 560, height: 640, orientation: 6 });
    const alpha = report.images.find((image) => image.path === at('10_style/alpha.png'));
    expect(alpha?.hasAlpha).toBe(true);
    const [x, copy] = ['2_other/x.png', '2_other/x-copy.png'].map(
      (p) => report.images.find((image) => image.path === at(p))?.contentHash,
    );
    expect(x).toBe(copy);
  });
});

describe('checkDataset with an AbortSignal', () => {
  let many: string;
  const IMAGES = 24;
  beforeAll(async () => {
    many = join(await tempDir(), 'many');
    for (let i = 0; i < IMAGES; i++)
      await writeImage(join(many, `${String(i).padStart(2, '0')}.png`), { width: 64, height: 64, seed: i });
  });

  it('starts no image after the signal fires, and rejects with E_ABORTED once the decodes in flight end', async () => {
    const controller = new AbortController();
    const progress: number[] = [];
    const checking = checkDataset({
      dirs: [many],
      concurrency: 2,
      signal: controller.signal,
      onProgress: (decoded) => {
        progress.push(decoded);
        if (decoded === 3) controller.abort();
      },
    });
    await expect(checking).rejects.toMatchObject({ code: 'E_ABORTED', name: 'DatasetError' });
    // Aborted after the third image, with one more at most in flight (concurrency 2); none after the rejection.
    const last = progress.at(-1)!;
    expect(last).toBeGreaterThanOrEqual(3);
    expect(last).toBeLessThanOrEqual(4);
    await new Promise((resolve) => setImmediate(resolve));
    expect(progress.at(-1)).toBe(last);
  });

  it('decodes nothing when the signal has fired already, and carries its reason', async () => {
    const progress: number[] = [];
    const reason = new Error('gone');
    const checking = checkDataset({
      dirs: [many],
      signal: AbortSignal.abort(reason),
      onProgress: (decoded) => progress.push(decoded),
    });
    await expect(checking).rejects.toMatchObject({ code: 'E_ABORTED', cause: reason });
    expect(progress).toEqual([]);
  });
});
