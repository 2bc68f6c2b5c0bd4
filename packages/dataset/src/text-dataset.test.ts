import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { validationIndices } from './split.ts';
import { tempDir, tinyBpeTokenizer, writeText } from './test-fixtures.ts';
import { TextDataset, type TextDatasetOptions } from './text-dataset.ts';
import { IGNORE_INDEX } from './tokenize-example.ts';
import { TextTokenizer } from './tokenizer.ts';

const { tokenizerJson, tokenizerConfig } = tinyBpeTokenizer();
const tokenizer = TextTokenizer.fromJson(tokenizerJson, tokenizerConfig);
const open: TextDataset[] = [];
afterEach(async () => {
  for (const dataset of open.splice(0)) await dataset.close();
});

const lines = (...records: unknown[]) => records.map((r) => JSON.stringify(r)).join('\n');
const alpaca = (i: number) => ({ instruction: `question ${i}`, output: `answer ${'x'.repeat(i)}` });

async function build(content: string, patch: Partial<TextDatasetOptions> = {}, file = 'data.jsonl') {
  const path = await writeText(join(await tempDir(), file), content);
  const dataset = await TextDataset.build({
    path,
    tokenizer,
    template: 'chatml',
    maxSeqLen: 256,
    batchSize: 3,
    seed: 7,
    ...patch,
  });
  open.push(dataset);
  return dataset;
}

