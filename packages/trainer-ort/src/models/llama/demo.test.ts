import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TextDataset, TextTokenizer } from '@lora/dataset';
import { readSafetensors } from '@lora/safetensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLlamaCheckpoint } from './checkpoint.ts';
import { demoModelFiles, writeDemoModel } from './demo.ts';
import { demoRecords, demoRecordsJsonl } from './demo-data.ts';

let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'demo-model-'));
  await writeDemoModel(join(folder, 'model'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

describe('demoModelFiles', () => {
  it('gives the same bytes for the same seed and other weights for another', () => {
    const [a, b, c] = [demoModelFiles(0), demoModelFiles(0), demoModelFiles(1)];
    for (const [name, bytes] of a) expect(Buffer.compare(bytes, b.get(name)!), name).toBe(0);
    expect(Buffer.compare(a.get('model.safetensors')!, c.get('model.safetensors')!)).not.toBe(0);
  });

  it('is a LlamaForCausalLM folder the loader accepts: GQA, untied head, F32 weights', async () => {
    const { spec, tensors } = await openLlamaCheckpoint(join(folder, 'model'));
    expect(spec).toMatchObject({
      architecture: 'LlamaForCausalLM',
      numLayers: 4,
      hiddenSize: 128,
      numHeads: 4,
      numKvHeads: 2,
      tieWordEmbeddings: false,
    });
    expect(spec.vocabSize % 64).toBe(0);
    expect([...tensors.values()].every((t) => t.dtype === 'F32')).toBe(true);
  });

  it('initialises norms to 1 and matrices with std 1/sqrt(fan_in)', async () => {
    const { tensors } = await readSafetensors(join(folder, 'model', 'model.safetensors'));
    const values = (name: string) => {
      const { data } = tensors.get(name)!;
      return new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    };
    expect(new Set(values('model.layers.0.input_layernorm.weight'))).toEqual(new Set([1]));
    const down = values('model.layers.0.mlp.down_proj.weight'); // fan_in 256
    const std = Math.sqrt(down.reduce((sum, v) => sum + v * v, 0) / down.length);
    expect(std).toBeCloseTo(1 / 16, 2);
  });

  it('has a tokenizer that @huggingface/tokenizers loads, with chatml specials and template', async () => {
    const tokenizer = await TextTokenizer.fromDir(join(folder, 'model'));
    const config = JSON.parse(await readFile(join(folder, 'model', 'config.json'), 'utf8'));
    expect(tokenizer.eosId).toBe(config.eos_token_id);
    expect(tokenizer.padId).toBe(config.pad_token_id);
    expect(tokenizer.bosId).toBeUndefined();
    expect(tokenizer.chatTemplate).toContain('<|im_start|>');
    const text = 'What is the capital of Peru?';
    expect(tokenizer.decode(tokenizer.encode(text, false))).toBe(text);
    // Learned from the demo data: its words are single tokens.
    expect(tokenizer.encode(' capital', false)).toHaveLength(1);
  });

  it('tokenizes every demo record with its chat template, all ids inside the vocabulary', async () => {
    const data = join(folder, 'train.jsonl');
    await writeFile(data, demoRecordsJsonl());
    const tokenizer = await TextTokenizer.fromDir(join(folder, 'model'));
    const dataset = await TextDataset.build({
      path: data,
      tokenizer,
      maxSeqLen: 128,
      batchSize: 200,
      seed: 1,
    });
    try {
      expect(dataset.stats).toMatchObject({ records: 140, sequences: 140, truncated: 0, skipped: 0 });
      const batch = await dataset.loadBatch(0, 0);
      const { spec } = await openLlamaCheckpoint(join(folder, 'model'));
      expect(Math.max(...batch.inputIds)).toBeLessThan(spec.vocabSize);
      expect(tokenizer.decode([...batch.inputIds.subarray(0, batch.seqLen)])).toMatch(
        /^<\|im_start\|>user\n.+<\|im_end\|>\n<\|im_start\|>assistant\n.+<\|im_end\|>\n/,
      );
    } finally {
      await dataset.close();
    }
  });
});

describe('demoRecords', () => {
  it('holds five families of patterned answers, shuffled the same way for a seed', () => {
    const records = demoRecords();
    expect(records).toHaveLength(140);
    expect(records).toEqual(demoRecords(0));
    expect(records).not.toEqual(demoRecords(1));
    expect(records).toContainEqual({
      instruction: 'What is the capital of Peru?',
      output: 'The capital of Peru is Lima.',
    });
    expect(records).toContainEqual({
      instruction: 'Spell the word kite.',
      output: 'kite is spelled k-i-t-e.',
    });
    for (const { instruction, output } of records.filter((r) => r.instruction.startsWith('Add '))) {
      const [a, b] = instruction.match(/\d+/g)!.map(Number);
      expect(output).toBe(`${a} plus ${b} is ${a! + b!}.`);
    }
  });

  it('writes one alpaca JSON object per line', () => {
    const lines = demoRecordsJsonl().trimEnd().split('\n');
    expect(lines.map((line) => JSON.parse(line))).toEqual(demoRecords());
  });
});
