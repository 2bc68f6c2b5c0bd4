import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  fromFloat32,
  readSafetensors,
  type TensorData,
  toFloat32,
  writeSafetensors,
} from '@lora/safetensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loraModule } from './adapter.ts';
import { toKohya } from './kohya.ts';
import { mergeLora } from './merge.ts';
import { toPeft } from './peft.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'safetensors-merge-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const values = (count: number, seed: number) =>
  Float32Array.from({ length: count }, (_, i) => Math.sin(seed * 97 + i * 1.3) / 2);
const f32 = (shape: number[], seed: number): TensorData => ({
  dtype: 'F32',
  shape,
  data: values(
    shape.reduce((a, b) => a * b, 1),
    seed,
  ),
});

/** The reference: W + multiplier · alpha / rank · up @ down, in float64. */
function expected(weight: Float32Array, up: Float32Array, down: Float32Array, rank: number, scale: number) {
  const out = up.length / rank;
  const inner = down.length / rank;
  return Array.from(weight, (w, index) => {
    const o = Math.floor(index / inner);
    const k = index % inner;
    let sum = 0;
    for (let r = 0; r < rank; r++) sum += up[o * rank + r]! * down[r * inner + k]!;
    return w + scale * sum;
  }).slice(0, out * inner);
}

const floats = (tensor: TensorData) =>
  toFloat32(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength), tensor.dtype);