describe('TextDataset', () => {
  it('tokenizes every format in one file and reports statistics', async () => {
    const dataset = await build(
      lines(
        alpaca(1),
        {
          conversations: [
            { from: 'human', value: 'hi' },
            { from: 'gpt', value: 'hello' },
          ],
        },
        {
          messages: [
            { role: 'user', content: 'a' },
            { role: 'assistant', content: 'b' },
          ],
        },
        { text: 'plain text' },
      ),
    );
    expect(dataset.stats).toMatchObject({
      records: 4,
      sequences: 4,
      truncated: 0,
      skipped: 0,
      formats: { alpaca: 1, sharegpt: 1, messages: 1, text: 1 },
    });
    expect(dataset.stats.learnedTokens).toBeLessThan(dataset.stats.tokens);
    expect(dataset.stepsPerEpoch).toBe(2);
  });

  it('splits records into a training and a validation part that partition the file', async () => {
    const content = lines(...Array.from({ length: 10 }, (_, i) => alpaca(i)));
    const path = await writeText(join(await tempDir(), 'data.jsonl'), content);
    const split = { fraction: 0.3, seed: 11 };
    const part = async (side: 'train' | 'validation') => {
      const dataset = await build(content, { split: { ...split, part: side }, batchSize: 1 });
      const all = await Promise.all(
        Array.from({ length: dataset.stats.sequences }, (_, i) => dataset.sequence(i)),
      );
      return all.map((s) => tokenizer.decode([...s.inputIds]));
    };
    const train = await part('train');
    const validation = await part('validation');
    expect(validation).toHaveLength(3);
    expect(train).toHaveLength(7);
    const held = validationIndices(10, split.fraction, split.seed, path);
    for (let i = 0; i < 10; i++) {
      const question = `question ${i}<`;
      const where = held.has(i) ? validation : train;
      const other = held.has(i) ? train : validation;
      expect(where.some((text) => text.includes(question))).toBe(true);
      expect(other.some((text) => text.includes(question))).toBe(false);
    }
  });

  it('pads batches on the right with masks and ignored labels', async () => {
    const dataset = await build(lines(...Array.from({ length: 5 }, (_, i) => alpaca(i * 3))));
    const batch = await dataset.loadBatch(0, 0);
    expect(batch.batchSize).toBe(3);
    const lengths = await Promise.all(
      batch.sequences.map(async (s) => (await dataset.sequence(s)).inputIds.length),
    );
    expect(batch.seqLen).toBe(Math.max(...lengths));
    for (const [row, length] of lengths.entries()) {
      const mask = batch.attentionMask.subarray(row * batch.seqLen, (row + 1) * batch.seqLen);
      expect(mask.reduce((a, b) => a + b, 0)).toBe(length);
      for (let col = length; col < batch.seqLen; col++) {
        expect(batch.inputIds[row * batch.seqLen + col]).toBe(tokenizer.padId);
        expect(batch.labels[row * batch.seqLen + col]).toBe(IGNORE_INDEX);
      }
    }
    const last = await dataset.loadBatch(0, 1);
    expect(last.batchSize).toBe(2); // 5 sequences: the last batch is short
  });

  it('derives each epoch order from (seed, epoch) and resumes at any step', async () => {
    const content = lines(...Array.from({ length: 10 }, (_, i) => alpaca(i)));
    const a = await build(content);
    const b = await build(content);
    expect([...a.epochOrder(3)]).toEqual([...b.epochOrder(3)]);
    expect([...a.epochOrder(3)]).not.toEqual([...a.epochOrder(4)]);
    expect([...a.epochOrder(3)].sort((x, y) => x - y)).toEqual([...Array(10).keys()]);
    const full = [];
    for await (const batch of a.batches(2)) full.push(batch);
    const resumed = [];
    for await (const batch of b.batches(2, 2)) resumed.push(batch);
    expect(resumed).toEqual(full.slice(2));
    expect(full.flatMap((batch) => batch.sequences).sort((x, y) => x - y)).toEqual([...Array(10).keys()]);
  });

  it('counts truncated records and skips those with nothing left to learn', async () => {
    const long = { instruction: 'q'.repeat(200), output: 'a' };
    const dataset = await build(lines(alpaca(1), long, { text: 't'.repeat(300) }), { maxSeqLen: 40 });
    expect(dataset.stats).toMatchObject({ records: 3, truncated: 2, skipped: 1, sequences: 2 });
    for (const index of [0, 1])
      expect((await dataset.sequence(index)).inputIds.length).toBeLessThanOrEqual(40);
  });

  it('packs examples into sequences of at most maxSeqLen, keeping every token', async () => {
    const content = lines(...Array.from({ length: 12 }, (_, i) => alpaca(i)));
    const plain = await build(content, { maxSeqLen: 96 });
    const packed = await build(content, { maxSeqLen: 96, packing: true });
    expect(packed.stats.sequences).toBeLessThan(plain.stats.sequences);
    expect(packed.stats.tokens).toBe(plain.stats.tokens);
    let total = 0;
    for (let i = 0; i < packed.stats.sequences; i++) {
      const { inputIds, labels } = await packed.sequence(i);
      expect(inputIds.length).toBeLessThanOrEqual(96);
      expect(labels.length).toBe(inputIds.length);
      total += inputIds.length;
    }
    expect(total).toBe(plain.stats.tokens);
  });

  it('reuses the token cache keyed by file, tokenizer and settings', async () => {
    const cacheDir = join(await tempDir(), 'tokens');
    const content = lines(alpaca(1), alpaca(2));
    await build(content, { cacheDir });
    const statsFile = (await readdir(cacheDir)).find((f) => f.endsWith('.json'))!;
    const stats = JSON.parse(await readFile(join(cacheDir, statsFile), 'utf8'));
    await writeFile(join(cacheDir, statsFile), JSON.stringify({ ...stats, records: 999 }));
    expect((await build(content, { cacheDir })).stats.records).toBe(999); // read back, not recomputed
    const tokensFile = (await readdir(cacheDir)).find((f) => f.endsWith('.tokens'))!;
    await writeFile(join(cacheDir, tokensFile), 'truncated');
    expect((await build(content, { cacheDir })).stats.records).toBe(2); // damaged: rebuilt
    await build(content, { cacheDir, maxSeqLen: 128 });
    expect((await readdir(cacheDir)).filter((f) => f.endsWith('.json'))).toHaveLength(2);
  });

  it('reads CSV alpaca data', async () => {
    const dataset = await build('instruction,input,output\n"Add, please","1,2",3\n', {}, 'data.csv');
    expect(dataset.stats.formats).toEqual({ alpaca: 1 });
  });

  it('uses the model chat template when none is requested', async () => {
    const withTemplate = TextTokenizer.fromJson(tokenizerJson, {
      ...tokenizerConfig,
      chat_template:
        "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}",
    });
    const dataset = await build(lines(alpaca(2)), { tokenizer: withTemplate, template: undefined });
    const { inputIds } = await dataset.sequence(0);
    expect(withTemplate.decode([...inputIds])).toBe('user: question 2\nassistant: answer xx\n</s>');
  });

  it.each([
    ['a record in no format', lines(alpaca(1), { prompt: 'x' }), { code: 'E_INVALID_RECORD', line: 2 }],
    [
      'a broken JSON line',
      `${lines(alpaca(1))}\n{"instruction": "x", "output"}`,
      { code: 'E_INVALID_RECORD', line: 2 },
    ],
    ['chat data without any template', lines(alpaca(1)), { code: 'E_TEMPLATE' }, { template: undefined }],
    ['an empty file', '', { code: 'E_EMPTY_DATASET' }],
    ['a bad batch size', lines(alpaca(1)), { code: 'E_INVALID_OPTIONS' }, { batchSize: 0 }],
  ])('fails on %s', async (_name, content, expected, patch: Partial<TextDatasetOptions> = {}) => {
    await expect(build(content, patch)).rejects.toMatchObject(expected);
  });

  it('leaves no partial cache files behind when a record is invalid', async () => {
    const cacheDir = join(await tempDir(), 'tokens');
    await expect(build(lines(alpaca(1), { prompt: 'x' }), { cacheDir })).rejects.toMatchObject({ line: 2 });
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it.each([
    [0, 5],
    [-1, 0],
  ])('refuses epoch %i step %i', async (epoch, step) => {
    const dataset = await build(lines(alpaca(1)));
    await expect(dataset.loadBatch(epoch, step)).rejects.toMatchObject({ code: 'E_OUT_OF_RANGE' });
  });
});
