import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LoraConfig, parseConfig, type TrainerEvent, type TrainingResult } from '@lora/config';
import { TextTokenizer } from '@lora/dataset';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backend } from './backend.ts';
import { readLlamaAdapter } from './models/llama/adapter.ts';
import { openLlamaCheckpoint } from './models/llama/checkpoint.ts';
import { writeDemoModel } from './models/llama/demo.ts';
import { demoRecordsJsonl } from './models/llama/demo-data.ts';
import { LlamaGenerator, renderPrompt, stopIdsOf } from './models/llama/generate.ts';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ort-backend-'));
  await writeDemoModel(join(root, 'model'));
  await writeFile(join(root, 'train.jsonl'), demoRecordsJsonl());
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A small demo run: 8 examples per step, a high learning rate so that a few steps show. */
function demoConfig(name: string, ...overrides: string[]): LoraConfig {
  return parseConfig(
    `task: llm
base_model: ./model
train_data: ./train.jsonl
output_dir: ./${name}
lora_rank: 4
target_modules: [q_proj, v_proj, o_proj, down_proj]
batch_size: 8
gradient_accumulation_steps: 1
learning_rate: 5e-3
lr_scheduler: constant
max_steps: 8
max_seq_len: 64
device: cpu
`,
    join(root, 'config.yaml'),
    { overrides, cwd: root },
  );
}

interface Run {
  result: TrainingResult;
  events: TrainerEvent[];
  info: string[];
}

async function train(config: LoraConfig, onEvent?: (event: TrainerEvent) => void, signal?: AbortSignal) {
  await mkdir(config.output_dir, { recursive: true });
  const events: TrainerEvent[] = [];
  const info: string[] = [];
  const result = await backend.train({
    config,
    outputDir: config.output_dir,
    signal: signal ?? new AbortController().signal,
    logger: { debug() {}, info: (message) => info.push(message), warn: (message) => info.push(message) },
    emit: (event) => {
      events.push(event);
      onEvent?.(event);
    },
  });
  return { result, events, info } satisfies Run;
}

const steps = (run: Run) => run.events.filter((e) => e.type === 'step');
const warnings = (run: Run) => run.events.flatMap((e) => (e.type === 'warning' ? [e.code] : []));

