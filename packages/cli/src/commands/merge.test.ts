import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type LoraAdapter, readSafetensors } from '@lora/safetensors';
import { describe, expect, it } from 'vitest';
import { floats, tempDir, UNET_MODULES, WIDTH, writeBase, writeKohyaLora } from '../test-fixtures.ts';
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
    expect(() => parseLoraSpec(':0.5')).toThrow(/is not <file>\[:<strength>\]/);
  });
});

/** W + Σ multiplier · (alpha / rank) · up @ down, computed directly. */
function expected(base: Float32Array, loras: [LoraAdapter, number][], module: string): Float32Array {
  const out = Float32Array.from(base);
  for (const [lora, multiplier] of loras) {
    const { down, up, alpha } = lora.get(module)!;
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
        /other\.safetensors: 1 LoRA module\(s\) have no weight in .*base\.safetensors \(after/,
      ),
    });
    expect(existsSync(join(dir, 'merged.safetensors'))).toBe(false);
    expect(readdirSync(dir).filter((name) => name.includes('partial'))).toEqual([]);
  });
});
