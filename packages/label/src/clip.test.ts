import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TextTokenizer } from '@lora/dataset';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIP_CONTEXT_LENGTH, ClipRanker, clipInputIds, type RankedImage } from './clip.ts';
import { isLabelFailure } from './common.ts';
import { writeBmp } from './test-images.ts';
import { writeTinyClip, writeTinyTagger } from './tiny-models.ts';
import { CLIP_VOCABULARY } from './vocabulary.ts';

let dir: string;
let folder: string;
let ranker: ClipRanker;
let images: Record<'red' | 'blue' | 'white', string>;

/** 102 tokens with the start and end markers: more than CLIP's 77. */
const LONG = `a${' red'.repeat(100)}`;
const vocabulary = {
  lighting: ['warm light', 'cool light', 'bright daylight', 'dim lighting'],
  colour: ['red', 'green', 'blue', LONG],
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clip-'));
  folder = await writeTinyClip(join(dir, 'clip'));
  images = {
    red: await writeBmp(join(dir, 'red.bmp'), [255, 0, 0], 30, 10),
    blue: await writeBmp(join(dir, 'blue.bmp'), [0, 0, 255]),
    white: await writeBmp(join(dir, 'white.bmp'), [255, 255, 255]),
  };
  ranker = await ClipRanker.load(folder, { device: 'cpu', threads: 1, batchSize: 2 });
});
afterAll(() => ranker.dispose());

const best = (image: RankedImage, category: string) =>
  image.categories[category]!.map((entry) => entry.phrase);

describe('ClipRanker', () => {
  it('ranks each category by cosine similarity, top-k, in image order', async () => {
    const progress: number[] = [];
    const results = await ranker.rank([images.red, images.blue, images.white], vocabulary, {
      topK: 2,
      onProgress: (done) => progress.push(done),
    });
    expect(progress).toEqual([2, 3]);
    const [red, blue, white] = results as [RankedImage, RankedImage, RankedImage];
    expect(red.path).toBe(images.red);
    expect(best(red, 'lighting')[0]).toBe('warm light');
    expect(best(red, 'colour').sort()).toEqual([LONG, 'red']);
    expect(best(blue, 'lighting')[0]).toBe('cool light');
    expect(best(blue, 'colour')[0]).toBe('blue');
    expect(best(white, 'lighting')[0]).toBe('bright daylight');
    for (const image of [red, blue, white]) {
      for (const list of Object.values(image.categories)) {
        expect(list).toHaveLength(2);
        expect(list[0]!.score).toBeGreaterThanOrEqual(list[1]!.score);
        for (const { score } of list) expect(Math.abs(score)).toBeLessThanOrEqual(1 + 1e-6);
      }
    }
    expect(red.categories['lighting']![0]!.score).toBeGreaterThan(0.7);
  });

  it('pads token ids to 77 with the pad id and cuts long phrases keeping the end marker', async () => {
    const tokenizer = await TextTokenizer.fromDir(folder);
    const { ids, mask } = clipInputIds(tokenizer, ['Red light', LONG]);
    const row = (data: BigInt64Array, i: number) =>
      Array.from(data.subarray(i * CLIP_CONTEXT_LENGTH, (i + 1) * CLIP_CONTEXT_LENGTH), Number);
    const [start, end, unk, red] = ['<|startoftext|>', '<|endoftext|>', '<unk>', 'red'].map(
      (t) => tokenizer.encode(t, false)[0],
    );
    expect(row(ids, 0).slice(0, 5)).toEqual([start, red, unk, end, tokenizer.padId]);
    expect(row(mask, 0).slice(0, 5)).toEqual([1, 1, 1, 1, 0]);
    expect(row(ids, 1)).toHaveLength(CLIP_CONTEXT_LENGTH);
    expect(row(ids, 1).at(-1)).toBe(end);
    expect(row(ids, 1).at(-2)).toBe(red);
    expect(row(mask, 1).every((m) => m === 1)).toBe(true);
  });

  it('ranks the bundled vocabulary and reports unreadable images', async () => {
    const broken = join(dir, 'broken.png');
    await writeFile(broken, 'nope');
    const [bad, white] = await ranker.rank([broken, images.white], CLIP_VOCABULARY);
    expect(isLabelFailure(bad!)).toBe(true);
    expect(Object.keys((white as RankedImage).categories)).toEqual(['style', 'medium', 'lighting', 'mood']);
    expect(best(white as RankedImage, 'lighting')[0]).toBe('bright daylight');
    expect(best(white as RankedImage, 'mood')[0]).toBe('vibrant');
  });

  it("takes the image mean and std from the export's preprocessor_config.json", async () => {
    const custom = await writeTinyClip(join(dir, 'custom'));
    await writeFile(
      join(custom, 'preprocessor_config.json'),
      JSON.stringify({ crop_size: { height: 224, width: 224 }, image_mean: [0, 0, 0], image_std: [1, 1, 1] }),
    );
    const other = await ClipRanker.load(custom, { device: 'cpu' });
    const phrases = { lighting: ['bright daylight'] };
    const [plain] = (await ranker.rank([images.red], phrases)) as [RankedImage];
    const [raw] = (await other.rank([images.red], phrases)) as [RankedImage];
    await other.dispose();
    // CLIP's mean makes pure red darker than average; unnormalised 0–1 values make it brighter.
    expect(plain.categories['lighting']![0]!.score).toBeLessThan(0);
    expect(raw.categories['lighting']![0]!.score).toBeGreaterThan(0);
  });

  it('explains a preprocessor_config.json that is not JSON', async () => {
    const broken = await writeTinyClip(join(dir, 'broken-config'));
    await writeFile(join(broken, 'preprocessor_config.json'), '{ "crop_size": ');
    await expect(ClipRanker.load(broken, { device: 'cpu' })).rejects.toMatchObject({
      code: 'E_LABEL_OPTIONS_INVALID',
      message: expect.stringMatching(/preprocessor_config\.json is not valid JSON/),
    });
  });

  it('explains a folder whose files are not CLIP encoders', async () => {
    const wrong = await writeTinyClip(join(dir, 'wrong'));
    const { modelPath } = await writeTinyTagger(join(dir, 'tagger'));
    await rm(join(wrong, 'vision_model.onnx'));
    await rename(modelPath, join(wrong, 'vision_model.onnx'));
    await expect(ClipRanker.load(wrong, { device: 'cpu' })).rejects.toMatchObject({
      code: 'E_LABEL_MODEL_MISMATCH',
      message: expect.stringMatching(/has inputs \[input\].*needs pixel_values in and image_embeds out/),
    });
  });

  it.each([
    ['vision_model.onnx', 'E_LABEL_FILE_NOT_FOUND', /no CLIP vision encoder/],
    ['text_model.onnx', 'E_LABEL_FILE_NOT_FOUND', /no CLIP text encoder/],
    ['tokenizer.json', 'E_NOT_FOUND', /tokenizer\.json/],
  ])('explains a folder without %s', async (file, code, message) => {
    const partial = await writeTinyClip(join(dir, `without-${file}`));
    await rm(join(partial, file));
    await expect(ClipRanker.load(partial, { device: 'cpu' })).rejects.toMatchObject({
      code,
      message: expect.stringMatching(message),
    });
  });

  it.each([
    [{ topK: 0 }, {}, 'E_LABEL_OPTIONS_INVALID'],
    [{}, { empty: [] }, 'E_LABEL_VOCABULARY_INVALID'],
  ])('rejects rank options %j with vocabulary %j', async (options, phrases, code) => {
    await expect(ranker.rank([images.red], phrases, options)).rejects.toMatchObject({ code });
  });
});
