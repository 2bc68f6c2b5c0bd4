import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loraModule, toPeft } from '@lora/adapters';
import { readSafetensors, writeSafetensors } from '@lora/safetensors';
import { describe, expect, it } from 'vitest';
import { f32, floats, tempDir, writeKohyaLora } from '../test-fixtures.ts';
import { convertFile } from './convert.ts';

describe('convertFile', () => {
  it('converts kohya → diffusers (alpha baked into up, no .alpha keys) → kohya with the same updates', async () => {
    const dir = tempDir();
    const first = join(dir, 'a.safetensors');
    const lora = await writeKohyaLora(first, 3, { ss_output_name: 'neon', sshs_model_hash: 'stale' });

    expect(await convertFile(first, join(dir, 'b.safetensors'), { to: 'diffusers' })).toMatchObject({
      from: 'kohya',
      to: 'diffusers',
      modules: 2,
    });
    const diffusers = await readSafetensors(join(dir, 'b.safetensors'));
    // diffusers' format has no alpha: alpha 1 / rank 2 is in the up weights instead.
    expect([...diffusers.tensors.keys()].sort()).toEqual([
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight',
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora.up.weight',
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v.lora.down.weight',
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v.lora.up.weight',
    ]);
    // The old hash described other tensors; the rest of the metadata travels.
    expect(diffusers.metadata).toEqual({ format: 'pt', ss_output_name: 'neon' });

    await convertFile(join(dir, 'b.safetensors'), join(dir, 'c.safetensors'), { to: 'kohya' });
    const back = await readSafetensors(join(dir, 'c.safetensors'));
    expect(back.metadata['sshs_model_hash']).toMatch(/^[0-9a-f]{64}$/);
    for (const [path, module] of lora) {
      const name = `lora_unet_${path.slice('unet.'.length).replaceAll('.', '_')}`;
      expect([...floats(back.tensors.get(`${name}.alpha`)!)]).toEqual([2]);
      expect(floats(back.tensors.get(`${name}.lora_down.weight`)!)).toEqual(floats(module.tensors.down!));
      // alpha / rank = 0.5, a power of two: the baked weights are exact.
      expect([...floats(back.tensors.get(`${name}.lora_up.weight`)!)]).toEqual(
        [...floats(module.tensors.up!)].map((value) => value * 0.5),
      );
    }
  });

  it("names an SDXL LoRA's UNet modules as each layout does: kohya's LDM paths, diffusers' own", async () => {
    const dir = tempDir();
    const module = loraModule(
      f32([1, 4], (i) => i + 1),
      f32([4, 1], (i) => i % 2),
      1,
    );
    const kohya = new Map([
      ['lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k', module],
      ['lora_unet_output_blocks_5_2_conv', module],
      ['lora_te2_text_model_encoder_layers_0_self_attn_q_proj', module],
    ]);
    const tensors = new Map(
      [...kohya].flatMap(([name, m]) => [
        [`${name}.lora_down.weight`, m.tensors.down!],
        [`${name}.lora_up.weight`, m.tensors.up!],
        [`${name}.alpha`, f32([], () => 1)],
      ]),
    );
    await writeSafetensors(join(dir, 'xl.safetensors'), tensors);
    await convertFile(join(dir, 'xl.safetensors'), join(dir, 'xl-diffusers.safetensors'), {
      to: 'diffusers',
    });
    const diffusers = [...(await readSafetensors(join(dir, 'xl-diffusers.safetensors'))).tensors.keys()];
    expect(diffusers.filter((k) => k.endsWith('.lora.down.weight')).toSorted()).toEqual([
      'text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora.down.weight',
      'unet.down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k.lora.down.weight',
      'unet.up_blocks.1.upsamplers.0.conv.lora.down.weight',
    ]);
    await convertFile(join(dir, 'xl-diffusers.safetensors'), join(dir, 'xl-back.safetensors'), {
      to: 'kohya',
    });
    const back = [...(await readSafetensors(join(dir, 'xl-back.safetensors'))).tensors.keys()];
    expect(back.filter((k) => k.endsWith('.alpha')).toSorted()).toEqual(
      [...kohya.keys()].map((name) => `${name}.alpha`).toSorted(),
    );
  });

  it('refuses PEFT output for a Stable Diffusion LoRA, pointing to kohya and diffusers, writing nothing', async () => {
    const dir = tempDir();
    await writeKohyaLora(join(dir, 'a.safetensors'), 1);
    const output = join(dir, 'peft', 'adapter_model.safetensors');
    await expect(
      convertFile(join(dir, 'a.safetensors'), output, {
        to: 'peft',
        baseModel: 'runwayml/stable-diffusion-v1-5',
      }),
    ).rejects.toMatchObject({
      code: 'E_USAGE',
      message: expect.stringMatching(/Stable Diffusion LoRA.*--to kohya.*--to diffusers/),
    });
    expect(existsSync(join(dir, 'peft'))).toBe(false);
  });

  it('takes a PEFT adapter folder as input (an LLM adapter, rewritten as PEFT with its alpha)', async () => {
    const dir = tempDir();
    const adapter = new Map([
      [
        'model.layers.0.self_attn.q_proj',
        loraModule(
          f32([2, 4], (i) => i),
          f32([4, 2], (i) => -i),
          8,
        ),
      ],
    ]);
    const { tensors, config } = toPeft(adapter, { baseModelNameOrPath: 'meta-llama/Llama-3.2-1B' });
    mkdirSync(join(dir, 'in'));
    await writeSafetensors(join(dir, 'in', 'adapter_model.safetensors'), tensors);
    writeFileSync(join(dir, 'in', 'adapter_config.json'), JSON.stringify(config));
    const report = await convertFile(join(dir, 'in'), join(dir, 'out', 'adapter_model.safetensors'), {
      to: 'peft',
    });
    expect(report).toMatchObject({ from: 'peft', to: 'peft', modules: 1 });
    expect(JSON.parse(readFileSync(join(dir, 'out', 'adapter_config.json'), 'utf8'))).toMatchObject({
      r: 2,
      lora_alpha: 8,
      base_model_name_or_path: 'meta-llama/Llama-3.2-1B',
    });
    const out = await readSafetensors(join(dir, 'out', 'adapter_model.safetensors'));
    expect(
      floats(out.tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')!),
    ).toEqual(floats(adapter.get('model.layers.0.self_attn.q_proj')!.tensors.up!));
  });

  it('says a folder without adapter_model.safetensors is no LoRA input, instead of EISDIR', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'loras'));
    await expect(
      convertFile(join(dir, 'loras'), join(dir, 'out.safetensors'), { to: 'kohya' }),
    ).rejects.toMatchObject({
      code: 'E_USAGE',
      message: expect.stringMatching(
        /loras is a folder without adapter_model\.safetensors in it; lora convert takes/,
      ),
    });
  });

  it('refuses an existing folder as the output, --overwrite or not, instead of EISDIR', async () => {
    const dir = tempDir();
    const adapter = new Map([
      [
        'model.layers.0.mlp.up_proj',
        loraModule(
          f32([1, 2], (i) => i),
          f32([2, 1], (i) => i),
          1,
        ),
      ],
    ]);
    await writeSafetensors(join(dir, 'a.safetensors'), toPeft(adapter, { baseModelNameOrPath: 'x' }).tensors);
    mkdirSync(join(dir, 'out'));
    for (const overwrite of [false, true]) {
      await expect(
        convertFile(join(dir, 'a.safetensors'), join(dir, 'out'), { to: 'peft', baseModel: 'x', overwrite }),
      ).rejects.toMatchObject({
        code: 'E_USAGE',
        message: expect.stringMatching(
          /out is a folder; name the file to write, such as .*out\/out\.safetensors/,
        ),
      });
    }
  });

  it('needs a base model name for PEFT when the input does not carry one', async () => {
    const dir = tempDir();
    const adapter = new Map([
      [
        'model.layers.0.mlp.up_proj',
        loraModule(
          f32([1, 2], (i) => i),
          f32([2, 1], (i) => i),
          1,
        ),
      ],
    ]);
    // A PEFT file without its adapter_config.json: no base_model_name_or_path to carry over.
    await writeSafetensors(join(dir, 'a.safetensors'), toPeft(adapter, { baseModelNameOrPath: 'x' }).tensors);
    await expect(
      convertFile(join(dir, 'a.safetensors'), join(dir, 'out.safetensors'), { to: 'peft' }),
    ).rejects.toMatchObject({
      code: 'E_USAGE',
      message: expect.stringContaining('pass --base-model'),
    });
    expect(existsSync(join(dir, 'out.safetensors'))).toBe(false);
  });
});
