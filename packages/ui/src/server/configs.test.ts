import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig } from '@lora/config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeProject, post, serve } from '../test-fixtures.ts';
import type { UiServer } from './start.ts';

let server: UiServer;
let root: string;
beforeAll(async () => {
  root = await makeProject();
  server = await serve(root);
});
afterAll(() => server?.close());

const create = async (body: Record<string, unknown>) => {
  const answer = await post(server, 'api/config/new', body);
  return { status: answer.status, body: JSON.parse(answer.body) };
};

describe('a new config from the page', () => {
  it("writes lora init's template with its paths from the project, training on the dataset picked", async () => {
    const { status, body } = await create({
      path: 'configs/neon_v2.yaml',
      task: 'sd',
      dataset: 'data/style_train/10_neon',
    });
    expect(status).toBe(200);
    const text = await readFile(join(root, 'configs', 'neon_v2.yaml'), 'utf8');
    expect(body.text).toBe(text);
    expect(text).toMatch(/^# yaml-language-server: \$schema=\.\/lora-config\.schema\.json\n/);
    const config = parseConfig(text, join(root, 'configs', 'neon_v2.yaml'));
    expect(config).toMatchObject({
      task: 'sd',
      train_data_dir: join(root, 'data/style_train/10_neon'),
      metadata_path: join(root, 'data/style_train/10_neon/metadata.csv'),
      base_model: join(root, 'models/sd-v1-5-pruned.safetensors'),
    });
    // The schema the first line points to, for editors.
    expect(
      JSON.parse(await readFile(join(root, 'configs', 'lora-config.schema.json'), 'utf8')),
    ).toHaveProperty('properties.lora_rank');
  });

  it('leaves metadata_path out for a folder without a metadata.csv, and writes an LLM config at the top', async () => {
    await create({ path: 'plain.yaml', task: 'sd', dataset: 'data/style_train' });
    const sd = parseConfig(await readFile(join(root, 'plain.yaml'), 'utf8'), join(root, 'plain.yaml'));
    expect(sd).toMatchObject({ task: 'sd', train_data_dir: join(root, 'data/style_train') });
    expect(sd).not.toHaveProperty('metadata_path');
    await create({ path: 'llm.yml', task: 'llm' });
    const llm = parseConfig(await readFile(join(root, 'llm.yml'), 'utf8'), join(root, 'llm.yml'));
    expect(llm).toMatchObject({ task: 'llm', train_data: [join(root, 'data/train.jsonl')] });
  });

  it('never replaces a file, and refuses what it cannot write, saying why', async () => {
    await writeFile(join(root, 'configs', 'mine.yaml'), 'my own\n');
    expect(await create({ path: 'configs/mine.yaml', task: 'sd' })).toMatchObject({
      status: 409,
      body: { error: { code: 'E_CONFIG_CONFLICT', message: expect.stringMatching(/exists already/) } },
    });
    expect(await readFile(join(root, 'configs', 'mine.yaml'), 'utf8')).toBe('my own\n');
    for (const [body, code] of [
      [{ path: '../x.yaml', task: 'sd' }, 'E_PATH_OUTSIDE'],
      [{ path: 'configs/x.txt', task: 'sd' }, 'E_BAD_REQUEST'],
      [{ path: 'configs/x.yaml', task: 'flux' }, 'E_BAD_REQUEST'],
      [{ path: 'configs/x.yaml', task: 'llm', dataset: 'data/style_train' }, 'E_BAD_REQUEST'],
      [{ path: 'configs/x.yaml', task: 'sd', dataset: 'data/none' }, 'E_NOT_FOUND'],
    ] as const) {
      expect((await create(body)).body.error.code).toBe(code);
    }
  });
});
