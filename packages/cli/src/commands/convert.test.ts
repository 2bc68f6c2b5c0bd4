import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '@lora/safetensors';
import { describe, expect, it } from 'vitest';
import { tempDir, writeKohyaLora } from '../test-fixtures.ts';
import { convertFile } from './convert.ts';

describe('convertFile', () => {
  it('round-trips kohya → diffusers → peft → kohya with the same tensors', async () => {
    const dir = tempDir();
    const first = join(dir, 'a.safetensors');
    await writeKohyaLora(first, 3, { ss_output_name: 'neon', sshs_model_hash: 'stale' });
    const original = await readSafetensors(first);

    expect(await convertFile(first, join(dir, 'b.safetensors'), { to: 'diffusers' })).toMatchObject({
      from: 'kohya',
      to: 'diffusers',
      modules: 2,
    });
    const diffusers = await readSafetensors(join(dir, 'b.safetensors'));
    // alpha 1 ≠ rank 2, so diffusers needs the .alpha keys too.
    expect([...diffusers.tensors.keys()].sort()).toEqual([
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.alpha',
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight',
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora.up.weight',
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v.alpha',
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v.lora.down.weight',
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v.lora.up.weight',
    ]);
    // The old hash described other tensors; the rest of the metadata travels.
    expect(diffusers.metadata).toEqual({ format: 'pt', ss_output_name: 'neon' });

    const peftPath = join(dir, 'peft', 'adapter_model.safetensors');
    const toPeft = await convertFile(join(dir, 'b.safetensors'), peftPath, {
      to: 'peft',
      baseModel: 'runwayml/stable-diffusion-v1-5',
    });
    expect(toPeft.adapterConfig).toBe(join(dir, 'peft', 'adapter_config.json'));
    const config = JSON.parse(readFileSync(toPeft.adapterConfig!, 'utf8'));
    expect(config).toMatchObject({
      peft_type: 'LORA',
      r: 2,
      lora_alpha: 1,
      base_model_name_or_path: 'runwayml/stable-diffusion-v1-5',
    });

    // Back to kohya: the PEFT config beside the file supplies alpha, the base model is remembered.
    await convertFile(peftPath, join(dir, 'c.safetensors'), { to: 'kohya' });
    const back = await readSafetensors(join(dir, 'c.safetensors'));
    expect([...back.tensors.keys()].sort()).toEqual([...original.tensors.keys()].sort());
    const bytes = ({ data }: { data: ArrayBufferView }) =>
      Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    for (const [key, tensor] of original.tensors)
      expect(bytes(back.tensors.get(key)!)).toEqual(bytes(tensor));
    expect(back.metadata['sshs_model_hash']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('needs a base model name for PEFT when the input does not carry one', async () => {
    const dir = tempDir();
    await writeKohyaLora(join(dir, 'a.safetensors'), 1);
    await expect(
      convertFile(join(dir, 'a.safetensors'), join(dir, 'out.safetensors'), { to: 'peft' }),
    ).rejects.toMatchObject({
      code: 'E_USAGE',
      message: expect.stringContaining('pass --base-model'),
    });
    expect(existsSync(join(dir, 'out.safetensors'))).toBe(false);
  });
});
