import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type TrainerEvent } from '@lora/config';
import { describe, expect, it } from 'vitest';
import { ProgressDisplay } from './progress.ts';
import { RunRecorder } from './run-folder.ts';
import { RunTracker } from './run-tracker.ts';

const config = parseConfig(
  'task: llm\nbase_model: /m\ntrain_data: /d.jsonl\noutput_dir: /o\nmax_steps: 2\n',
  '/c.yaml',
);

function tracked(hint?: (code: string, message: string) => string) {
  const dir = mkdtempSync(join(tmpdir(), 'tracker-'));
  const written: string[] = [];
  const stream = { write: (s: string) => written.push(s), isTTY: false } as unknown as NodeJS.WriteStream;
  const starts: TrainerEvent[] = [];
  const start = (first: TrainerEvent) => {
    starts.push(first);
    return new RunRecorder(dir, 'test', { tensorboard: false, startedAt: new Date() });
  };
  // Plain lines every 0 s: every update prints.
  const tracker = new RunTracker(config, new ProgressDisplay(stream, false, 0), start, hint);
  return { dir, written, tracker, starts };
}

const step = (n: number, totals: object = {}): TrainerEvent =>
  ({
    type: 'step',
    step: n,
    epoch: 1,
    loss: 3 - n,
    lr: 1e-4,
    grad_norm: 1,
    examples_per_s: 4,
    tokens_per_s: 100,
    ...totals,
  }) as TrainerEvent;

