import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type LoraAdapter, type LoraModule, loraModule, toKohya, toPeft } from '@lora/adapters';
import { readSafetensors, type TensorData, writeSafetensors } from '@lora/safetensors';
import { describe, expect, it } from 'vitest';
import { f32, floats, tempDir, UNET_MODULES, WIDTH, writeBase, writeKohyaLora } from '../test-fixtures.ts';
import { inspectFile } from './inspect.ts';
import { mergeFiles, parseLoraSpec } from './merge.ts';

describe('parseLoraSpec', () => {
  it.each([
    ['style.safetensors', 'style.safetensors', 1],
    ['style.safetensors:0.7', 'style.safetensors', 0.7],
    ['style.safetensors:-1', 'style.safetensors', -1],
    ['style.safetensors:.5', 'style.safetensors', 0.5],
    ['style.safetensors:1e-1', 'style.safetensors', 0.1],
    ['C:\\loras\\style.safetensors', 'C:\\loras\\style.safetensors', 1],
    ['C:\\loras\\style.safetensors:0.3', 'C:\\loras\\style.safetensors', 0.3],
    ['odd:name.safetensors', 'odd:name.safetensors', 1],
  ])('%s → %s × %s', (spec, path, multiplier) => {
    expect(parseLoraSpec(spec)).toEqual({ path, multiplier });
  });

  it('rejects a strength with nothing before it', () => {
    expect(() => parseLoraSpec(':0.5')).toThrow(/is not <path>\[:<strength>\]/);
  });

  it.each([
    ['style.safetensors:1e300', /strength 1e\+300 is outside −10 to 10/],
    ['style.safetensors:-11', /strength -11 is outside −10 to 10/],
    ['style.safetensors:abc', /the strength "abc" is not a number; write it as style\.safetensors:0\.7/],
    ['style.safetensors:', /the strength "" is not a number/],
  ])('rejects %s with its own message', (spec, message) => {
    expect(() => parseLoraSpec(spec)).toThrow(
      expect.objectContaining({ code: 'E_USAGE', message: expect.stringMatching(message) }),
    );
  });
});

/** W + Σ multiplier · (alpha / rank) · up @ down, computed directly. */
function expected(base: Float32Array, loras: [LoraAdapter, number][], module: string): Float32Array {
  const out = Float32Array.from(base);
  for (const [lora, multiplier] of loras) {
    const { tensors, alpha } = lora.get(module)!;
    const { down, up } = tensors as Record<'down' | 'up', TensorData>;
    const d = floats(down);
    const u = floats(up);
    const rank = down.shape[0]!;
    for (let o = 0; o < WIDTH; o++) {
      for (let k = 0; k < WIDTH; k++) {
        let sum = 0;
        for (let r = 0; r < rank; r++) sum += u[o * rank + r]! * d[r * WIDTH + k]!;
        out[o * WIDTH + k]! += multiplier * (alpha / rank) * sum;
      }
    }
  }
  return out;
}