describe('the ort backend, task llm', () => {
  let first: Run;
  beforeAll(async () => {
    first = await train(demoConfig('first'));
  });

  it('trains: the loss falls, and each step reports its metrics and the run length', () => {
    const losses = steps(first).map((e) => e.loss);
    expect(losses).toHaveLength(8);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! - 0.5);
    expect(steps(first)[0]).toMatchObject({ step: 1, epoch: 1, total_steps: 8, total_epochs: 1 });
    expect(steps(first)[0]).toHaveProperty('tokens_per_s');
    expect(first.info.join('\n')).toMatch(/140 records → 140 sequences/);
    expect(first.info.join('\n')).toMatch(/device: cpu, precision fp32/);
    expect(first.info.join('\n')).toMatch(/memory for a step: about \d+\.\d\d GiB \(frozen weights/);
  });

  it('writes the PEFT adapter into the run folder and reports its files', async () => {
    const out = join(root, 'first');
    expect(first.result).toEqual({
      stopped: 'completed',
      step: 8,
      epoch: 1,
      adapter: join(out, 'adapter_model.safetensors'),
      adapter_config: join(out, 'adapter_config.json'),
      config: join(out, 'config.yaml'),
      metrics: join(out, 'metrics.jsonl'),
      logs: join(out, 'logs'),
      checkpoint: join(out, 'checkpoints', 'step-8'),
    });
    expect(first.events.at(-1)).toEqual({ type: 'done', ...first.result });
    const { spec } = await openLlamaCheckpoint(join(root, 'model'));
    const values = await readLlamaAdapter(out, spec, {
      targetModules: ['q_proj', 'v_proj', 'o_proj', 'down_proj'],
      rank: 4,
      alpha: 4,
    });
    expect(values.size).toBe(4 * 4 * 2);
    expect([...values.values()].some((v) => v.some((x) => x !== 0))).toBe(true);
    // The graphs hard-link the base weights; they are gone once the run ends.
    expect(await readdir(out)).not.toContain('graphs');
  });

  it('starts from init_adapter: the first loss is where the earlier run ended', async () => {
    const next = await train(demoConfig('continued', 'init_adapter=first', 'learning_rate=1e-6'));
    expect(steps(next)[0]!.loss).toBeLessThan(steps(first)[0]!.loss - 0.5);
    expect(next.info.join('\n')).toContain('starting from the adapter');
  });

  it('stops after the step at which the signal fires, with a checkpoint and the adapter so far', async () => {
    const controller = new AbortController();
    const run = await train(
      demoConfig('stopped', 'resume=auto'),
      (event) => {
        if (event.type === 'step' && event.step === 3) controller.abort();
      },
      controller.signal,
    );
    expect(run.result).toMatchObject({
      stopped: 'aborted',
      step: 3,
      checkpoint: join(root, 'stopped', 'checkpoints', 'step-3'),
    });
    expect(existsSync(run.result.adapter)).toBe(true);
    // resume: auto in an empty folder says so and starts at step 0.
    expect(warnings(run)).toContain('resume_found_nothing');

    const resumed = await train(demoConfig('stopped', 'resume=auto'));
    expect(steps(resumed).map((e) => e.step)).toEqual([4, 5, 6, 7, 8]);
    expect(warnings(resumed)).not.toContain('resume_found_nothing');
  });

  it('samples the prompts before the first step, on schedule and at the end; step 0 answers as the base model', async () => {
    await writeFile(
      join(root, 'prompts.txt'),
      '# the demo questions\nWhat is the capital of Egypt?\n\nSpell the word box.\n',
    );
    const run = await train(
      demoConfig('sampled', 'sample_prompts=prompts.txt', 'sample_every_n_steps=3', 'max_steps=4'),
    );
    const sampled = run.events.flatMap((e) => (e.type === 'sample' ? [e] : []));
    expect(sampled.map((e) => e.step)).toEqual([0, 3, 4]);
    const folder = join(root, 'sampled', 'samples');
    expect(sampled.map((e) => e.files)).toEqual(
      ['step-000000', 'step-000003', 'step-000004'].map((name) => [join(folder, `${name}.txt`)]),
    );
    expect(run.info).toContainEqual(
      expect.stringMatching(/^samples at step 3: 1 file\(s\) in .*samples \(\d+\.\d s\)$/),
    );
    const text = await readFile(join(folder, 'step-000000.txt'), 'utf8');
    const sections = text.split(/^### /m).filter((part) => part !== '');
    expect(sections.map((part) => part.split('\n')[0])).toEqual([
      'What is the capital of Egypt?',
      'Spell the word box.',
    ]);
    // Before the first step B is zero, so the LoRA changes nothing: the base model's greedy answer.
    const checkpoint = await openLlamaCheckpoint(join(root, 'model'));
    const tokenizer = await TextTokenizer.fromDir(join(root, 'model'));
    const base = await LlamaGenerator.open(checkpoint, []);
    const answer: number[] = [];
    try {
      const { ids } = renderPrompt(tokenizer, 'What is the capital of Egypt?');
      for await (const id of base.generate(ids, {
        maxNewTokens: 128,
        temperature: 0,
        stopIds: stopIdsOf(tokenizer),
      }))
        answer.push(id);
    } finally {
      await base.dispose();
    }
    expect(sections[0]).toBe(`What is the capital of Egypt?\n${tokenizer.decode(answer, true)}\n\n`);
  });

  it("evaluates the validation loss with the LoRA of each moment, and keeps the best step's adapter", async () => {
    // Validating on the one record it trains on: the validation loss after step k is the loss the
    // gradients graph reports for step k + 1, computed before that step's update.
    await writeFile(join(root, 'one.jsonl'), `${demoRecordsJsonl().split('\n')[0]}\n`);
    const run = await train(
      demoConfig(
        'validated',
        'train_data=one.jsonl',
        'validation_data=one.jsonl',
        'validation_every_n_steps=1',
        'batch_size=1',
        'max_steps=4',
        'lora_dropout=0.1',
      ),
    );
    const evaluations = run.events.flatMap((e) => (e.type === 'validation' ? [e] : []));
    expect(evaluations.map((e) => e.step)).toEqual([0, 1, 2, 3, 4]);
    expect(run.info).toContainEqual(
      expect.stringMatching(
        /^validation loss on 1 records \(1 sequences, \d+ learned tokens\), every 1 steps/,
      ),
    );
    // Training applies dropout to the LoRA's input, validation does not: equal while B is zero
    // (step 1), different after an update.
    const trained = steps(run).map((e) => e.loss);
    expect(trained[0]).toBeCloseTo(evaluations[0]!.loss, 5);
    expect(trained[1]).not.toBeCloseTo(evaluations[1]!.loss, 4);
    const undropped = await train(
      demoConfig(
        'validated-no-dropout',
        'train_data=one.jsonl',
        'validation_data=one.jsonl',
        'validation_every_n_steps=1',
        'batch_size=1',
        'max_steps=4',
      ),
    );
    const values = undropped.events.flatMap((e) => (e.type === 'validation' ? [e.loss] : []));
    const losses = steps(undropped).map((e) => e.loss);
    for (let k = 0; k < 4; k++) expect(values[k]).toBeCloseTo(losses[k]!, 5);
    expect(values[0]).toBeCloseTo(evaluations[0]!.loss, 6);
    // The loss falls each step, so the best step is the last, and its adapter is the run's adapter.
    const last = undropped.events.findLast((e) => e.type === 'validation')!;
    const best = join(root, 'validated-no-dropout', 'best');
    expect(last).toMatchObject({
      step: 4,
      best: { step: 4, adapter: join(best, 'adapter_model.safetensors') },
    });
    expect(await readFile(join(best, 'adapter_model.safetensors'))).toEqual(
      await readFile(undropped.result.adapter),
    );
    expect(JSON.parse(await readFile(join(best, 'validation.json'), 'utf8'))).toEqual(last.best);
  });

  it('holds out validation_split of the records, the same ones on every run', async () => {
    const run = await train(demoConfig('split', 'validation_split=0.1', 'max_steps=2'));
    expect(run.info.join('\n')).toMatch(/126 records → 126 sequences/);
    expect(run.info.join('\n')).toMatch(/validation loss on 14 held-out records .*at the end of every epoch/);
    expect(run.events.flatMap((e) => (e.type === 'validation' ? [e.step] : []))).toEqual([0, 2]);
  });

  it('warns when records are cut to max_seq_len', async () => {
    const run = await train(demoConfig('short', 'max_seq_len=24', 'max_steps=1'));
    const warning = run.events.find((e) => e.type === 'warning' && e.code === 'dataset_truncated');
    expect(warning).toMatchObject({
      message: expect.stringMatching(/^\d+ of 140 records are longer than max_seq_len \(24 tokens\)/),
    });
  });
});

describe('the ort backend, task sd', () => {
  it('runs the Stable Diffusion trainer (which names the missing checkpoint)', async () => {
    const config = parseConfig(
      'train_data_dir: ./images\nbase_model: ./sd.safetensors\noutput_dir: ./out\n',
      join(root, 'sd.yaml'),
    );
    await expect(train(config)).rejects.toThrow(/sd\.safetensors/);
  });
});
