import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kohyaMetadata, loraModule, pythonFloat, toPeft } from '@lora/adapters';
import { writeSafetensors } from '@lora/safetensors';
import { describe, expect, it } from 'vitest';
import { f32, tempDir, writeBase, writeKohyaLora } from '../test-fixtures.ts';
import { describeCheckpoint, formatInspect, inspectFile, topTags, trainingMetadata } from './inspect.ts';

describe('inspectFile', () => {
  it('summarises a kohya LoRA: layout, modules, rank, alpha and its training metadata', async () => {
    const dir = tempDir();
    const path = join(dir, 'style.safetensors');
    await writeKohyaLora(
      path,
      1,
      kohyaMetadata({
        ss_output_name: 'neon',
        ss_network_dim: 2,
        ss_network_alpha: pythonFloat(1),
        ss_sd_model_name: 'v1-5-pruned-emaonly.safetensors',
        ss_training_started_at: 1_700_000_000,
        ss_tag_frequency: { '10_neon': { neon: 5, city: 3 }, '5_rain': { rain: 4, neon: 1 } },
        ss_lr_scheduler: 'None',
      }),
    );
    const report = await inspectFile(path);
    expect(report).toMatchObject({
      layout: 'kohya',
      tensorCount: 6, // down, up, alpha × 2 modules
      parameters: 2 * (16 + 16 + 1),
      lora: { modules: 2, ranks: { 2: 2 }, alphas: { 1: 2 }, components: { unet: 2 } },
      topTags: [
        { tag: 'neon', count: 6 },
        { tag: 'rain', count: 4 },
        { tag: 'city', count: 3 },
      ],
    });
    expect(report.training).toEqual({
      name: 'neon',
      rank: '2',
      alpha: '1.0',
      'base model': 'v1-5-pruned-emaonly.safetensors',
      started: '2023-11-14T22:13:20.000Z',
    });
    const text = formatInspect(report, 2);
    expect(text).toContain('layout: kohya LoRA');
    expect(text).toMatch(/top tags\s+neon \(6\), rain \(4\), city \(3\)/);
    expect(text).toContain('tensors (first 2 of 6;');
  });

  it('calls a file without LoRA names a full checkpoint and says which kind', async () => {
    const dir = tempDir();
    await writeBase(join(dir, 'base.safetensors'));
    const report = await inspectFile(join(dir, 'base.safetensors'));
    expect(report.layout).toBe('checkpoint');
    expect(report.lora).toBeUndefined();
    expect(report.dtypes).toEqual({ F32: { tensors: 3, bytes: (64 + 64 + 8) * 4 } });
    expect(report.checkpoint).toBe('diffusers UNet');
    expect(formatInspect(report)).toContain('layout: full checkpoint (diffusers UNet), no LoRA tensors');
  });
});

describe('inspectFile inputs', () => {
  it('says a folder is not a file, instead of EISDIR', async () => {
    const dir = tempDir();
    await expect(inspectFile(dir)).rejects.toMatchObject({
      code: 'E_USAGE',
      message: `${dir} is a folder without adapter_model.safetensors in it; lora inspect takes one .safetensors file (a LoRA or a checkpoint) or a PEFT adapter folder holding adapter_model.safetensors.`,
    });
  });

  it('inspects the adapter_model.safetensors of a PEFT adapter folder', async () => {
    const dir = tempDir();
    const adapter = new Map([
      [
        'model.layers.0.self_attn.q_proj',
        loraModule(
          f32([2, 4], (i) => i),
          f32([4, 2], (i) => i),
          16,
        ),
      ],
    ]);
    const { tensors, config } = toPeft(adapter, { baseModelNameOrPath: 'x' });
    await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors);
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(config));
    expect(await inspectFile(dir)).toMatchObject({
      file: join(dir, 'adapter_model.safetensors'),
      layout: 'peft',
      lora: { modules: 1, ranks: { 2: 1 }, alphas: { 16: 1 } },
    });
  });
});

describe('describeCheckpoint', () => {
  it.each([
    [
      ['model.diffusion_model.input_blocks.0.0.weight'],
      'Stable Diffusion single-file checkpoint (original LDM keys)',
    ],
    [
      ['model.diffusion_model.label_emb.0.0.weight', 'conditioner.embedders.1.model.text_projection'],
      'Stable Diffusion XL single-file checkpoint (sgm keys)',
    ],
    [['conv_in.weight', 'down_blocks.0.resnets.0.conv1.weight'], 'diffusers UNet'],
    [['text_model.encoder.layers.0.mlp.fc1.weight'], 'CLIP text encoder'],
    [['model.embed_tokens.weight', 'model.layers.0.mlp.up_proj.weight'], 'transformers decoder LLM'],
    [['weight'], undefined],
  ])('%j → %s', (names, kind) => expect(describeCheckpoint(names)).toBe(kind));
});

describe('metadata helpers', () => {
  it('leaves out unset values and unknown keys', () => {
    expect(trainingMetadata({ ss_network_dim: '16', ss_optimizer: 'None', ss_seed: '42' })).toEqual({
      rank: '16',
    });
  });

  it.each([
    [undefined, []],
    ['not json', []],
    ['[1, 2]', []],
    ['{"a": {"x": 1, "y": "2"}, "b": 3}', [{ tag: 'x', count: 1 }]],
    [
      '{"a": {"b": 2, "a": 2, "c": 9}}',
      [
        { tag: 'c', count: 9 },
        { tag: 'a', count: 2 },
      ],
    ],
  ])('topTags(%j) → %j', (value, tags) => expect(topTags(value, 2)).toEqual(tags));
});