describe('mergeFiles', () => {
  it('merges several LoRAs with their strengths and leaves no temporary file', async () => {
    const dir = tempDir();
    const base = await writeBase(join(dir, 'base.safetensors'));
    const a = await writeKohyaLora(join(dir, 'a.safetensors'), 1);
    const b = await writeKohyaLora(join(dir, 'b.safetensors'), 2);
    const report = await mergeFiles({
      base: join(dir, 'base.safetensors'),
      lora: [`${join(dir, 'a.safetensors')}:0.7`, `${join(dir, 'b.safetensors')}:-0.3`],
      output: join(dir, 'merged.safetensors'),
    });
    expect(report.loras.map((lora) => [lora.multiplier, lora.modules])).toEqual([
      [0.7, 2],
      [-0.3, 2],
    ]);
    const merged = await readSafetensors(join(dir, 'merged.safetensors'));
    for (const module of UNET_MODULES) {
      const key = `${module.slice('unet.'.length)}.weight`;
      const want = expected(
        floats(base[key]!),
        [
          [a, 0.7],
          [b, -0.3],
        ],
        module,
      );
      const got = floats(merged.tensors.get(key)!);
      for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 5);
    }
    expect(floats(merged.tensors.get('conv_in.bias')!)).toEqual(floats(base['conv_in.bias']!));
    expect(readdirSync(dir).sort()).toEqual([
      'a.safetensors',
      'b.safetensors',
      'base.safetensors',
      'merged.safetensors',
    ]);
  });

  it('writes no output when a later LoRA does not fit the base', async () => {
    const dir = tempDir();
    await writeBase(join(dir, 'base.safetensors'));
    await writeKohyaLora(join(dir, 'a.safetensors'), 1);
    const { writeSafetensors } = await import('@lora/safetensors');
    await writeSafetensors(join(dir, 'other.safetensors'), {
      'lora_unet_mid_block_attentions_0_proj_in.lora_down.weight': {
        dtype: 'F32',
        shape: [1, 4],
        data: new Float32Array(4),
      },
      'lora_unet_mid_block_attentions_0_proj_in.lora_up.weight': {
        dtype: 'F32',
        shape: [4, 1],
        data: new Float32Array(4),
      },
    });
    await expect(
      mergeFiles({
        base: join(dir, 'base.safetensors'),
        lora: [join(dir, 'a.safetensors'), join(dir, 'other.safetensors')],
        output: join(dir, 'merged.safetensors'),
      }),
    ).rejects.toMatchObject({
      code: 'E_MERGE_MISMATCH',
      message: expect.stringMatching(
        /other\.safetensors: 1 LoRA module\(s\) have no weight in .*base\.safetensors \(after.*check that the LoRA was trained on this base model/,
      ),
    });
    expect(existsSync(join(dir, 'merged.safetensors'))).toBe(false);
    expect(readdirSync(dir).filter((name) => name.includes('partial'))).toEqual([]);
  });

  it.each([
    [
      '--base is a folder',
      'base-dir',
      'a.safetensors',
      /base-dir is a folder; --base takes one checkpoint file/,
    ],
    [
      '--lora is a folder without an adapter',
      'base.safetensors',
      'lora-dir',
      /lora-dir is a folder without adapter_model\.safetensors in it; --lora takes a LoRA \.safetensors file/,
    ],
  ])('%s: says so, naming that path only', async (_, base, lora, message) => {
    const dir = tempDir();
    mkdirSync(join(dir, 'base-dir'));
    mkdirSync(join(dir, 'lora-dir'));
    await writeBase(join(dir, 'base.safetensors'));
    await writeKohyaLora(join(dir, 'a.safetensors'), 1);
    const error = await mergeFiles({
      base: join(dir, base),
      lora: join(dir, lora),
      output: join(dir, 'merged.safetensors'),
    }).then(unexpected, (caught: unknown) => caught as Error & { code: string });
    expect(error).toMatchObject({ code: 'E_USAGE', message: expect.stringMatching(message) });
    expect(error.message).not.toContain(base === 'base-dir' ? 'a.safetensors' : 'base.safetensors');
    expect(error.message).not.toMatch(/EISDIR/);
  });

  it('names both files when a LoRA module does not fit its weight', async () => {
    const dir = tempDir();
    await writeSafetensors(
      join(dir, 'small.safetensors'),
      Object.fromEntries(
        UNET_MODULES.map((module) => [`${module.slice('unet.'.length)}.weight`, f32([4, 4], () => 0)]),
      ),
    );
    await writeKohyaLora(join(dir, 'a.safetensors'), 1);
    const error = await mergeFiles({
      base: join(dir, 'small.safetensors'),
      lora: join(dir, 'a.safetensors'),
      output: join(dir, 'merged.safetensors'),
    }).then(unexpected, (caught: unknown) => caught as Error & { code: string });
    expect(error).toMatchObject({
      code: 'E_MERGE_MISMATCH',
      message: expect.stringMatching(
        /a\.safetensors does not fit .*small\.safetensors: .* is \[4, 4\] but the LoRA update is \[8, 8\]/,
      ),
    });
  });

  it('names the base, not the LoRA, when the base is not a safetensors file', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'base.safetensors'), 'not a checkpoint');
    await writeKohyaLora(join(dir, 'a.safetensors'), 1);
    const error = await mergeFiles({
      base: join(dir, 'base.safetensors'),
      lora: join(dir, 'a.safetensors'),
      output: join(dir, 'merged.safetensors'),
    }).then(unexpected, (caught: unknown) => caught as Error);
    expect(error.message).toMatch(new RegExp(`^${escapeRegExp(join(dir, 'base.safetensors'))}: `));
    expect(error.message).not.toContain('a.safetensors');
  });

  it('names the LoRA, not the base, when the LoRA is broken', async () => {
    const dir = tempDir();
    await writeBase(join(dir, 'base.safetensors'));
    writeFileSync(join(dir, 'a.safetensors'), 'not a lora');
    const error = await mergeFiles({
      base: join(dir, 'base.safetensors'),
      lora: join(dir, 'a.safetensors'),
      output: join(dir, 'merged.safetensors'),
    }).then(unexpected, (caught: unknown) => caught as Error);
    expect(error.message).toMatch(new RegExp(`^${escapeRegExp(join(dir, 'a.safetensors'))}: `));
    expect(error.message).not.toContain('base.safetensors');
  });

  it('takes a PEFT adapter folder as --lora, with the alpha from its adapter_config.json', async () => {
    const dir = tempDir();
    const weight = 'model.layers.0.self_attn.q_proj';
    await writeSafetensors(join(dir, 'llm.safetensors'), { [`${weight}.weight`]: f32([2, 2], () => 1) });
    const adapter = new Map([
      [
        weight,
        loraModule(
          f32([1, 2], () => 1),
          f32([2, 1], () => 1),
          4,
        ),
      ],
    ]);
    const { tensors, config } = toPeft(adapter, { baseModelNameOrPath: 'x' });
    mkdirSync(join(dir, 'adapter'));
    await writeSafetensors(join(dir, 'adapter', 'adapter_model.safetensors'), tensors);
    writeFileSync(join(dir, 'adapter', 'adapter_config.json'), JSON.stringify(config));
    await mergeFiles({
      base: join(dir, 'llm.safetensors'),
      lora: `${join(dir, 'adapter')}:0.5`,
      output: join(dir, 'merged.safetensors'),
    });
    const merged = await readSafetensors(join(dir, 'merged.safetensors'));
    // 1 + 0.5 · (4 / 1) · 1 · 1 in every element.
    expect([...floats(merged.tensors.get(`${weight}.weight`)!)]).toEqual([3, 3, 3, 3]);
  });
});

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const unexpected = (): never => {
  throw new Error('expected mergeFiles to fail');
};

