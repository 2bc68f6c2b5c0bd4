import { link } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAS_CHROMIUM, makeProject, openUi, writeFileIn } from './test-fixtures.ts';

// Cancelling the dataset check from the page, on a dataset whose check takes seconds.

let page: Page;
let close: (() => Promise<void>) | undefined;
/** Hard links to one 4096×4096 PNG: 230 kB on disk, 48 MiB of pixels to decode each. */
const TOTAL = 400;

describe.skipIf(!HAS_CHROMIUM)('the dataset check in Chromium', { timeout: 60_000 }, () => {
  beforeAll(async () => {
    const root = await makeProject();
    const dir = join(root, 'data', 'style_train', '10_neon');
    const first = await writeFileIn(
      join(dir, 'big-000.png'),
      await sharp({ create: { width: 4096, height: 4096, channels: 3, background: '#3a6' } })
        .png()
        .toBuffer(),
    );
    for (let i = 1; i < TOTAL; i++) await link(first, join(dir, `big-${String(i).padStart(3, '0')}.png`));
    ({ page, close } = await openUi(root));
  });
  afterAll(() => close?.());

  it('cancels a check that is going, says how far it got, and starts it again', async () => {
    const images = TOTAL + 6;
    await page.getByRole('button', { name: 'Check images' }).click();
    // Decoding has begun (its count moves), far from the end: then Cancel.
    await page.waitForSelector('.check progress');
    await expect
      .poll(async () => Number(await page.locator('.check progress').getAttribute('value')), {
        interval: 20,
        timeout: 30_000,
      })
      .toBeGreaterThan(0);
    await page.getByRole('button', { name: 'Cancel' }).click();
    const status = page.locator('.check [role="status"]');
    await status.waitFor();
    const [, decoded, total] = /^Check cancelled after (\d+) of (\d+) images\./.exec(
      (await status.textContent()) ?? '',
    )!;
    expect(Number(total)).toBe(images);
    expect(Number(decoded)).toBeLessThan(images);
    // The server says the same, so the page shows what happened rather than what it asked for.
    const check = await page.evaluate(
      async () => (await (await fetch('api/check?dataset=data/style_train')).json()).check,
    );
    expect(check).toEqual({ state: 'cancelled', decoded: Number(decoded), total: images });

    await page.getByRole('button', { name: 'Check again' }).click();
    await page.waitForSelector('.check progress');
    await page.getByRole('button', { name: 'Cancel' }).click();
    await status.waitFor();
  });
});
