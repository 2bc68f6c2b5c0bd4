// Issue 12, item 2: @lora/dataset's image preprocessing (sharp) against Pillow on the same 200
// generated 1024×768 JPEGs: decode, EXIF rotate, Lanczos resize to cover 512², centre crop,
// float32 CHW in [-1, 1]. Run: node bench/preprocess.mjs (installs python3-pil with apt when missing).
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import {
  debianVersion,
  ensureDebianPackages,
  interleave,
  log,
  median,
  PythonWorker,
  pythonVersion,
  ROOT,
  RUNS,
  report,
  requireBuilt,
  row,
  temporaryDir,
} from './lib.mjs';

requireBuilt('dataset');
const { checkDataset, createRng, ImageDataset } = await import('../packages/dataset/dist/index.js');
// The instance @lora/dataset itself loads, so `sharp.concurrency()` below applies to it.
const sharp = createRequire(join(ROOT, 'packages/dataset/package.json'))('sharp');

const IMAGES = 200;
const WIDTH = 1024;
const HEIGHT = 768;
const SIZE = 512;
const CORES = 2;
/** EXIF orientation by image index: a quarter turned 90° (6), an eighth 180° (3), the rest upright. */
const orientationOf = (i) => (i % 4 === 1 ? 6 : i % 8 === 3 ? 3 : 1);

/** Photo-like content (smooth gradients plus sensor-like noise) so JPEG decoding does real work. */
async function generateImages(dir) {
  const rng = createRng(12);
  const files = [];
  const pixels = new Uint8Array(WIDTH * HEIGHT * 3);
  for (let i = 0; i < IMAGES; i++) {
    const [fx, fy, phase] = [rng.next() * 0.02 + 0.002, rng.next() * 0.02 + 0.002, rng.next() * 6];
    for (let y = 0, p = 0; y < HEIGHT; y++) {
      for (let x = 0; x < WIDTH; x++) {
        const base = 128 + 70 * Math.sin(x * fx + phase) * Math.cos(y * fy);
        for (let c = 0; c < 3; c++, p++)
          pixels[p] = base + 40 * Math.sin(c + x * 0.001 * i) + rng.next() * 24 - 12;
      }
    }
    const path = join(dir, `${String(i).padStart(3, '0')}.jpg`);
    const image = sharp(pixels, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } }).jpeg({ quality: 90 });
    const orientation = orientationOf(i);
    await writeFile(path, await (orientation === 1 ? image : image.withMetadata({ orientation })).toBuffer());
    files.push(path);
  }
  return files;
}

/** One epoch of the dataset at batch 4: everything a training run does per image without a cache. */
async function epoch(dataset) {
  for await (const batch of dataset.batches(0)) if (batch.pixels.length === 0) throw new Error('empty batch');
}

/** The same work on one core: one image at a time, one libvips thread. */
async function epochOneCore(dataset) {
  for (let step = 0; step < dataset.stepsPerEpoch; step++) await dataset.loadBatch(0, step);
}

