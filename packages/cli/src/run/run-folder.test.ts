import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '@lora/config';
import { encodePng } from '@lora/trainer-ort';
import { describe, expect, it } from 'vitest';
import {
  claimEntries,
  clearEarlierRun,
  MANIFEST_FILE,
  prepareRunFolder,
  RunRecorder,
  stampRun,
} from './run-folder.ts';

const fresh = () => mkdtempSync(join(tmpdir(), 'run-'));

const llm = parseConfig('task: llm\nbase_model: /m\ntrain_data: /d.jsonl\noutput_dir: /o\n', '/c/x.yaml');
const sd = parseConfig(
  'task: sd\nbase_model: /m.safetensors\ntrain_data_dir: /d\noutput_dir: /o\noutput_name: style_v1\n',
  '/c/x.yaml',
);
const manifest = (dir: string) =>
  (JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')) as { entries: string[] }).entries;

describe('prepareRunFolder', () => {
  it('claims the entries a run creates in an empty folder, and lists them in the manifest', () => {
    const dir = fresh();
    prepareRunFolder(dir, sd, { resuming: false, overwrite: false });
    expect(readdirSync(dir)).toEqual([MANIFEST_FILE]);
    expect(manifest(dir)).toEqual(
      [
        'best',
        'cache',
        'checkpoints',
        'config.yaml',
        'graphs',
        'logs',
        'loss.png',
        'loss.svg',
        'metrics.jsonl',
        'runs.jsonl',
        'samples',
        'style_v1.safetensors',
      ].sort(),
    );
  });

  it.each([
    [{ resuming: false, overwrite: false }],
    [{ resuming: false, overwrite: true }],
    [{ resuming: true, overwrite: false }],
  ])('refuses a folder of files lora did not write (%j), without suggesting --overwrite', (mode) => {
    const dir = fresh();
    writeFileSync(join(dir, 'model.safetensors'), 'weights');
    writeFileSync(join(dir, 'other_lora.safetensors'), 'x');
    expect(() => prepareRunFolder(dir, llm, mode)).toThrow(
      expect.objectContaining({
        code: 'E_OUTPUT_FOREIGN',
        message: expect.not.stringContaining('--overwrite'),
      }),
    );
    expect(readdirSync(dir).sort()).toEqual(['model.safetensors', 'other_lora.safetensors']);
  });

  it('refuses a run whose output would replace a file lora did not write in its own folder', () => {
    const dir = fresh();
    prepareRunFolder(dir, llm, { resuming: false, overwrite: false });
    // The manifest says lora wrote adapter_model.safetensors; the SD run writes style_v1.safetensors, which it did not.
    writeFileSync(join(dir, 'style_v1.safetensors'), "the user's");
    expect(() => prepareRunFolder(dir, sd, { resuming: false, overwrite: true })).toThrow(
      /holds style_v1\.safetensors, which lora did not write and this run would replace/,
    );
  });

  it('refuses a fresh run into an earlier run, naming --resume and --overwrite and the files that stay', () => {
    const dir = fresh();
    prepareRunFolder(dir, llm, { resuming: false, overwrite: false });
    writeFileSync(join(dir, 'adapter_model.safetensors'), 'x');
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    expect(() => prepareRunFolder(dir, llm, { resuming: false, overwrite: false })).toThrow(
      /holds an earlier run \(adapter_model\.safetensors\).*--resume auto.*--overwrite .*deletes only what lora wrote there; notes\.txt stay/,
    );
    prepareRunFolder(dir, llm, { resuming: true, overwrite: false });
    prepareRunFolder(dir, llm, { resuming: false, overwrite: true });
    expect(readFileSync(join(dir, 'adapter_model.safetensors'), 'utf8')).toBe('x');
  });

  it('adopts a run folder of an older version (no manifest, only its own names, a stamped config.yaml)', () => {
    const dir = fresh();
    writeFileSync(
      join(dir, 'config.yaml'),
      '# lora 0.0.0, run started 2026-11-30T10:00:00.000Z\ntask: llm\n',
    );
    writeFileSync(join(dir, 'adapter_model.safetensors'), 'x');
    mkdirSync(join(dir, 'checkpoints', 'step-10'), { recursive: true });
    prepareRunFolder(dir, llm, { resuming: true, overwrite: false });
    expect(manifest(dir)).toEqual(
      expect.arrayContaining(['adapter_model.safetensors', 'checkpoints', 'config.yaml']),
    );
    // Without lora's stamp the same names are not taken for lora's.
    const other = fresh();
    writeFileSync(join(other, 'config.yaml'), 'someone: else\n');
    expect(() => prepareRunFolder(other, llm, { resuming: true, overwrite: false })).toThrow(
      /lora did not write/,
    );
  });

  it('is not blocked by what a failed start left (graphs, cache, an empty checkpoints folder, the config)', () => {
    const dir = fresh();
    prepareRunFolder(dir, llm, { resuming: false, overwrite: false });
    for (const folder of ['graphs', 'cache/tokens', 'checkpoints'])
      mkdirSync(join(dir, folder), { recursive: true });
    writeFileSync(join(dir, 'config.yaml'), 'x');
    expect(() => prepareRunFolder(dir, llm, { resuming: false, overwrite: false })).not.toThrow();
  });
});

describe('clearEarlierRun', () => {
  /** A finished run's folder (LLM and SD adapters), a cache, and a file of the user's. */
  function earlierRun(): string {
    const dir = fresh();
    for (const folder of ['checkpoints/step-0', 'checkpoints/step-20', 'logs', 'cache/tokens'])
      mkdirSync(join(dir, folder), { recursive: true });
    for (const file of [
      'adapter_model.safetensors',
      'adapter_config.json',
      'style_v1.safetensors',
      'config.yaml',
      'runs.jsonl',
      'metrics.jsonl',
      'loss.png',
      'loss.svg',
      'logs/events.out.tfevents.1',
      'cache/tokens/a.bin',
      'notes.txt',
      // Named like an adapter, but the manifest does not list it: lora did not write it.
      'base_model.safetensors',
    ])
      writeFileSync(join(dir, file), 'x');
    claimEntries(dir, [
      'checkpoints',
      'logs',
      'cache',
      'adapter_model.safetensors',
      'adapter_config.json',
      'style_v1.safetensors',
      'config.yaml',
      'runs.jsonl',
      'metrics.jsonl',
      'loss.png',
      'loss.svg',
    ]);
    return dir;
  }
  const listing = (dir: string) =>
    readdirSync(dir, { recursive: true, encoding: 'utf8' })
      .map((path) => path.replaceAll('\\', '/'))
      .sort();
  const kept = [
    'base_model.safetensors',
    'cache',
    'cache/tokens',
    'cache/tokens/a.bin',
    'config.yaml',
    MANIFEST_FILE,
    'notes.txt',
  ].sort();

  // config.yaml stays for stampRun to replace atomically.
  it.each([
    ['once the first step is reported', [], kept],
    [
      'keeping what a Ctrl-C before the first step saved',
      ['checkpoints/step-0', 'adapter_model.safetensors'],
      [...kept, 'adapter_model.safetensors', 'checkpoints', 'checkpoints/step-0'].sort(),
    ],
  ])('deletes adapters, checkpoints, metrics, logs, plots and history %s', (_, keep, left) => {
    const dir = earlierRun();
    clearEarlierRun(
      dir,
      keep.map((path) => join(dir, path)),
    );
    expect(listing(dir)).toEqual(left);
  });
});

describe('stampRun and RunRecorder', () => {
  it('writes config.yaml, runs.jsonl, metrics.jsonl, TensorBoard events and the loss plot', async () => {
    const dir = fresh();
    const config = parseConfig(
      'task: llm\nbase_model: /m\ntrain_data: /d.jsonl\noutput_dir: /o\n',
      '/c/x.yaml',
    );
    const startedAt = new Date('2026-11-30T10:00:00Z');
    prepareRunFolder(dir, config, { resuming: false, overwrite: false });
    stampRun(dir, config, { startedAt, version: '1.2.3' });
    stampRun(dir, config, { startedAt, version: '1.2.3', resumedFrom: '/o/checkpoints/step-2' });
    expect(readFileSync(join(dir, 'config.yaml'), 'utf8')).toMatch(
      /^# lora 1\.2\.3, run started 2026-11-30T10:00:00\.000Z, resumed from \/o\/checkpoints\/step-2\n/,
    );
    const runs = readFileSync(join(dir, 'runs.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(runs.map((r) => r.resumed_from)).toEqual([null, '/o/checkpoints/step-2']);

    const recorder = new RunRecorder(dir, 'test', { tensorboard: true, startedAt });
    // Samples: an image (its size read from the PNG header) and an LLM's answers.
    mkdirSync(join(dir, 'samples'));
    const image = join(dir, 'samples', 'step-000000-0.png');
    writeFileSync(image, encodePng(24, 16, new Uint8Array(24 * 16 * 3).fill(200)));
    const answers = join(dir, 'samples', 'step-000000.txt');
    writeFileSync(answers, '### Hi\nHello there.\n');
    await recorder.record({ type: 'sample', step: 0, epoch: 0, files: [image, answers] });
    const validation = (step: number, loss: number) =>
      ({ type: 'validation', step, epoch: 1, loss, best: { step, loss }, seconds: 0.5 }) as const;
    await recorder.record(validation(0, 3.5));
    for (const step of [1, 2, 3]) {
      await recorder.record({
        type: 'step',
        step,
        epoch: 1,
        loss: 4 - step,
        lr: 1e-4,
        grad_norm: 1,
        examples_per_s: 2,
        tokens_per_s: 100,
      });
    }
    await recorder.record(validation(3, 1.5));
    await recorder.record({
      type: 'done',
      stopped: 'completed',
      step: 3,
      epoch: 1,
      adapter: '',
      config: '',
      metrics: '',
    });
    recorder.close();
    const metrics = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(metrics.map((m) => m.loss ?? m['val/loss'])).toEqual([3.5, 3, 2, 1, 1.5]);
    expect(metrics[0]).toEqual({ step: 0, epoch: 1, 'val/loss': 3.5 });
    expect(metrics[1]).not.toHaveProperty('type');
    const [events] = readdirSync(join(dir, 'logs'));
    expect(events).toMatch(/^events\.out\.tfevents\.1796032800\./);
    const bytes = readFileSync(join(dir, 'logs', events!));
    expect(bytes.length).toBeGreaterThan(100);
    for (const tag of [
      'loss/current',
      'loss/average',
      'lr',
      'grad_norm',
      'val/loss',
      'samples/0',
      '### Hi\nHello there.',
    ])
      expect(bytes.includes(tag)).toBe(true);
    // The PNG itself is in the image summary, after its height and width (16, 24) and colorspace 3.
    expect(bytes.includes(Buffer.from([0x08, 16, 0x10, 24, 0x18, 3, 0x22]))).toBe(true);
    expect(bytes.includes(readFileSync(image))).toBe(true);
    expect(existsSync(join(dir, 'loss.svg')) && existsSync(join(dir, 'loss.png'))).toBe(true);
  });
});

describe('RunRecorder on a resumed run', () => {
  const step = (n: number, loss: number) =>
    ({
      type: 'step',
      step: n,
      epoch: 1,
      loss,
      lr: 1e-4,
      grad_norm: 1,
      examples_per_s: 2,
      tokens_per_s: 100,
    }) as const;

  it('continues metrics.jsonl and the plot, dropping steps taken after the resumed checkpoint', async () => {
    const dir = fresh();
    const startedAt = new Date('2026-11-30T10:00:00Z');
    const interrupted = new RunRecorder(dir, 'test', { tensorboard: false, startedAt });
    // Steps 1–5 ran; the last checkpoint was at step 3, so the resumed run trains 4 and 5 again.
    for (const n of [1, 2, 3, 4, 5]) {
      await interrupted.record(step(n, 10 - n));
      // Evaluated after steps 3 and 5; the one after step 5 is dropped with the steps it follows.
      if (n % 2 === 1 && n > 1) {
        await interrupted.record({
          type: 'validation',
          step: n,
          epoch: 1,
          loss: n - 1,
          best: { step: n, loss: n - 1 },
          seconds: 1,
        });
      }
    }
    const resumed = new RunRecorder(dir, 'test', { tensorboard: false, startedAt });
    for (const n of [4, 5, 6]) await resumed.record(step(n, 1 / n));
    const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(lines.map((line) => JSON.parse(line).step)).toEqual([1, 2, 3, 3, 4, 5, 6]);
    expect(JSON.parse(lines[3]!)).toEqual({ step: 3, epoch: 1, 'val/loss': 2 });
    expect(JSON.parse(lines[4]!).loss).toBe(1 / 4);
    await resumed.plot();
    // The plot spans the whole run: six points per training curve, the kept validation point.
    const svg = readFileSync(join(dir, 'loss.svg'), 'utf8');
    const curve = svg.match(/<polyline[^>]* points="([^"]+)"/)!;
    expect(curve[1]!.split(' ')).toHaveLength(6);
    expect(svg.match(/<circle/g)).toHaveLength(2);
  });
});
