// Preprocessing throughput at 512 px on generated images. Run: pnpm run build && pnpm run bench
// (plain Node against dist/, since Node 20 cannot strip TypeScript types). Numbers go in the README.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  checkDataset,
  createRng,
  ImageDataset,
  prepareClipImage,
  prepareTaggerImage,
} from '../dist/index.js';

const IMAGES = Number(process.env.BENCH_IMAGES ?? 64);
// Typical photo and illustration sizes; the mix spreads images over several buckets.
const SIZES = [
  [1024, 768],
  [768, 1024],
  [1200, 1200],
  [1920, 1080],
  [3000, 2000],
];

async function generate(dir) {
  const rng = createRng(1);
  await mkdir(join(dir, '1_bench'), { recursive: true });
  for (let i = 0; i < IMAGES; i++) {
    const [width, height] = SIZES[i % SIZES.length];
    // Smooth gradients plus noise: compresses and decodes like a photo, unlike a flat colour.
    const raw = Buffer.alloc(width * height * 3);
    for (let p = 0, y = 0; y < height; y++) {
      for (let x = 0; x < width; x++, p += 3) {
        const noise = rng.nextUint32() & 31;
        raw[p] = (x * 255) / width + noise;
        raw[p + 1] = (y * 255) / height + noise;
        raw[p + 2] = ((x + y + i * 40) & 255) ^ noise;
      }
    }
    const image = sharp(raw, { raw: { width, height, channels: 3 } });
    const name = join(dir, '1_bench', `img${String(i).padStart(3, '0')}`);
    await (i % 4 === 3
      ? image.png().toFile(`${name}.png`)
      : image.jpeg({ quality: 90 }).toFile(`${name}.jpg`));
    await writeFile(`${name}.txt`, `**subject ${i}**, *moody*, tag a, tag b`);
  }
}

async function timed(label, count, run) {
  const start = performance.now();
  await run();
  const seconds = (performance.now() - start) / 1000;
  console.log(
    `${label.padEnd(44)} ${(count / seconds).toFixed(1).padStart(7)} images/s  (${seconds.toFixed(2)} s)`,
  );
}

async function epoch(dataset, index) {
  let images = 0;
  for await (const batch of dataset.batches(index)) images += batch.paths.length;
  return images;
}

const root = await mkdtemp(join(tmpdir(), 'lora-dataset-bench-'));
try {
  await generate(root);
  console.log(`${IMAGES} generated images (${SIZES.map((s) => s.join('x')).join(', ')}), 512 px, batch 4`);
  console.log(
    `${cpus()[0]?.model ?? 'CPU'} × ${availableParallelism()}, sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips}, Node ${process.version}\n`,
  );
  let report;
  await timed('checkDataset (hash + probe + verify decode)', IMAGES, async () => {
    report = await checkDataset({ dirs: [root], resolution: 512 });
  });
  const options = { resolution: 512, batchSize: 4, seed: 1, randomCrop: true, flipAug: true };
  const plain = new ImageDataset(report.images, { ...options, caption: { shuffle: true, tagDropout: 0.1 } });
  await timed('epoch, no cache (decode + resize + crop)', IMAGES, () => epoch(plain, 0));
  const cacheDir = join(root, '.cache');
  const cached = new ImageDataset(report.images, { ...options, cacheDir });
  await timed('epoch 1 with cacheDir (decode + write cache)', IMAGES, () => epoch(cached, 0));
  await timed('epoch 2 with cacheDir (cache hits)', IMAGES, () => epoch(cached, 1));
  // Model inputs for `lora label`, eight at a time as the labellers decode them.
  const paths = report.images.map((image) => image.path);
  const inBatches = async (prepare) => {
    for (let i = 0; i < paths.length; i += 8) await Promise.all(paths.slice(i, i + 8).map(prepare));
  };
  await timed('prepareTaggerImage (448², padded, BGR)', IMAGES, () =>
    inBatches((p) => prepareTaggerImage(p)),
  );
  await timed('prepareClipImage (224², centre crop, NCHW)', IMAGES, () =>
    inBatches((p) => prepareClipImage(p)),
  );
} finally {
  await rm(root, { recursive: true, force: true });
}