ensureDebianPackages(['python3-pil', 'python3-numpy']);
const dir = temporaryDir('preprocess');
const python = new PythonWorker('preprocess_pillow.py');
try {
  log(`generating ${IMAGES} JPEGs (${WIDTH}×${HEIGHT}) in ${dir}…`);
  const files = await generateImages(dir);
  const checkStarted = performance.now();
  const { images, summary } = await checkDataset({ dirs: [dir], captions: 'none', resolution: SIZE });
  const checkSeconds = (performance.now() - checkStarted) / 1000;
  if (summary.imagesUsed !== IMAGES)
    throw new Error(`checkDataset used ${summary.imagesUsed} of ${IMAGES} images`);
  const options = { resolution: SIZE, enableBucket: false, batchSize: 4, seed: 1 };
  const twoCores = new ImageDataset(images, options);
  const oneCore = new ImageDataset(images, { ...options, concurrency: 1 });
  const defaultThreads = sharp.concurrency();

  // Same output on both sides: compare a few images pixel by pixel (upright, 90° and 180° turned).
  const differences = [];
  for (const index of [0, 1, 3]) {
    const image = images.find((im) => im.path === files[index]);
    const single = new ImageDataset([image], { ...options, batchSize: 1 });
    const ours = (await single.loadBatch(0, 0)).pixels;
    const out = join(dir, `check-${index}.f32`);
    await python.request({ cmd: 'check', file: files[index], size: SIZE, out });
    const buffer = readFileSync(out);
    const theirs = new Float32Array(buffer.buffer, buffer.byteOffset, buffer.byteLength / 4);
    if (theirs.length !== ours.length)
      throw new Error(`check ${index}: ${theirs.length} vs ${ours.length} values`);
    let sum = 0;
    for (let i = 0; i < ours.length; i++) sum += Math.abs(ours[i] - theirs[i]);
    differences.push((sum / ours.length) * 127.5); // in 8-bit levels
  }
  log(`mean |sharp − Pillow| per value: ${differences.map((d) => d.toFixed(2)).join(', ')} (8-bit levels)`);
  if (differences.some((d) => d > 3)) throw new Error('the two sides do not produce the same images');

  log(`timing ${RUNS} rounds of ${IMAGES} images per side…`);
  const rates = (seconds) => seconds.map((s) => IMAGES / s);
  // CPU seconds per side (Node: this process, libvips threads included; Python: the process and
  // its pool workers): the work per image, and with the wall time the cores each side kept busy.
  const cpu = { ours2: [], pillow2: [], ours1: [], pillow1: [] };
  const withCpu = (name, work) => async () => {
    const started = process.cpuUsage();
    const wall = performance.now();
    await work();
    const used = process.cpuUsage(started);
    cpu[name].push((used.user + used.system) / 1e6);
    return (performance.now() - wall) / 1000;
  };
  const pillow = (name, processes) => async () => {
    const reply = await python.request({ cmd: 'run', files, size: SIZE, processes });
    cpu[name].push(reply.cpu);
    return reply.seconds;
  };
  const times = await interleave({
    ours2: withCpu('ours2', () => {
      sharp.concurrency(defaultThreads);
      return epoch(twoCores);
    }),
    pillow2: pillow('pillow2', CORES),
    ours1: withCpu('ours1', () => {
      sharp.concurrency(1);
      return epochOneCore(oneCore);
    }),
    pillow1: pillow('pillow1', 1),
  });
  sharp.concurrency(defaultThreads);
  // The first CPU entry is the untimed warm-up round's.
  const cpuNote = (name) => {
    const seconds = cpu[name].slice(1);
    const busy = median(seconds.map((s, i) => s / times[name][i]));
    return `${((median(seconds) / IMAGES) * 1000).toFixed(1)} ms/image, ${busy.toFixed(2)} cores busy`;
  };

  report({
    title: 'preprocess',
    versions: {
      sharp: sharp.versions.sharp,
      libvips: sharp.versions.vips,
      Pillow: debianVersion('python3-pil') ?? '?',
      numpy: debianVersion('python3-numpy') ?? '?',
      Python: pythonVersion(),
    },
    rows: [
      row({
        id: '2',
        name: `preprocess ${IMAGES} JPEGs ${WIDTH}×${HEIGHT} → ${SIZE}² float CHW, ${CORES} cores`,
        unit: 'images/s',
        ours: rates(times.ours2),
        oursLabel: '`ImageDataset` epoch',
        base: rates(times.pillow2),
        baseLabel: `Pillow, ${CORES} processes`,
        target: 2,
      }),
      row({
        id: '2',
        name: 'the same on 1 core',
        unit: 'images/s',
        ours: rates(times.ours1),
        oursLabel: '`loadBatch`, concurrency 1, 1 libvips thread',
        base: rates(times.pillow1),
        baseLabel: 'Pillow, 1 process',
      }),
      row({
        id: '2',
        name: 'the same, per CPU-second: the work per image, which load from other jobs hardly moves',
        unit: 'images/CPU-s',
        ours: rates(cpu.ours1.slice(1)),
        oursLabel: '1 libvips thread',
        base: rates(cpu.pillow1.slice(1)),
        baseLabel: 'Pillow, 1 process',
      }),
    ],
    notes: [
      `a quarter of the JPEGs carry EXIF orientation 6 and an eighth orientation 3, which both sides apply; mean |sharp − Pillow| on three checked images: ${differences.map((d) => d.toFixed(2)).join(', ')} 8-bit levels (both Lanczos3, same crop).`,
      `CPU time (median): 2 cores: @lora ${cpuNote('ours2')}, Pillow ${cpuNote('pillow2')}; 1 core: @lora ${cpuNote('ours1')}, Pillow ${cpuNote('pillow1')}.`,
      `not timed: \`checkDataset\` (read, sha256, probe, full decode at thumbnail size) ran at ${(IMAGES / checkSeconds).toFixed(0)} images/s; it runs once per training run, not per epoch.`,
    ],
  });
} finally {
  await python.close();
}
