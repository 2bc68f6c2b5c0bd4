import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loraModule, toPeft } from '@lora/adapters';
import { writeSafetensors } from '@lora/safetensors';
import { writeDemoModel } from '@lora/trainer-ort';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { f32, tempDir } from '../test-fixtures.ts';
import { generate } from './generate.ts';

let model: string;
let adapter: string;

/** A rank-2 PEFT adapter on every layer's q_proj and v_proj, large enough to change the answer. */
async function writeAdapter(folder: string, hidden: number, layers: number, kvWidth: number): Promise<void> {
  mkdirSync(folder, { recursive: true });
  const modules = new Map(
    Array.from({ length: layers }, (_, layer) => [
      [`model.layers.${layer}.self_attn.q_proj`, hidden],
      [`model.layers.${layer}.self_attn.v_proj`, kvWidth],
    ]).flatMap((pairs) =>
      pairs.map(([path, out]) => [
        path as string,
        loraModule(
          f32([2, hidden], (i) => Math.sin(i + layer(path as string)) * 0.8),
          f32([out as number, 2], (i) => Math.cos(i) * 0.8),
          4,
        ),
      ]),
    ),
  );
  const { tensors, config } = toPeft(modules, { baseModelNameOrPath: 'models/tiny-llama' });
  await writeSafetensors(join(folder, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  writeFileSync(join(folder, 'adapter_config.json'), JSON.stringify(config));
}
const layer = (path: string) => Number(path.split('.')[2]);

beforeAll(async () => {
  const root = tempDir('lora-generate-');
  model = join(root, 'tiny-llama');
  await writeDemoModel(model);
  const config = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8'));
  const headDim = config.head_dim ?? config.hidden_size / config.num_attention_heads;
  adapter = join(root, 'adapter');
  await writeAdapter(
    adapter,
    config.hidden_size,
    config.num_hidden_layers,
    config.num_key_value_heads * headDim,
  );
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** Runs the command, capturing what it writes to stdout. */
async function run(options: Parameters<typeof generate>[0]) {
  const chunks: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    chunks.push(String(chunk));
    return true;
  });
  const report = await generate(options);
  vi.restoreAllMocks();
  return { report, stdout: chunks.join('') };
}

describe('lora generate', () => {
  it('streams the answer to the prompt in the model chat template, and an adapter changes it', async () => {
    const base = await run({ model, prompt: 'Spell the word box.', maxNewTokens: 12 });
    expect(base.report.input).toBe(
      '<|im_start|>user\nSpell the word box.<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(base.report.tokens).toBeGreaterThan(0);
    expect(base.report.tokens).toBeLessThanOrEqual(12);
    expect(base.report.finish).toBe(base.report.tokens < 12 ? 'stop' : 'length');
    // What was streamed, piece by piece, is the whole answer and a newline.
    expect(base.stdout).toBe(`${base.report.text}\n`);
    const adapted = await run({
      model,
      adapter: `${adapter}:1.5`,
      prompt: 'Spell the word box.',
      maxNewTokens: 12,
    });
    expect(adapted.report.adapters).toEqual([{ path: adapter, strength: 1.5 }]);
    expect(adapted.report.text).not.toBe(base.report.text);
    const off = await run({
      model,
      adapter: `${adapter}:0`,
      prompt: 'Spell the word box.',
      maxNewTokens: 12,
    });
    expect(off.report.text).toBe(base.report.text);
  });

  it('samples reproducibly from a seed; --raw and --system change the input; --json prints one report', async () => {
    const sampled = (seed: number) =>
      run({
        model,
        prompt: 'Hello',
        raw: true,
        temperature: 1.2,
        topP: 0.95,
        seed,
        maxNewTokens: 10,
        json: true,
      });
    const [a, again, other] = [await sampled(1), await sampled(1), await sampled(2)];
    expect(a.report.input).toBe('Hello');
    expect(again.report.text).toBe(a.report.text);
    expect(other.report.text).not.toBe(a.report.text);
    expect(JSON.parse(a.stdout)).toEqual(a.report);
    const system = await run({ model, prompt: 'Hi', system: 'Be brief.', maxNewTokens: 1, json: true });
    expect(system.report.input).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it.each([
    [{ prompt: 'x' }, /needs --model <folder> and --prompt <text>/],
    [{ prompt: 'x', topP: '1.5' }, /--top-p 1\.5: give a number in \(0, 1\]/],
    [{ prompt: 'x', maxNewTokens: '0' }, /--max-new-tokens 0: give a whole number ≥ 1/],
    [{ prompt: 'x', temperature: '-1' }, /--temperature -1: give 0 \(greedy\) or more/],
    [{ prompt: 'x', device: 'tpu' }, /--device tpu: use one of cpu, cuda, webgpu, auto/],
    [{ prompt: 'x', adapter: 'out/run:99' }, /--adapter "out\/run:99": strength 99 is outside −10 to 10/],
  ])('refuses %j with a usage error', async (options, message) => {
    const withModel =
      'prompt' in options && Object.keys(options).length > 1 ? { model, ...options } : options;
    await expect(generate(withModel)).rejects.toThrow(
      expect.objectContaining({ code: 'E_USAGE', message: expect.stringMatching(message) }),
    );
  });

  it('names an adapter folder that does not exist', async () => {
    await expect(generate({ model, adapter: join(model, 'nowhere'), prompt: 'x' })).rejects.toThrow(
      /adapter .*nowhere does not exist; give the folder holding adapter_model\.safetensors/,
    );
  });
});
