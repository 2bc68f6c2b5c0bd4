import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lint } from '@lora/caption-markup';
import { readMetadataCsv } from '@lora/dataset';
import { writeTinyClip, writeTinyTagger } from '@lora/label';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir, writeImage } from '../test-fixtures.ts';

// `lora label --model wd14|clip` through the built binary, with tiny generated models that have
// the real exports' inputs and outputs (see @lora/label's writeTinyTagger / writeTinyClip).

const bin = fileURLToPath(new URL('../../bin.js', import.meta.url));
const dist = fileURLToPath(new URL('../../dist/index.js', import.meta.url));

/** Each run starts Node and onnxruntime; on a busy 2-core machine that takes a second or two. */
const TIMEOUT = 60_000;

let root = '';
let tagger: { modelPath: string; tagsPath: string };
let clip = '';

function lora(...args: string[]) {
  const result = spawnSync(process.execPath, [bin, 'label', ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, CI: '1' },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A folder of solid-colour images (the tiny models react to colour). */
async function images(name: string, colours: Record<string, string>): Promise<string> {
  const dir = join(root, name);
  for (const [file, colour] of Object.entries(colours)) await writeImage(join(dir, file), colour, 40, 30);
  return dir;
}

async function captions(csv: string): Promise<Record<string, string>> {
  const { captions } = await readMetadataCsv(csv);
  return Object.fromEntries([...captions].map(([file, entry]) => [file, entry.caption]));
}

beforeAll(async () => {
  if (!existsSync(dist)) throw new Error('dist/index.js is missing: run `npx tsdown` in packages/cli first');
  root = tempDir('lora-label-models-');
  tagger = await writeTinyTagger(join(root, 'models', 'wd14'));
  clip = await writeTinyClip(join(root, 'models', 'clip'));
});

describe('lora label with a model (built binary)', { timeout: TIMEOUT }, () => {
  it('--model wd14 writes structured captions that pass the markup lint, with a progress line', async () => {
    const dir = await images('wd14', { 'red.png': '#f00', 'cyan.png': '#0ff', 'black.png': '#000' });
    const run = lora(
      '--input',
      dir,
      '--model',
      'wd14',
      '--model-path',
      tagger.modelPath,
      '--tags',
      tagger.tagsPath,
    );
    // Not a terminal (CI=1): the device line, then one plain progress line at the end.
    expect(run.stderr).toMatch(
      /^lora: labelling on (cpu|cuda|webgpu)\b[^\n]*\n\[#{24}\] 3\/3 images \d+\.\d img\/s ETA 00:00\n$/,
    );
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(
      /^wrote 3 captions to .*metadata\.csv \(0 existing kept, 0 replaced, 0 skipped\)/,
    );
    const written = await captions(join(dir, 'metadata.csv'));
    expect(written).toEqual({
      'black.png': '**^_^**, **long hair**, high quality, detailed, *night*',
      // The white padding of the 40×30 image scores white_background too.
      'cyan.png':
        '**hatsune miku \\(vocaloid\\)**, **blue theme**, **green theme**, **white background**, high quality, detailed, ^_^, long hair',
      'red.png': '**red theme**, **^_^**, **long hair**, high quality, detailed',
    });
    for (const caption of Object.values(written)) expect(lint(caption)).toEqual([]);
  });

  it('--threshold, --character-threshold, --ratings, --format txt and --json', async () => {
    const dir = await images('wd14-options', { 'cyan.png': '#0ff' });
    writeFileSync(join(dir, 'cyan.txt'), 'old caption\n');
    const run = lora(
      ...['--input', dir, '--model', 'wd14', '--model-path', tagger.modelPath, '--tags', tagger.tagsPath],
      ...['--threshold', '0.45', '--character-threshold', '0.999', '--ratings', '--format', 'txt'],
      ...['--template', '{caption}, {tags}, anime style', '--overwrite', '--json'],
    );
    expect(run.status).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report).toMatchObject({
      model: 'wd14',
      format: 'txt',
      replaced: 1,
      written: [{ image: join(dir, 'cyan.png') }],
    });
    expect(readFileSync(join(dir, 'cyan.txt'), 'utf8')).toBe(
      'blue theme, green theme, white background, general, ^_^, anime style\n',
    );
  });

  it('--input <image> labels that image alone and reports its tags with scores and roles', async () => {
    const dir = await images('one-image', { 'red.png': '#f00', 'cyan.png': '#0ff' });
    writeFileSync(join(dir, 'metadata.csv'), 'file_name,text\ncyan.png,a hand-made caption\n');
    const model = ['--model', 'wd14', '--model-path', tagger.modelPath, '--tags', tagger.tagsPath];
    const run = lora('--input', join(dir, 'cyan.png'), ...model, '--dry-run', '--overwrite', '--json');
    expect(run.status).toBe(0);
    const report = JSON.parse(run.stdout) as {
      written: { image: string; caption: string; tags: { text: string; role: string; score: number }[] }[];
    };
    expect(report.written.map(({ image }) => image)).toEqual([join(dir, 'cyan.png')]);
    const { tags } = report.written[0]!;
    // The same tags and roles as the folder labelling above, each with the tagger's confidence.
    expect(tags.map(({ text, role }) => `${role}:${text}`)).toEqual([
      'core:hatsune miku (vocaloid)', // as the tag reads; captions escape its brackets
      'core:blue theme',
      'core:green theme',
      'core:white background',
      'plain:^_^',
      'plain:long hair',
    ]);
    for (const { score } of tags) expect(score).toBeGreaterThan(0.35);
    expect(tags[0]!.score).toBeGreaterThan(0.85); // a character tag passes its own threshold
    // --dry-run: the hand-made caption stays.
    expect(await captions(join(dir, 'metadata.csv'))).toEqual({ 'cyan.png': 'a hand-made caption' });

    const text = lora('--input', join(dir, 'red.png'), ...model, '--dry-run');
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(
      /^would write 1 captions to .*metadata\.csv .*\n {2}.*red\.png: \*\*red theme\*\*.*\n {2}tags \(score, role\):\n {4}0\.\d{3} {2}core {3}red theme\n/,
    );
  });

  it('--model clip ranks the bundled vocabulary or a --vocab file, top-k per category', async () => {
    const dir = await images('clip', { 'red.png': '#f00', 'blue.png': '#00f' });
    const bundled = lora('--input', dir, '--model', 'clip', '--model-path', clip, '--top-k', '1', '--json');
    expect(bundled.status).toBe(0);
    const report = JSON.parse(bundled.stdout) as { written: { image: string; caption: string }[] };
    const red = report.written.find((entry) => entry.image.endsWith('red.png'))!.caption;
    expect(red).toMatch(/, \*warm light\*, \*[^*]+\*$/);
    expect(lint(red)).toEqual([]);

    const vocab = join(root, 'vocab.txt');
    writeFileSync(vocab, '[colour]\nred\ngreen\nblue\n[lighting]\nwarm light\ncool light\n');
    const custom = lora(
      ...['--input', dir, '--model', 'clip', '--model-path', clip, '--vocab', vocab, '--top-k', '1'],
      // The first run captioned both images in clip/metadata.csv; --overwrite labels them again.
      ...['--output', join(root, 'clip.csv'), '--overwrite'],
    );
    expect(custom.status).toBe(0);
    expect(await captions(join(root, 'clip.csv'))).toEqual({
      'clip/blue.png': '**blue**, high quality, detailed, *cool light*',
      'clip/red.png': '**red**, high quality, detailed, *warm light*',
    });
  });

  it.each([
    [
      'a missing tagger model',
      () => ['--model', 'wd14', '--model-path', join(root, 'nope.onnx'), '--tags', tagger.tagsPath],
      1,
      /^lora: tagger model .*nope\.onnx not found; check the path\. \[E_LABEL_FILE_NOT_FOUND\]$/,
    ],
    [
      'a CLIP encoder given as the tagger',
      () => ['--model', 'wd14', '--model-path', join(clip, 'vision_model.onnx'), '--tags', tagger.tagsPath],
      1,
      /^lora: .*vision_model\.onnx does not take a float32 \[N, 448, 448, 3\] image batch.*\[E_LABEL_MODEL_MISMATCH\]$/s,
    ],
    [
      'a tagger folder given as CLIP',
      () => ['--model', 'clip', '--model-path', join(root, 'models', 'wd14')],
      1,
      /no CLIP vision encoder \(looked for vision_model\.onnx and onnx\/vision_model\.onnx\).*\[E_LABEL_FILE_NOT_FOUND\]/,
    ],
    [
      '--model wd14 without --tags',
      () => ['--model', 'wd14', '--model-path', tagger.modelPath],
      2,
      /\[E_USAGE\]/,
    ],
  ])('fails clearly on %s', async (_name, args, status, message) => {
    const dir = await images(`fail-${status}-${Math.random()}`, { 'red.png': '#f00' });
    const run = lora('--input', dir, ...args());
    expect(run.status).toBe(status);
    expect(run.stderr.trim()).toMatch(message);
    expect(existsSync(join(dir, 'metadata.csv'))).toBe(false);
  });
});
