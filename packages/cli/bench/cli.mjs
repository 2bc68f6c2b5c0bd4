// Times the built `lora` binary on generated inputs: node bench/cli.mjs (after npx tsdown).
// Prints one line per measurement: the median of several runs, wall clock, Node start included.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, truncateSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loraModule, toKohya } from '@lora/adapters';
import { writeTinyClip, writeTinyTagger } from '@lora/label';
import { writeSafetensors } from '@lora/safetensors';
import sharp from 'sharp';

const bin = fileURLToPath(new URL('../bin.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'lora-bench-'));

function time(label, args, runs = 5) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const result = spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8' });
    times.push(performance.now() - start);
    if (result.status !== 0) throw new Error(`${label}: ${result.stderr}`);
  }
  times.sort((a, b) => a - b);
  console.log(`${label.padEnd(58)} ${times[Math.floor(runs / 2)].toFixed(0).padStart(6)} ms`);
}

/** A valid F16 checkpoint over a sparse file: `lora inspect` reads only the header. */
function sparseCheckpoint(path, tensors, shape) {
  const names = Array.from({ length: tensors }, (_, i) => `model.diffusion_model.block.${i}.weight`);
  const bytes = shape[0] * shape[1] * 2;
  // The header by hand (the writer would produce the 6.6 GiB of data), then a sparse extension.
  const json = { __metadata__: { format: 'pt' } };
  for (const [i, name] of names.entries()) {
    json[name] = { dtype: 'F16', shape, data_offsets: [i * bytes, (i + 1) * bytes] };
  }
  let text = JSON.stringify(json);
  text += ' '.repeat((8 - (text.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(text.length));
  const fd = openSync(path, 'w');
  writeSync(fd, length);
  writeSync(fd, Buffer.from(text));
  closeSync(fd);
  truncateSync(path, 8 + text.length + tensors * bytes);
}

const f16 = (size, seed) => {
  const data = new Uint16Array(size);
  for (let i = 0; i < size; i++) data[i] = 0x2000 + ((i * 2654435761 + seed) % 0x1000); // small positive values
  return data;
};

try {
  time('lora --version (start-up)', ['--version']);

  sparseCheckpoint(join(dir, 'big.safetensors'), 1120, [2048, 1536]); // 1120 × 6 MiB ≈ 6.6 GiB
  time('lora inspect, 6.6 GiB checkpoint with 1,120 tensors', ['inspect', 'big.safetensors']);

  // A base of 32 F16 1024×1024 weights (64 MiB) and a rank-16 LoRA over all of them.
  const base = new Map();
  const lora = new Map();
  for (let i = 0; i < 32; i++) {
    base.set(`down_blocks.${i}.attentions.0.proj_in.weight`, {
      dtype: 'F16',
      shape: [1024, 1024],
      data: f16(1024 * 1024, i),
    });
    lora.set(
      `unet.down_blocks.${i}.attentions.0.proj_in`,
      loraModule(
        { dtype: 'F16', shape: [16, 1024], data: f16(16 * 1024, i + 1) },
        { dtype: 'F16', shape: [1024, 16], data: f16(1024 * 16, i + 2) },
        8,
      ),
    );
  }
  await writeSafetensors(join(dir, 'base.safetensors'), base);
  await writeSafetensors(join(dir, 'lora.safetensors'), toKohya(lora));
  time('lora convert, rank-16 LoRA over 32 modules, to diffusers', [
    'convert',
    'lora.safetensors',
    'diffusers.safetensors',
    '--to',
    'diffusers',
    '--overwrite',
  ]);
  time(
    'lora merge, 64 MiB F16 base + 1 LoRA (32 modules)',
    [
      'merge',
      '--base',
      'base.safetensors',
      '--lora',
      'lora.safetensors:0.8',
      '--output',
      'merged.safetensors',
      '--overwrite',
    ],
    3,
  );

  // 300 small images in three kohya folders.
  for (let i = 0; i < 300; i++) {
    const folder = join(dir, 'data', `${(i % 3) + 1}_concept ${i % 3}`);
    mkdirSync(folder, { recursive: true });
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: i % 256, g: 40, b: 90 } } })
      .png()
      .toFile(join(folder, `subject_${i % 17}_scene_${i}.png`));
  }
  time('lora label --model none, 300 images', ['label', '--input', 'data', '--overwrite']);
  // The tiny generated models: the time is the 448² / 224² preprocessing plus onnxruntime start.
  const tagger = await writeTinyTagger(join(dir, 'models', 'wd14'));
  const clip = await writeTinyClip(join(dir, 'models', 'clip'));
  const wd14 = ['--model', 'wd14', '--model-path', tagger.modelPath, '--tags', tagger.tagsPath];
  time(
    'lora label --model wd14 (tiny tagger), 300 images',
    ['label', '--input', 'data', '--overwrite', ...wd14],
    3,
  );
  const clipArgs = ['--model', 'clip', '--model-path', clip];
  time(
    'lora label --model clip (tiny CLIP), 300 images',
    ['label', '--input', 'data', '--overwrite', ...clipArgs],
    3,
  );
  time('lora dataset check, 300 images (each decoded)', ['dataset', 'check', 'data'], 3);
  time('lora tags --svg --png, 300 captions', [
    'tags',
    join('data', 'metadata.csv'),
    '--svg',
    'c.svg',
    '--png',
    'c.png',
  ]);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
