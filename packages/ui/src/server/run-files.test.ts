import { appendFile, mkdtemp, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeFileIn } from '../test-fixtures.ts';
import {
  endedState,
  findRuns,
  isLoraTrain,
  isSamplePath,
  lastMetrics,
  listSamples,
  parseCursor,
  readMetrics,
} from './run-files.ts';
import { cliError } from './runs.ts';

/** The keys a config snapshot needs to parse (its files need not exist). */
const SNAPSHOT = 'task: llm\nbase_model: models/m\ntrain_data: data/train.jsonl\noutput_dir: out\n';

const line = (step: number, loss = 7 - step / 10) => `${JSON.stringify({ step, epoch: 1, loss, lr: 0.1 })}\n`;

describe('reading a run folder', () => {
  it('reads metrics.jsonl from a cursor, whole lines only, and starts over when a resume rewrote it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lora-ui-metrics-'));
    const path = join(dir, 'metrics.jsonl');
    expect(await readMetrics(dir, undefined)).toBeUndefined();
    await writeFile(path, `${line(1)}${line(2)}{"step":3,"epo`);
    const first = (await readMetrics(dir, undefined))!;
    expect(first.records.map((r) => r.step)).toEqual([1, 2]);
    expect(first.reset).toBe(false);
    // The rest of the half-written line arrives: read from where the last read stopped.
    await appendFile(path, `ch":1,"loss":6.7}\n${JSON.stringify({ step: 3, epoch: 1, 'val/loss': 6.5 })}\n`);
    const second = (await readMetrics(dir, parseCursor(`${first.cursor.file}:${first.cursor.offset}`)))!;
    expect(second.records).toEqual([
      { step: 3, epoch: 1, loss: 6.7 },
      { step: 3, epoch: 1, 'val/loss': 6.5 },
    ]);
    expect((await readMetrics(dir, second.cursor))!.records).toEqual([]);
    // A resume from step 1 replaces the file (atomically: a new inode) without the later steps.
    await writeFile(`${path}.tmp`, line(1));
    await rename(`${path}.tmp`, path);
    await appendFile(path, line(2, 5));
    const third = (await readMetrics(dir, second.cursor))!;
    expect(third.reset).toBe(true);
    expect(third.records.map((r) => [r.step, r['loss']])).toEqual([
      [1, 6.9],
      [2, 5],
    ]);
    expect(await lastMetrics(dir)).toEqual({ step: 2, loss: 5 });
  });

  it('lists the samples of a run by step, and serves only such files', async () => {
    const root = await mkdtemp(join(tmpdir(), 'lora-ui-samples-'));
    const dir = join(root, 'output', 'run');
    for (const name of ['step-000010.txt', 'step-000000-0.png', 'step-000000-grid.png', 'notes.md'])
      await writeFileIn(join(dir, 'samples', name), 'x');
    await writeFileIn(join(dir, 'runs.jsonl'), '{}\n');
    await writeFileIn(join(root, 'output', 'run', 'checkpoints', 'step-1', 'runs.jsonl'), '{}\n');
    expect(await listSamples(root, dir)).toEqual([
      { path: 'output/run/samples/step-000000-0.png', step: 0, kind: 'image' },
      { path: 'output/run/samples/step-000000-grid.png', step: 0, kind: 'image' },
      { path: 'output/run/samples/step-000010.txt', step: 10, kind: 'text' },
    ]);
    expect(isSamplePath('output/run/samples/step-000010.txt')).toBe(true);
    expect(isSamplePath('output/run/samples/notes.md')).toBe(false);
    expect(isSamplePath('output/run/adapter_model.safetensors')).toBe(false);
    expect(isSamplePath('data/step-000010.txt')).toBe(false);
    expect(await findRuns(root)).toEqual(['output/run']);
  });

  it("takes lora train's error, its message and code, from the end of its output", () => {
    expect(
      cliError(
        'training x\nlora: /p/c.yaml: 1 problem\n  /p/c.yaml:4:12 lora_rank: expected integer 1–1024, got "x" [E_CONFIG_INVALID]\n',
      ),
    ).toEqual({
      code: 'E_CONFIG_INVALID',
      message: '/p/c.yaml: 1 problem\n  /p/c.yaml:4:12 lora_rank: expected integer 1–1024, got "x"',
    });
    expect(
      cliError('lora: The output folder o holds an earlier run. [E_OUTPUT_NOT_EMPTY]\n')?.message,
    ).toMatch(/earlier run\. Here: Resume goes on/);
    expect(cliError('[####] 3/10 loss 2\n')).toBeUndefined();
  });

  it.each([
    [['node', '/p/packages/cli/bin.js', 'train', '--config', 'c.yaml'], true],
    [['/usr/bin/node', '--enable-source-maps', '/p/node_modules/@lora/cli/bin.js', 'train'], true],
    [['node', '/home/me/.npm-global/bin/lora', '--debug', 'train', '--config', 'c.yaml'], true],
    [['node', '/p/packages/cli/bin.js', 'ui', 'train'], false],
    [['node', '/p/packages/cli/bin.js', 'generate', '--prompt', 'train'], false],
    [['node', '-e', 'lora train'], false],
    [['python', 'train.py', 'train'], false],
    [['lora', 'train'], false],
  ])('tells lora train from other programs by its command line: %j → %s', (args, expected) => {
    expect(isLoraTrain(args)).toBe(expected);
  });

  it('reads how a run without a lock ended from its files: the checkpoint of its last step, and whether that was the last', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lora-ui-ended-'));
    expect(await endedState(dir)).toBe('idle');
    await writeFileIn(
      join(dir, 'runs.jsonl'),
      '{"started_at":"2026-01-01T00:00:00.000Z","resumed_from":null}\n',
    );
    await writeFile(join(dir, 'metrics.jsonl'), `${line(1)}${line(2)}`);
    await writeFile(
      join(dir, 'config.yaml'),
      `# lora, run started …\n${SNAPSHOT}max_steps: 4\nlora_rank: 8\n`,
    );
    // An error: no checkpoint of its last step (one of an earlier step does not count).
    await writeFileIn(join(dir, 'checkpoints', 'step-1', 'state.json'), '{"step":1,"epoch":0}');
    expect(await endedState(dir)).toBe('failed');
    await writeFileIn(join(dir, 'checkpoints', 'step-2', 'state.json'), '{"step":2,"epoch":0}');
    expect(await endedState(dir)).toBe('stopped');
    await appendFile(join(dir, 'metrics.jsonl'), `${line(3)}${line(4)}`);
    await writeFileIn(join(dir, 'checkpoints', 'step-4', 'state.json'), '{"step":4,"epoch":1}');
    expect(await endedState(dir)).toBe('finished');
    // A run of epochs: finished when its last checkpoint has them all.
    await writeFile(join(dir, 'config.yaml'), `${SNAPSHOT}epochs: 2\n`);
    expect(await endedState(dir)).toBe('stopped');
    await writeFile(join(dir, 'checkpoints', 'step-4', 'state.json'), '{"step":4,"epoch":2}');
    expect(await endedState(dir)).toBe('finished');
  });
});
