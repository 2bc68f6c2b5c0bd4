import { link } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeProject, post, send, serve, writeFileIn } from '../test-fixtures.ts';
import type { UiServer } from './start.ts';

let server: UiServer;
beforeAll(async () => {
  server = await serve(await makeProject());
});
afterAll(() => server?.close());

const DATASET = 'data/style_train';
const state = async (dataset = DATASET) =>
  JSON.parse(
    (await send(server, `${new URL(server.url).pathname}api/check?dataset=${encodeURIComponent(dataset)}`))
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
    expect((await post(server, 'api/check/cancel', { dataset: '../..' })).status).toBe(403);
  });

  it('cancels a running check: decoding stops before the end, the state says so, and it can start again', async () => {
    // 400 hard links to a 4096×4096 PNG (230 kB on disk, 48 MiB of pixels): decoding them all
    // takes seconds, the cancel below comes an image or two after the first.
    const MANY = 'data/many';
    const TOTAL = 400;
    const first = await writeFileIn(
      join(server.root, MANY, '000.png'),
      await sharp({ create: { width: 4096, height: 4096, channels: 3, background: '#3a6' } })
        .png()
        .toBuffer(),
    );
    for (let i = 1; i < TOTAL; i++)
      await link(first, join(server.root, MANY, `${String(i).padStart(3, '0')}.png`));
    expect((await post(server, 'api/check/cancel', { dataset: MANY })).body).toBe('{"check":null}');

    await post(server, 'api/check', { dataset: MANY });
    await expect
      .poll(async () => (await state(MANY)).decoded, { interval: 10, timeout: 30_000 })
      .toBeGreaterThan(0);
    const cancelled = JSON.parse((await post(server, 'api/check/cancel', { dataset: MANY })).body).check;
    expect(cancelled).toMatchObject({ state: 'cancelled', total: TOTAL });
    expect(cancelled.decoded).toBeLessThan(TOTAL);
    // It answered once decoding had stopped: nothing is decoded after it.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await state(MANY)).toEqual(cancelled);

    const again = JSON.parse((await post(server, 'api/check', { dataset: MANY })).body).check;
    expect(again).toMatchObject({ state: 'running' });
    await post(server, 'api/check/cancel', { dataset: MANY });
    // Cancelling a check that has ended leaves its report.
    await expect.poll(async () => (await state()).state).toBe('done');
    expect(JSON.parse((await post(server, 'api/check/cancel', { dataset: DATASET })).body).check.state).toBe(
      'done',
    );
  });
});