describe('mergeLora', () => {
  it('merges a kohya LoRA into an LDM single-file checkpoint: linear, 1×1 and 3×3 conv', async () => {
    const linearKey = 'model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight';
    const convKey = 'model.diffusion_model.input_blocks.1.0.in_layers.2.weight';
    const projKey = 'model.diffusion_model.middle_block.1.proj_in.weight';
    const base = new Map<string, TensorData>([
      [linearKey, f32([6, 5], 1)],
      [convKey, { ...f32([4, 3, 3, 3], 2), dtype: 'F16', data: fromFloat32(values(108, 2), 'F16') }],
      [projKey, f32([4, 4, 1, 1], 3)],
      ['cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight', f32([3, 2], 4)],
      ['untouched.bias', { dtype: 'I64', shape: [2], data: new BigInt64Array([7n, -1n]) }],
    ]);
    const basePath = join(dir, 'base.safetensors');
    await writeSafetensors(basePath, base, { format: 'pt' });

    const lora = new Map([
      [
        'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q',
        loraModule(f32([2, 5], 5), f32([6, 2], 6), 1),
      ],
      ['unet.down_blocks.0.resnets.0.conv1', loraModule(f32([2, 3, 3, 3], 7), f32([4, 2, 1, 1], 8), 4)],
      ['unet.mid_block.attentions.0.proj_in', loraModule(f32([1, 4], 9), f32([4, 1], 10), 0.5)],
      ['text_encoder.text_model.encoder.layers.0.mlp.fc1', loraModule(f32([2, 2], 11), f32([3, 2], 12), 2)],
    ]);
    const loraPath = join(dir, 'lora.safetensors');
    await writeSafetensors(loraPath, toKohya(lora));
    const output = join(dir, 'merged.safetensors');
    const report = await mergeLora(basePath, loraPath, { output, multiplier: 0.75 });
    expect(report.size).toBe(4);

    const merged = (await readSafetensors(output)).tensors;
    expect((await readSafetensors(output)).metadata).toEqual({ format: 'pt' });
    for (const [path, module] of lora) {
      const key = [...report].find(([, p]) => p === path)![0];
      const rank = module.tensors.down!.shape[0]!;
      const want = expected(
        floats(base.get(key)!),
        floats(module.tensors.up!),
        floats(module.tensors.down!),
        rank,
        (0.75 * module.alpha) / rank,
      );
      const got = floats(merged.get(key)!);
      expect(merged.get(key)!.dtype).toBe(base.get(key)!.dtype);
      const tolerance = base.get(key)!.dtype === 'F16' ? 1e-3 : 1e-6;
      for (const [i, value] of got.entries()) expect(Math.abs(value - want[i]!)).toBeLessThan(tolerance);
    }
    expect([...new BigInt64Array(merged.get('untouched.bias')!.data.buffer)]).toEqual([7n, -1n]);
  });

  it("merges SD 2.x text-encoder q, k, v into the thirds of OpenCLIP's fused in_proj_weight, out_proj and c_fc whole", async () => {
    const block = 'cond_stage_model.model.transformer.resblocks.1';
    const inProj = `${block}.attn.in_proj_weight`;
    const base = new Map<string, TensorData>([
      [inProj, { dtype: 'F16', shape: [12, 4], data: fromFloat32(values(48, 21), 'F16') }],
      [`${block}.attn.in_proj_bias`, f32([12], 22)],
      [`${block}.attn.out_proj.weight`, f32([4, 4], 23)],
      [`${block}.mlp.c_fc.weight`, f32([6, 4], 24)],
    ]);
    const basePath = join(dir, 'sd2.safetensors');
    await writeSafetensors(basePath, base);
    const te = 'text_encoder.text_model.encoder.layers.1';
    const lora = new Map(
      ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.out_proj', 'mlp.fc1'].map(
        (name, i) => [
          `${te}.${name}`,
          loraModule(f32([2, 4], 30 + i), f32([name === 'mlp.fc1' ? 6 : 4, 2], 40 + i), 1 + i),
        ],
      ),
    );
    const loraPath = join(dir, 'sd2-lora.safetensors');
    await writeSafetensors(loraPath, toKohya(lora));
    const output = join(dir, 'sd2-merged.safetensors');
    const report = await mergeLora(basePath, loraPath, { output });
    expect([...report].toSorted()).toEqual([
      [`${inProj}[0/3]`, `${te}.self_attn.q_proj`],
      [`${inProj}[1/3]`, `${te}.self_attn.k_proj`],
      [`${inProj}[2/3]`, `${te}.self_attn.v_proj`],
      [`${block}.attn.out_proj.weight`, `${te}.self_attn.out_proj`],
      [`${block}.mlp.c_fc.weight`, `${te}.mlp.fc1`],
    ]);
    const merged = (await readSafetensors(output)).tensors;
    // A1111's torch.vstack([updown_q, updown_k, updown_v]) onto in_proj_weight, then rounded to F16 once.
    const fused = floats(base.get(inProj)!);
    const want = ['q_proj', 'k_proj', 'v_proj'].flatMap((p) => {
      const m = lora.get(`${te}.self_attn.${p}`)!;
      const rows = fused.subarray(16 * ['q_proj', 'k_proj', 'v_proj'].indexOf(p)).subarray(0, 16);
      return expected(rows, floats(m.tensors.up!), floats(m.tensors.down!), 2, m.alpha / 2);
    });
    const got = floats(merged.get(inProj)!);
    expect(merged.get(inProj)!.dtype).toBe('F16');
    for (const [i, value] of got.entries()) expect(Math.abs(value - want[i]!)).toBeLessThan(2e-3);
    const bias = `${block}.attn.in_proj_bias`;
    expect(floats(merged.get(bias)!)).toEqual(floats(base.get(bias)!));
    const fc = lora.get(`${te}.mlp.fc1`)!;
    const fcWant = expected(
      floats(base.get(`${block}.mlp.c_fc.weight`)!),
      floats(fc.tensors.up!),
      floats(fc.tensors.down!),
      2,
      fc.alpha / 2,
    );
    for (const [i, value] of floats(merged.get(`${block}.mlp.c_fc.weight`)!).entries())
      expect(Math.abs(value - fcWant[i]!)).toBeLessThan(1e-6);
  });

  it('merges a PEFT adapter (using adapter_config.json beside it) into a transformers checkpoint', async () => {
    const basePath = join(dir, 'llm.safetensors');
    await writeSafetensors(basePath, {
      'model.layers.0.self_attn.q_proj.weight': {
        ...f32([4, 4], 1),
        dtype: 'BF16',
        data: fromFloat32(values(16, 1), 'BF16'),
      },
    });
    const adapter = new Map([
      ['model.layers.0.self_attn.q_proj', loraModule(f32([2, 4], 2), f32([4, 2], 3), 8)],
    ]);
    const { tensors, config } = toPeft(adapter, { baseModelNameOrPath: 'x' });
    const peftDir = await mkdtemp(join(dir, 'peft-'));
    await writeSafetensors(join(peftDir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
    await writeFile(join(peftDir, 'adapter_config.json'), JSON.stringify(config));
    const output = join(dir, 'llm-merged.safetensors');
    await mergeLora(basePath, join(peftDir, 'adapter_model.safetensors'), { output });
    const got = floats(
      (await readSafetensors(output)).tensors.get('model.layers.0.self_attn.q_proj.weight')!,
    );
    const want = expected(
      toFloat32(fromFloat32(values(16, 1), 'BF16'), 'BF16'),
      values(8, 3),
      values(8, 2),
      2,
      4,
    );
    for (const [i, value] of got.entries()) expect(Math.abs(value - want[i]!)).toBeLessThan(0.02);
  });

  it("maps diffusers paths with the base checkpoint's own block layout (layers_per_block 1)", async () => {
    // Two levels, one resnet + attention each: input_blocks 1 | 2 (op) | 3, output_blocks 0-1 | 2-3.
    // SD 1.5's fixed layout sends down_blocks.1 to input_blocks.4 (missing) and
    // up_blocks.1.attentions.0 to output_blocks.3 (present, but the wrong block).
    const attention = (block: string) =>
      `model.diffusion_model.${block}.1.transformer_blocks.0.attn1.to_q.weight`;
    const base = new Map<string, TensorData>([
      ['model.diffusion_model.input_blocks.0.0.weight', f32([4, 4, 3, 3], 1)],
      [attention('input_blocks.1'), f32([4, 4], 2)],
      ['model.diffusion_model.input_blocks.2.0.op.weight', f32([4, 4, 3, 3], 3)],
      [attention('input_blocks.3'), f32([4, 4], 4)],
      ['model.diffusion_model.output_blocks.1.2.conv.weight', f32([4, 4, 3, 3], 5)],
      ...[0, 1, 2, 3].map((block): [string, TensorData] => [
        attention(`output_blocks.${block}`),
        f32([4, 4], 6 + block),
      ]),
    ]);
    const basePath = join(dir, 'tiny-ldm.safetensors');
    await writeSafetensors(basePath, base);
    const module = (seed: number) => loraModule(f32([1, 4], seed), f32([4, 1], seed + 1), 1);
    const lora = new Map([
      ['unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q', module(20)],
      ['unet.up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q', module(22)],
      ['unet.up_blocks.0.upsamplers.0.conv', loraModule(f32([1, 4, 3, 3], 24), f32([4, 1, 1, 1], 25), 1)],
    ]);
    const report = await mergeLora(basePath, lora, { output: join(dir, 'tiny-merged.safetensors') });
    expect(Object.fromEntries(report)).toEqual({
      [attention('input_blocks.3')]: 'unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q',
      [attention('output_blocks.2')]: 'unet.up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q',
      'model.diffusion_model.output_blocks.1.2.conv.weight': 'unet.up_blocks.0.upsamplers.0.conv',
    });
  });

  it('refuses modules with no base weight, naming them, and writes nothing', async () => {
    const basePath = join(dir, 'lonely.safetensors');
    await writeSafetensors(basePath, { 'other.weight': f32([2, 2], 1) });
    const lora = new Map([
      ['unet.mid_block.attentions.0.proj_out', loraModule(f32([1, 2], 2), f32([2, 1], 3), 1)],
    ]);
    const output = join(dir, 'never.safetensors');
    await expect(mergeLora(basePath, lora, { output })).rejects.toThrow(
      /1 LoRA module.*unet\.mid_block\.attentions\.0\.proj_out.*check that the LoRA was trained on this base model/,
    );
    await expect(mergeLora(basePath, lora, { output })).rejects.not.toThrow(/resolveKey/);
    await expect(readFile(output)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a module whose update does not fit the weight', async () => {
    const basePath = join(dir, 'shape.safetensors');
    await writeSafetensors(basePath, { 'a.weight': f32([3, 3], 1) });
    const lora = new Map([['a', loraModule(f32([1, 2], 2), f32([3, 1], 3), 1)]]);
    await expect(mergeLora(basePath, lora, { output: join(dir, 'x.safetensors') })).rejects.toMatchObject({
      code: 'E_MERGE_MISMATCH',
    });
  });
});
