import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IGNORE_INDEX, TextDataset, TextTokenizer } from '@lora/dataset';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoModelFiles } from './demo.ts';
import { TextBatches } from './text-batches.ts';

const json = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes));
const files = demoModelFiles();
const tokenizer = TextTokenizer.fromJson(
  json(files.get('tokenizer.json')!),
  json(files.get('tokenizer_config.json')!),
);
// Text records learn every token; their lengths differ, so batches need padding.
const FIRST = ['one', 'two two', 'three three three', 'four'];
const SECOND = ['five five', 'six', 'seven seven seven seven'];

let folder: string;
let datasets: TextDataset[];
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'text-batches-'));
  datasets = [];
  for (const [name, texts] of [
    ['a.jsonl', FIRST],
    ['b.jsonl', SECOND],
  ] as const) {
    await writeFile(join(folder, name), texts.map((text) => `${JSON.stringify({ text })}\n`).join(''));
    datasets.push(
      await TextDataset.build({ path: join(folder, name), tokenizer, maxSeqLen: 64, batchSize: 1, seed: 0 }),
    );
  }
});
afterAll(async () => {
  for (const dataset of datasets) await dataset.close();
  await rm(folder, { recursive: true, force: true });
});

/** The texts of a batch's rows, read back through the tokenizer. */
const textsOf = (batch: {
  batchSize: number;
  seqLen: number;
  inputIds: Int32Array;
  attentionMask: Int32Array;
}) =>
  Array.from({ length: batch.batchSize }, (_, row) => {
    const ids = [...batch.inputIds.subarray(row * batch.seqLen, (row + 1) * batch.seqLen)].filter(
      (_, t) => batch.attentionMask[row * batch.seqLen + t] === 1,
    );
    return tokenizer.decode(ids, true);
  });

describe('TextBatches', () => {
  it.each([
    [1, 7],
    [3, 3],
    [7, 1],
    [10, 1],
  ])(
    'batch size %i: %i micro-batches per epoch that hold every sequence of every file once',
    async (size, count) => {
      const source = new TextBatches(datasets, { batchSize: size, seed: 5, padId: tokenizer.padId });
      expect(source.microBatchesPerEpoch).toBe(count);
      const seen: string[] = [];
      for (let i = 0; i < count; i++) seen.push(...textsOf(await source.batch(0, i)));
      expect(seen.sort()).toEqual([...FIRST, ...SECOND].sort());
    },
  );

  it('orders each epoch from the seed alone: the same (epoch, index) is the same batch', async () => {
    const order = async (seed: number, epoch: number) => {
      const source = new TextBatches(datasets, { batchSize: 1, seed, padId: tokenizer.padId });
      const texts: string[] = [];
      for (let i = 0; i < source.microBatchesPerEpoch; i++)
        texts.push(...textsOf(await source.batch(epoch, i)));
      return texts;
    };
    expect(await order(5, 1)).toEqual(await order(5, 1));
    expect(await order(5, 1)).not.toEqual(await order(5, 2));
    expect(await order(5, 1)).not.toEqual(await order(6, 1));
  });

  it('right-pads with the pad id, labels -100 and mask 0, and counts only real tokens', async () => {
    const source = new TextBatches(datasets, { batchSize: 7, seed: 0, padId: tokenizer.padId });
    const batch = await source.batch(0, 0);
    const lengths = Array.from({ length: 7 }, (_, row) =>
      batch.attentionMask.subarray(row * batch.seqLen, (row + 1) * batch.seqLen).reduce((a, b) => a + b, 0),
    );
    expect(Math.max(...lengths)).toBe(batch.seqLen);
    for (const [row, length] of lengths.entries()) {
      for (let t = length; t < batch.seqLen; t++) {
        expect(batch.inputIds[row * batch.seqLen + t]).toBe(tokenizer.padId);
        expect(batch.labels[row * batch.seqLen + t]).toBe(IGNORE_INDEX);
      }
    }
    expect(source.count(batch)).toEqual({ examples: 7, tokens: lengths.reduce((a, b) => a + b, 0) });
  });
});
