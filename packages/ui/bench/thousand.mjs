// lora ui on a folder of 1,000 generated images (640×480 PNGs, captions in metadata.csv): time to
// the first painted thumbnails in Chromium, cards in the DOM, the page's JS heap and the server's
// memory. Run after `pnpm run build`: node bench/thousand.mjs
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import sharp from 'sharp';
import { startUi } from '../dist/index.js';

const COUNT = 1000;
const root = await mkdtemp(join(tmpdir(), 'lora-ui-bench-'));
const data = join(root, 'data', '10_bench');
await mkdir(data, { recursive: true });
const rows = ['file_name,text'];
for (let index = 0; index < COUNT; index += 1) {
  const name = `img_${String(index).padStart(4, '0')}.png`;
  const background = { r: index % 256, g: (index * 7) % 256, b: (index * 13) % 256 };
  await sharp({ create: { width: 640, height: 480, channels: 3, background } })
    .png()
    .toFile(join(data, name));
  rows.push(`${name},"**subject ${index % 20}**, tag ${index % 50}, (detail:1.1), *mood ${index % 5}*"`);
}
await writeFile(join(data, 'metadata.csv'), `${rows.join('\n')}\n`);

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
for (const cache of ['cold', 'warm']) {
  const server = await startUi({ folder: root });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const start = performance.now();
  await page.goto(server.url);
  await page.waitForSelector('.card');
  const grid = performance.now() - start;
  await page.waitForFunction(
    () => {
      const images = [...document.querySelectorAll('.card img')].filter(
        (img) => img.getBoundingClientRect().top < innerHeight,
      );
      return images.length > 0 && images.every((img) => img.complete && img.naturalWidth > 0);
    },
    undefined,
    { timeout: 120_000 },
  );
  const thumbnails = performance.now() - start;
  const cards = await page.locator('.card').count();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const { metrics } = await cdp.send('Performance.getMetrics');
  const heap = metrics.find((metric) => metric.name === 'JSHeapUsedSize').value;
  console.log(
    `${cache} thumbnail cache: grid of ${COUNT} in ${grid.toFixed(0)} ms, visible thumbnails in ${thumbnails.toFixed(0)} ms; ${cards} cards in the DOM; page JS heap ${(heap / 2 ** 20).toFixed(1)} MiB; server RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
  );
  await page.close();
  await server.close();
}
await browser.close();
await rm(root, { recursive: true, force: true });