describe('LoRA variants in inspect and merge', () => {
  const n = WIDTH;
  const value = (seed: number) => (i: number) => Math.sin(seed * 7 + i) / 3;
  /** LyCORIS LoHa, rank 2, alpha 1: ΔW = (w1a @ w1b) ⊙ (w2a @ w2b) / 2. */
  const loha: LoraModule = {
    variant: 'loha',
    tensors: {
      hada_w1_a: f32([n, 2], value(1)),
      hada_w1_b: f32([2, n], value(2)),
      hada_w2_a: f32([n, 2], value(3)),
      hada_w2_b: f32([2, n], value(4)),
    },
    alpha: 1,
  };
  /** DoRA per input column, rank 2, alpha 2 (scale 1), as A1111 applies dora_scale. */
  const dora: LoraModule = {
    variant: 'dora',
    tensors: {
      down: f32([2, n], value(5)),
      up: f32([n, 2], value(6)),
      magnitude: f32([1, n], (i) => 1 + i / 10),
    },
    alpha: 2,
  };
  const at = (t: TensorData, i: number, j: number, cols: number) => (t.data as Float32Array)[i * cols + j]!;

  it('says which variant a file holds, and merges each by its own formula', async () => {
    const dir = tempDir();
    const base = await writeBase(join(dir, 'base.safetensors'));
    const [q, v] = UNET_MODULES;
    await writeSafetensors(join(dir, 'loha.safetensors'), toKohya(new Map([[q, loha]])));
    await writeSafetensors(join(dir, 'dora.safetensors'), toKohya(new Map([[v, dora]])));
    expect((await inspectFile(join(dir, 'loha.safetensors'))).lora).toMatchObject({
      variants: { LoHa: 1 },
      ranks: { 2: 1 },
    });
    expect((await inspectFile(join(dir, 'dora.safetensors'))).lora).toMatchObject({ variants: { DoRA: 1 } });
    await mergeFiles({
      base: join(dir, 'base.safetensors'),
      lora: [`${join(dir, 'loha.safetensors')}:0.5`, join(dir, 'dora.safetensors')],
      output: join(dir, 'merged.safetensors'),
    });
    const merged = await readSafetensors(join(dir, 'merged.safetensors'));
    const weight = (module: string) => `${module.slice('unet.'.length)}.weight`;
    const t = loha.tensors as Record<string, TensorData>;
    const w = floats(base[weight(q)]!);
    const gotQ = floats(merged.tensors.get(weight(q))!);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const p1 = [0, 1].reduce(
          (sum, r) => sum + at(t['hada_w1_a']!, i, r, 2) * at(t['hada_w1_b']!, r, j, n),
          0,
        );
        const p2 = [0, 1].reduce(
          (sum, r) => sum + at(t['hada_w2_a']!, i, r, 2) * at(t['hada_w2_b']!, r, j, n),
          0,
        );
        expect(gotQ[i * n + j]).toBeCloseTo(w[i * n + j]! + 0.5 * 0.5 * p1 * p2, 5);
      }
    }
    // DoRA at strength 1: W' = V · m / ‖V‖ per input column, V = W + up @ down.
    const d = dora.tensors as Record<string, TensorData>;
    const wv = floats(base[weight(v)]!);
    const adapted = Array.from({ length: n * n }, (_, k) => {
      const [i, j] = [Math.floor(k / n), k % n];
      return wv[k]! + [0, 1].reduce((sum, r) => sum + at(d['up']!, i, r, 2) * at(d['down']!, r, j, n), 0);
    });
    const gotV = floats(merged.tensors.get(weight(v))!);
    for (let j = 0; j < n; j++) {
      const norm = Math.hypot(...Array.from({ length: n }, (_, i) => adapted[i * n + j]!));
      for (let i = 0; i < n; i++) {
        expect(gotV[i * n + j]).toBeCloseTo((adapted[i * n + j]! * (1 + j / 10)) / norm, 5);
      }
    }
  });
});
