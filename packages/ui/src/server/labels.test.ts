import { join } from 'node:path';
import { writeTinyTagger } from '@lora/label';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeProject, post, serve } from '../test-fixtures.ts';
import type { UiServer } from './start.ts';

// Tag suggestions through the built CLI (`lora label --input <image>`), with a tiny generated
// tagger that has a WD14 export's input and output (see @lora/label's writeTinyTagger).

let server: UiServer;
let root: string;
const TAGGER = { model: 'wd14', modelPath: 'models/wd14/model.onnx', tags: 'models/wd14/selected_tags.csv' };
const IMAGE = 'data/style_train/10_neon/a.png';

beforeAll(async () => {
  root = await makeProject();
  await writeTinyTagger(join(root, 'models', 'wd14'));
  server = await serve(root);
});
afterAll(() => server?.close());

const suggest = async (body: Record<string, unknown>) => {
  const answer = await post(server, 'api/suggest', body);
  return { status: answer.status, body: JSON.parse(answer.body) };
};

describe('tag suggestions', { timeout: 60_000 }, () => {
  it("lists the tagger's tags for one image, best first, with their roles and scores", async () => {
    const { status, body } = await suggest({ image: IMAGE, ...TAGGER });
    expect(status).toBe(200);
    expect(body.image).toBe(IMAGE);
    const tags = body.tags as { text: string; role: string; score: number }[];
    expect(tags.length).toBeGreaterThan(1);
    for (const [i, tag] of tags.entries()) {
      expect(['core', 'mood', 'plain']).toContain(tag.role);
      expect(tag.score).toBeGreaterThan(0.35); // the tagger's default threshold
      if (i > 0) expect(tag.score).toBeLessThanOrEqual(tags[i - 1]!.score);
    }
    // Every kind of the tiny tagger's answer for this dark blue image shows: a theme and ^_^.
    expect(tags.map((tag) => tag.text)).toEqual(expect.arrayContaining(['blue theme', '^_^']));
  });

  it('runs the model on the device asked for, and refuses one lora label does not have', async () => {
    expect(await suggest({ image: IMAGE, ...TAGGER, device: 'cpu' })).toMatchObject({ status: 200 });
    // Where onnxruntime-node's CUDA provider is not installed (CI: its install script never runs),
    // lora label says so: the device reached it.
    const cuda = await suggest({ image: IMAGE, ...TAGGER, device: 'cuda' });
    if (cuda.status !== 200) {
      expect(cuda.body.error.message).toMatch(/^device 'cuda' was asked for, .*\[E_DEVICE_UNAVAILABLE\]$/s);
    }
    expect(await suggest({ image: IMAGE, ...TAGGER, device: 'tpu' })).toMatchObject({
      status: 400,
      body: { error: { code: 'E_BAD_REQUEST', message: '"device" must be one of auto, cpu, cuda, webgpu.' } },
    });
  });

  it('refuses the names-only labeller, a path out of the project and a missing model, saying why', async () => {
    expect(await suggest({ image: IMAGE, model: 'none' })).toMatchObject({
      status: 400,
      body: { error: { code: 'E_BAD_REQUEST', message: expect.stringMatching(/choose wd14 or clip/) } },
    });
    expect(await suggest({ image: 'data/style_train/10_neon', ...TAGGER })).toMatchObject({
      status: 400,
      body: { error: { code: 'E_BAD_REQUEST', message: 'data/style_train/10_neon is not an image.' } },
    });
    expect(await suggest({ image: '../outside.png', ...TAGGER })).toMatchObject({
      body: { error: { code: 'E_PATH_OUTSIDE' } },
    });
    expect(await suggest({ image: IMAGE, ...TAGGER, modelPath: 'models/wd14/missing.onnx' })).toMatchObject({
      status: 422,
      body: {
        error: {
          code: 'E_LABEL_FAILED',
          message: expect.stringMatching(
            /missing\.onnx not found; check the path\. \[E_LABEL_FILE_NOT_FOUND\]$/,
          ),
        },
      },
    });
  });
});
