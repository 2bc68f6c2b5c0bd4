import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRng } from '@lora/dataset';
import { readSafetensors } from '@lora/safetensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSdInitAdapter, sdLoraAdapter, writeSdAdapter } from './adapter.ts';

const PATHS = [
  'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0',
  'text_encoder.text_model.encoder.layers.0.self_attn.q_proj',
];
const parameters = (rank: number) =>
  PATHS.flatMap((path) => [
    { name: `${path}.lora_A.weight`, shape: [rank, 8] },
    { name: `${path}.lora_B.weight`, shape: [8, rank] },
  ]);
const network = (rank: number, alpha: number) => ({ network: 'lora' as const, rank, alpha });
const rng = createRng(5);
const values = new Map(
  parameters(2).map((p) => [
    p.name,
    Float32Array.from({ length: p.shape[0]! * p.shape[1]! }, () => rng.normal()),
  ]),
);

let folder: string;
let kohya: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'sd-adapter-'));
  kohya = await writeSdAdapter(folder, sdLoraAdapter(parameters(2), values, network(2, 1)), {
    layout: 'kohya',
    outputName: 'style',
    metadata: { ss_network_dim: '2' },
  });
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

describe('SD adapter files', () => {
  it('names kohya modules from the diffusers paths, dots to underscores', async () => {
    const { tensors, metadata } = await readSafetensors(kohya);
    expect([...tensors.keys()].sort()).toEqual(
      [
        'lora_te_text_model_encoder_layers_0_self_attn_q_proj',
        'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0',
      ].flatMap((n) => [`${n}.alpha`, `${n}.lora_down.weight`, `${n}.lora_up.weight`]),
    );
    expect(Object.keys(metadata).sort()).toEqual(['ss_network_dim', 'sshs_legacy_hash', 'sshs_model_hash']);
  });

  it('reads its own file back as starting values (init_adapter)', async () => {
    const read = await readSdInitAdapter(kohya, parameters(2), network(2, 1));
    expect([...read.keys()]).toEqual([...values.keys()]);
    for (const [name, v] of values) expect(read.get(name)).toEqual(v);
  });

  it.each([
    ['another alpha', parameters(2), network(2, 4), /alpha 1; set lora_alpha: 1/],
    ['another rank', parameters(4), network(4, 1), /has rank 2; set lora_rank: 2/],
    [
      'another variant',
      parameters(2),
      { ...network(2, 1), network: 'dora' as const },
      /no module for .*lora_magnitude_vector|is a lora module; set network: lora/,
    ],
    ['other modules', parameters(2).slice(0, 2), network(2, 1), /1 extra, e\.g\. text_encoder\.text_model/],
  ])('refuses an init_adapter with %s, naming the setting', async (_, params, settings, message) => {
    await expect(readSdInitAdapter(kohya, params, settings)).rejects.toThrow(message);
  });

  it('refuses to write a module without trained values', () => {
    expect(() => sdLoraAdapter(parameters(2), new Map(), network(2, 1))).toThrow(/has no trained value/);
  });
});
