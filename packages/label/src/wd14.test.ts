import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLabelFailure } from './common.ts';
import { writeBmp } from './test-images.ts';
import { writeTinyClip, writeTinyTagger } from './tiny-models.ts';
import { type TaggedImage, Wd14Tagger } from './wd14.ts';

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

let dir: string;
let model: { modelPath: string; tagsPath: string };
let images: Record<'red' | 'cyan' | 'black' | 'broken', string>;
let tagger: Wd14Tagger;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wd14-'));
  model = await writeTinyTagger(join(dir, 'tagger'));
  images = {
    red: await writeBmp(join(dir, 'red.bmp'), [255, 0, 0]),
    cyan: await writeBmp(join(dir, 'cyan.bmp'), [0, 255, 255], 12, 6),
    black: await writeBmp(join(dir, 'black.bmp'), [0, 0, 0]),
    broken: join(dir, 'broken.png'),
  };
  await writeFile(images.broken, 'not an image');
  tagger = await Wd14Tagger.load(model.modelPath, model.tagsPath, {
    device: 'cpu',
    threads: 1,
    batchSize: 2,
  });
});
afterAll(() => tagger.dispose());

const summary = (result: TaggedImage) => result.tags.map((tag) => [tag.text, tag.category]);

describe('Wd14Tagger', () => {
  it('tags BGR input by confidence, with the rating apart and failures in place', async () => {
    const progress: [number, number][] = [];
    const results = await tagger.tag([images.red, images.broken, images.cyan, images.black], (done, total) =>
      progress.push([done, total]),
    );
    expect(progress).toEqual([
      [2, 4],
      [4, 4],
    ]);
    expect(results.map((r) => r.path)).toEqual([images.red, images.broken, images.cyan, images.black]);
    const [red, broken, cyan, black] = results as [TaggedImage, TaggedImage, TaggedImage, TaggedImage];
    expect(isLabelFailure(broken)).toBe(true);
    expect(broken).toMatchObject({ error: expect.stringContaining(images.broken) });
    // Red: the model sees B=0, G=0, R=1, so only red_theme fires; fed RGB it would be blue_theme.
    expect(summary(red)).toEqual([
      ['red theme', 'general'],
      ['^_^', 'general'],
      ['long hair', 'general'],
    ]);
    expect(red.tags[0]).toMatchObject({ tag: 'red_theme' });
    expect(red.tags[0]!.confidence).toBeCloseTo(sigmoid(6), 5);
    expect(red.rating).toMatchObject({ text: 'general', category: 'rating' });
    expect(red.rating!.confidence).toBeCloseTo(sigmoid(2), 5);
    // Cyan, padded with white to a square: the character passes 0.85.
    expect(summary(cyan)[0]).toEqual(['hatsune miku (vocaloid)', 'character']);
    expect(summary(cyan)).toContainEqual(['blue theme', 'general']);
    expect(summary(black)[0]).toEqual(['night', 'general']);
  });

  it.each([
    [{ characterThreshold: 0.9999 }, 'hatsune miku (vocaloid)'],
    [{ generalThreshold: 0.45 }, 'long hair'],
  ])('applies %j', async (thresholds, dropped) => {
    const strict = await Wd14Tagger.load(model.modelPath, model.tagsPath, { device: 'cpu', ...thresholds });
    const [cyan] = (await strict.tag([images.cyan])) as [TaggedImage];
    await strict.dispose();
    expect(cyan.tags.map((tag) => tag.text)).not.toContain(dropped);
    expect(cyan.tags.length).toBeGreaterThan(0);
  });

  it.each(['vision_model.onnx', 'text_model.onnx'])('explains that CLIP %s is not a tagger', async (file) => {
    const clip = await writeTinyClip(join(dir, `clip-${file}`));
    const wrong = await Wd14Tagger.load(join(clip, file), model.tagsPath, { device: 'cpu' });
    await expect(wrong.tag([images.red])).rejects.toMatchObject({
      code: 'E_LABEL_MODEL_MISMATCH',
      message: expect.stringMatching(/does not take a float32 \[N, 448, 448, 3\] image batch/),
    });
    await wrong.dispose();
  });

  it('explains a tag list from another model', async () => {
    const short = join(dir, 'short.csv');
    await writeFile(short, 'tag_id,name,category,count\n0,general,9,1\n1,a,0,1\n');
    const wrong = await Wd14Tagger.load(model.modelPath, short, { device: 'cpu' });
    await expect(wrong.tag([images.red])).rejects.toMatchObject({
      code: 'E_LABEL_TAGS_INVALID',
      message: expect.stringMatching(/scores 13 tags but the tag list has 2/),
    });
    await wrong.dispose();
  });

  it.each([
    ['a missing model', () => [join(dir, 'nope.onnx'), model.tagsPath], {}, 'E_LABEL_FILE_NOT_FOUND'],
    ['a folder as the model', () => [dir, model.tagsPath], {}, 'E_LABEL_FILE_NOT_FOUND'],
    [
      'a threshold above 1',
      () => [model.modelPath, model.tagsPath],
      { generalThreshold: 35 },
      'E_LABEL_OPTIONS_INVALID',
    ],
    ['batch size 0', () => [model.modelPath, model.tagsPath], { batchSize: 0 }, 'E_LABEL_OPTIONS_INVALID'],
  ])('rejects %s', async (_name, paths, options, code) => {
    const [modelPath, tagsPath] = paths() as [string, string];
    await expect(Wd14Tagger.load(modelPath, tagsPath, options)).rejects.toMatchObject({ code });
  });
});
