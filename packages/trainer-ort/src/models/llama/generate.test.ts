/**
 * Generation against tools/golden/llm_generate_reference.py (plain PyTorch, no cache): greedy
 * tokens of the base model and of base + the golden LoRA (written and read back as a PEFT
 * adapter) at strength 0.75, the KV-cache path against running the whole sequence per token,
 * strength 0 against the base, two adapters against their sum, and the sampling rules.
 */
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRng } from '@lora/dataset';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPeftAdapter, writeLlamaAdapter } from './adapter.ts';
import { openLlamaCheckpoint } from './checkpoint.ts';
import { chooseToken, LlamaGenerator, type SamplingOptions, type WeightedAdapter } from './generate.ts';
import { byParameter, FIXTURES, fixtureFolder, readGolden } from './testing.ts';

interface GenerateGolden {
  prompt: number[];
  strength: number;
  base: number[];
  adapted: number[];
}

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'llama-generate-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** The fixture's golden LoRA start values, written as a PEFT adapter into `folder` and read back. */
async function goldenAdapter(name: string, folder: string): Promise<WeightedAdapter['adapter']> {
  const golden = readGolden(name);
  const checkpoint = await openLlamaCheckpoint(fixtureFolder(name));
  await mkdir(folder);
  await writeLlamaAdapter(
    folder,
    checkpoint.spec,
    { targetModules: golden.target_modules, rank: golden.rank, alpha: golden.alpha },
    byParameter(golden.lora_start),
    { baseModelNameOrPath: fixtureFolder(name) },
  );
  return (await readPeftAdapter(folder, 'adapter')).adapter;
}

const greedy: SamplingOptions = { maxNewTokens: 8, temperature: 0, stopIds: new Set() };

async function tokens(generator: LlamaGenerator, prompt: number[], options = greedy): Promise<number[]> {
  const out: number[] = [];
  for await (const id of generator.generate(prompt, options)) out.push(id);
  return out;
}

describe.each(FIXTURES)('%s: generation against the PyTorch reference', (name) => {
  const expected = JSON.parse(
    readFileSync(join(fixtureFolder(name), 'generate.json'), 'utf8'),
  ) as GenerateGolden;
  let adapter: WeightedAdapter['adapter'];

  beforeAll(async () => {
    adapter = await goldenAdapter(name, join(scratch, name));
  });

  const open = async (adapters: readonly WeightedAdapter[]) =>
    LlamaGenerator.open(await openLlamaCheckpoint(fixtureFolder(name)), adapters);

  it('greedy tokens of the base and of base + LoRA equal the reference; the cache changes nothing', async () => {
    const base = await open([]);
    const adapted = await open([{ adapter, strength: expected.strength, name }]);
    try {
      expect(await tokens(base, expected.prompt)).toEqual(expected.base);
      expect(await tokens(adapted, expected.prompt)).toEqual(expected.adapted);
      expect(await tokens(adapted, expected.prompt, { ...greedy, noCache: true })).toEqual(expected.adapted);
    } finally {
      await base.dispose();
      await adapted.dispose();
    }
  });

  it('strength 0 is the base model; two adapters at 0.5 and 0.25 are one at 0.75', async () => {
    const off = await open([{ adapter, strength: 0, name }]);
    const split = await open([
      { adapter, strength: 0.5, name: 'half' },
      { adapter, strength: 0.25, name: 'quarter' },
    ]);
    try {
      expect(await tokens(off, expected.prompt)).toEqual(expected.base);
      expect(await tokens(split, expected.prompt)).toEqual(expected.adapted);
    } finally {
      await off.dispose();
      await split.dispose();
    }
  });
});

describe('LlamaGenerator', () => {
  it('stops at a stop id without returning it, and refuses an empty prompt or a token outside the vocabulary', async () => {
    const expected = JSON.parse(
      readFileSync(join(fixtureFolder('llama'), 'generate.json'), 'utf8'),
    ) as GenerateGolden;
    const generator = await LlamaGenerator.open(await openLlamaCheckpoint(fixtureFolder('llama')), []);
    try {
      const stop = expected.base[5]!; // the first token that differs from the ones before it
      const until = await tokens(generator, expected.prompt, { ...greedy, stopIds: new Set([stop]) });
      expect(until).toEqual(expected.base.slice(0, expected.base.indexOf(stop)));
      await expect(tokens(generator, [])).rejects.toThrow(/the prompt has no tokens/);
      await expect(tokens(generator, [1, 64])).rejects.toThrow(
        /token id 64 is outside the vocabulary \(0–63\)/,
      );
    } finally {
      await generator.dispose();
    }
  });

  it('refuses an adapter for modules the model lacks, and a variant other than LoRA', async () => {
    const checkpoint = await openLlamaCheckpoint(fixtureFolder('llama'));
    const adapter = await goldenAdapter('llama', join(scratch, 'refused'));
    const [path, module] = [...adapter][0]!;
    const elsewhere = new Map([[path.replace('layers.0', 'layers.9'), module]]);
    await expect(
      LlamaGenerator.open(checkpoint, [{ adapter: elsewhere, strength: 1, name: 'a' }]),
    ).rejects.toThrow(
      /adapter a: model\.layers\.9\.self_attn\.q_proj is not a linear module of this model \(2 layers\)/,
    );
    const dora = new Map([[path, { ...module, variant: 'dora' as const }]]);
    await expect(
      LlamaGenerator.open(checkpoint, [{ adapter: dora, strength: 1, name: 'd' }]),
    ).rejects.toThrow(/is dora; generation applies LoRA adapters only/);
  });
});

describe('chooseToken', () => {
  const logits = Float32Array.from([Math.log(0.2), Math.log(0.5), Math.log(0.3), -Infinity]);
  const frequencies = (options: Parameters<typeof chooseToken>[1], draws = 20000) => {
    const rng = createRng(11);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < draws; i++) counts[chooseToken(logits, options, rng)]! += 1;
    return counts.map((c) => c / draws);
  };

  it('takes the most likely token at temperature 0, the first of equals on a tie', () => {
    expect(chooseToken(logits, { temperature: 0 }, createRng(0))).toBe(1);
    expect(chooseToken(Float32Array.from([1, 3, 3]), { temperature: 0 }, createRng(0))).toBe(1);
  });

  it('draws in proportion to the probabilities, sharpened by a low temperature', () => {
    const near = (got: number[], want: number[]) => {
      for (const [i, p] of want.entries()) expect(Math.abs(got[i]! - p)).toBeLessThan(0.015);
    };
    near(frequencies({ temperature: 1 }), [0.2, 0.5, 0.3, 0]);
    // T = 0.5 squares the probabilities: 0.04, 0.25, 0.09 over 0.38.
    near(frequencies({ temperature: 0.5 }), [0.04 / 0.38, 0.25 / 0.38, 0.09 / 0.38]);
  });

  it('keeps the top k, then the smallest most likely set that reaches top p', () => {
    const k2 = frequencies({ temperature: 1, topK: 2 });
    expect(k2[0]).toBe(0);
    expect(Math.abs(k2[1]! - 0.625)).toBeLessThan(0.015);
    // 0.5 < 0.6 ≤ 0.5 + 0.3: the two most likely tokens stay.
    const p6 = frequencies({ temperature: 1, topP: 0.6 });
    expect(p6[0]).toBe(0);
    expect(Math.abs(p6[2]! - 0.375)).toBeLessThan(0.015);
    expect(frequencies({ temperature: 1, topP: 0.4 })).toEqual([0, 1, 0, 0]);
  });
});