describe('RunTracker', () => {
  it('prints about 20 epoch lines for a long run (every 25th of 500, and the last), every one of a short run', async () => {
    const { written, tracker } = tracked();
    tracker.on(step(1, { total_steps: 500, total_epochs: 500 }));
    for (let epoch = 1; epoch <= 500; epoch++) tracker.on({ type: 'epoch_end', epoch, step: epoch, loss: 1 });
    await tracker.settle();
    const epochs = written
      .filter((line) => line.startsWith('epoch '))
      .map((line) => Number(line.split(/[ /]/)[1]));
    expect(epochs).toEqual(Array.from({ length: 20 }, (_, i) => 25 * (i + 1)));
    const short = tracked();
    short.tracker.on(step(1, { total_steps: 7, total_epochs: 7 }));
    for (let epoch = 1; epoch <= 7; epoch++)
      short.tracker.on({ type: 'epoch_end', epoch, step: epoch, loss: 1 });
    await short.tracker.settle();
    expect(short.written.filter((line) => line.startsWith('epoch '))).toHaveLength(7);
  });

  it('takes the run length from step events, and keeps it out of metrics.jsonl', async () => {
    const { dir, written, tracker } = tracked();
    tracker.on(step(1, { total_steps: 70, total_epochs: 7 }));
    tracker.on(step(2, { total_steps: 70, total_epochs: 7 }));
    tracker.on({ type: 'epoch_end', epoch: 1, step: 2, loss: 1.25 });
    await tracker.settle();
    expect(written[0]).toMatch(/^\[-+\] 1\/70 epoch 1\/7 loss 2\.0000 lr 1\.00e-4 0\.00 it\/s ETA --:--\n$/);
    expect(written[1]).toMatch(
      /^\[#-+\] 2\/70 epoch 1\/7 loss 1\.0000 lr 1\.00e-4 [\d.]+ it\/s ETA \d\d:\d\d\n$/,
    );
    expect(written[2]).toBe('epoch 1/7: mean loss 1.2500\n');
    const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(lines.map((line) => Object.keys(JSON.parse(line)))).toEqual([
      ['step', 'epoch', 'loss', 'lr', 'grad_norm', 'examples_per_s', 'tokens_per_s'],
      ['step', 'epoch', 'loss', 'lr', 'grad_norm', 'examples_per_s', 'tokens_per_s'],
    ]);
  });

  it.each([
    ['the first step', step(1)],
    ['a checkpoint saved before any step', { type: 'checkpoint', epoch: 0, step: 0, path: '/o/c' } as const],
    [
      'the result of a run with no step left',
      {
        type: 'done',
        stopped: 'completed',
        step: 2,
        epoch: 1,
        adapter: '',
        config: '',
        metrics: '',
      } as const,
    ],
  ])('opens the run folder once, on %s, not on the warnings before it', async (_, first) => {
    const { dir, tracker, starts } = tracked();
    tracker.on({ type: 'warning', code: 'dataset_truncated', message: 'cut' });
    expect(tracker.started).toBe(false);
    tracker.on(first);
    tracker.on(step(2));
    await tracker.settle();
    expect(tracker.started).toBe(true);
    expect(starts).toEqual([first]);
    expect(readFileSync(join(dir, 'metrics.jsonl'), 'utf8')).toContain('"step":2');
  });

  it('keeps training when the run folder cannot be opened, with one warning', async () => {
    const written: string[] = [];
    const stream = { write: (s: string) => written.push(s), isTTY: false } as unknown as NodeJS.WriteStream;
    const tracker = new RunTracker(config, new ProgressDisplay(stream, false, 0), () => {
      throw new Error('disk full');
    });
    tracker.on(step(1));
    tracker.on(step(2));
    await tracker.settle();
    expect(tracker.started).toBe(false);
    expect(written.filter((line) => line.startsWith('warning:'))).toEqual([
      "warning: the run folder's records stopped being written: disk full\n",
    ]);
  });

  it('falls back to max_steps when the backend does not say the run length', () => {
    const { written, tracker } = tracked();
    tracker.on(step(1));
    expect(written[0]).toContain(' 1/2 epoch 1/1 ');
  });

  it('words warnings through the hint, by code', () => {
    const { written, tracker } = tracked((code, message) =>
      code === 'device_fallback' ? `${message}. See here.` : message,
    );
    tracker.on({ type: 'warning', code: 'device_fallback', message: 'found nothing' });
    tracker.on({ type: 'warning', code: 'empty_step', message: 'other' });
    expect(written).toEqual(['warning: found nothing. See here.\n', 'warning: other\n']);
  });

  it('prints each validation loss with the lowest so far, and opens the run folder on the step-0 evaluation', () => {
    const { tracker, written, starts } = tracked();
    const validation = (n: number, loss: number, best: { step: number; loss: number }) =>
      ({ type: 'validation', step: n, epoch: 1, loss, best, seconds: 1.25 }) as const;
    tracker.on(validation(0, 2.5, { step: 0, loss: 2.5 }));
    expect(starts.map((e) => e.type)).toEqual(['validation']);
    tracker.on(validation(10, 2.75, { step: 0, loss: 2.5 }));
    const lines = written.join('').split('\n');
    expect(lines).toContain('validation at step 0: loss 2.5000 (the lowest so far; 1.3 s)');
    expect(lines).toContain('validation at step 10: loss 2.7500 (lowest 2.5000 at step 0; 1.3 s)');
    expect(tracker.bestValidation).toEqual({ step: 0, loss: 2.5 });
  });

  it("prints an LLM sample's answers, and only lists image samples", () => {
    const { tracker, written, dir } = tracked();
    const answers = join(dir, 'step-000000.txt');
    writeFileSync(answers, '### Hi\nHello there.\n\n');
    tracker.on({ type: 'sample', step: 0, epoch: 0, files: [answers, join(dir, 'step-000000-0.png')] });
    expect(written.join('')).toBe('### Hi\nHello there.\n');
  });

  it('describes the run: steps, time, rate, first and final loss', () => {
    const { tracker } = tracked();
    tracker.on(step(1, { total_steps: 2, total_epochs: 1 }));
    tracker.on(step(2, { total_steps: 2, total_epochs: 1 }));
    const result = { stopped: 'completed', step: 2, epoch: 1, adapter: '', config: '', metrics: '' } as const;
    expect(tracker.describe(result)).toMatch(
      /^step 2 of 2 \(epoch 1\) in 00:00, [\d.]+ it\/s; loss 2\.0000 \(first step\) → 1\.0000 \(last step\)$/,
    );
    tracker.on({ type: 'epoch_end', epoch: 1, step: 2, loss: 1.5 });
    expect(tracker.describe(result)).toMatch(/→ 1\.5000 \(last epoch mean; last step 1\.0000\)$/);
  });
});
