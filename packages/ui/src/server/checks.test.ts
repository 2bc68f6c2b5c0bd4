import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeProject, post, send, serve } from '../test-fixtures.ts';
import type { UiServer } from './start.ts';

let server: UiServer;
beforeAll(async () => {
  server = await serve(await makeProject());
});
afterAll(() => server?.close());

const DATASET = 'data/style_train';
const state = async () =>
  JSON.parse(
    (await send(server, `${new URL(server.url).pathname}api/check?dataset=${encodeURIComponent(DATASET)}`))
      .body,
  ).check;

describe('the dataset check job', () => {
  it('runs lora dataset check in the background, with its progress, and keeps the report with paths in the project', async () => {
    expect(await state()).toBeNull();
    const started = JSON.parse((await post(server, 'api/check', { dataset: DATASET })).body).check;
    expect(started).toMatchObject({ state: 'running' });
    // A second start while it runs is the same job.
    expect(JSON.parse((await post(server, 'api/check', { dataset: DATASET })).body).check.state).toBe(
      'running',
    );
    await expect.poll(async () => (await state()).state).toBe('done');
    const report = await state();
    expect(report.summary).toMatchObject({ imagesFound: 6, imagesUsed: 5, imagesSkipped: 1 });
    expect(report.findings).toContainEqual({
      code: 'unreadable-image',
      severity: 'error',
      path: `${DATASET}/10_neon/broken.png`,
      reason: expect.stringMatching(/^cannot decode \(/),
    });
    expect(JSON.stringify(report)).not.toContain(server.root);
  });

  it('refuses a dataset outside the project', async () => {
    expect((await post(server, 'api/check', { dataset: '../..' })).status).toBe(403);
  });
});
