import { diffusersUnetToLdm, ldmUnetLayout, unetKeyToDiffusers } from '@lora/adapters';
import { describe, expect, it } from 'vitest';
import { SD15_UNET } from './config.ts';
import { normalizeClipKey, normalizeDiffusersVaeKey, openClipKeyToClip, vaeKeyToDiffusers } from './keys.ts';
import { LoraPlan } from './layers.ts';
import { ldmUnet, openClipTextModel } from './ldm-layout.ts';

describe('LDM UNet keys → diffusers (SD 1.5 numbering, refs/formats.md §2)', () => {
  it.each([
    ['time_embed.0.weight', 'time_embedding.linear_1.weight'],
    ['time_embed.2.bias', 'time_embedding.linear_2.bias'],
    ['input_blocks.0.0.weight', 'conv_in.weight'],
    ['out.0.weight', 'conv_norm_out.weight'],
    ['out.2.bias', 'conv_out.bias'],
    ['input_blocks.1.0.in_layers.0.weight', 'down_blocks.0.resnets.0.norm1.weight'],
    ['input_blocks.1.0.in_layers.2.weight', 'down_blocks.0.resnets.0.conv1.weight'],
    ['input_blocks.2.1.proj_in.weight', 'down_blocks.0.attentions.1.proj_in.weight'],
    ['input_blocks.3.0.op.weight', 'down_blocks.0.downsamplers.0.conv.weight'],
    ['input_blocks.4.0.skip_connection.weight', 'down_blocks.1.resnets.0.conv_shortcut.weight'],
    [
      'input_blocks.8.1.transformer_blocks.0.attn1.to_out.0.bias',
      'down_blocks.2.attentions.1.transformer_blocks.0.attn1.to_out.0.bias',
    ],
    ['input_blocks.9.0.op.bias', 'down_blocks.2.downsamplers.0.conv.bias'],
    ['input_blocks.11.0.emb_layers.1.weight', 'down_blocks.3.resnets.1.time_emb_proj.weight'],
    ['middle_block.0.out_layers.3.weight', 'mid_block.resnets.0.conv2.weight'],
    [
      'middle_block.1.transformer_blocks.0.attn2.to_k.weight',
      'mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight',
    ],
    ['middle_block.2.out_layers.0.bias', 'mid_block.resnets.1.norm2.bias'],
    ['output_blocks.0.0.in_layers.2.weight', 'up_blocks.0.resnets.0.conv1.weight'],
    ['output_blocks.2.1.conv.weight', 'up_blocks.0.upsamplers.0.conv.weight'],
    ['output_blocks.5.2.conv.weight', 'up_blocks.1.upsamplers.0.conv.weight'],
    ['output_blocks.6.0.skip_connection.bias', 'up_blocks.2.resnets.0.conv_shortcut.bias'],
    [
      'output_blocks.11.1.transformer_blocks.0.ff.net.0.proj.weight',
      'up_blocks.3.attentions.2.transformer_blocks.0.ff.net.0.proj.weight',
    ],
    ['output_blocks.11.1.proj_out.weight', 'up_blocks.3.attentions.2.proj_out.weight'],
  ])('%s → %s', (ldm, diffusers) => {
    expect(unetKeyToDiffusers(ldm, 2)).toBe(diffusers);
  });

  it.each([
    ['input_blocks.2.0.op.weight', 'down_blocks.0.downsamplers.0.conv.weight'],
    ['input_blocks.3.1.norm.weight', 'down_blocks.1.attentions.0.norm.weight'],
    ['output_blocks.1.1.conv.weight', 'up_blocks.0.upsamplers.0.conv.weight'],
    ['output_blocks.3.2.conv.bias', 'up_blocks.1.upsamplers.0.conv.bias'],
  ])('one resnet per down block: %s → %s', (ldm, diffusers) => {
    expect(unetKeyToDiffusers(ldm, 1)).toBe(diffusers);
  });

  it.each([
    'input_blocks.1.0.in_layers.1.weight',
    'input_blocks.1.0.in_layers.0x.weight',
    'input_blocks.3.1.op.weight',
    'input_blocks.1.2.norm.weight',
    'output_blocks.3.1.conv.weight',
    'middle_block.3.in_layers.0.weight',
    'time_embed.1.weight',
    'label_emb.0.1.weight',
  ])('%s fits no rule (null)', (ldm) => {
    expect(unetKeyToDiffusers(ldm, 2)).toBeNull();
  });

  it.each([
    ['label_emb.0.0.weight', 'add_embedding.linear_1.weight'],
    ['label_emb.0.2.bias', 'add_embedding.linear_2.bias'],
  ])("SDXL's %s → %s", (ldm, diffusers) => {
    expect(unetKeyToDiffusers(ldm, 2)).toBe(diffusers);
  });
});

describe('the one UNet key table, both directions', () => {
  it.each([
    ['SD 1.5', SD15_UNET],
    ['layers_per_block 1, attention only at the lowest level', { ...SD15_UNET, layersPerBlock: 1 }],
  ])('maps every %s UNet weight LDM → diffusers → LDM back to itself', (_, config) => {
    const keys = ldmUnet(config).map(([key]) => key);
    const layout = ldmUnetLayout(keys.map((key) => `model.diffusion_model.${key}`))!;
    expect(layout.layersPerBlock).toBe(config.layersPerBlock);
    for (const key of keys) {
      const diffusers = unetKeyToDiffusers(key, config.layersPerBlock);
      expect(diffusers, key).not.toBeNull();
      const [module, param] = [
        diffusers!.slice(0, diffusers!.lastIndexOf('.')),
        diffusers!.split('.').at(-1),
      ];
      expect(`${diffusersUnetToLdm(module, layout)}.${param}`, key).toBe(key);
    }
  });
});

describe('LDM VAE keys → diffusers', () => {
  it.each([
    ['encoder.conv_in.weight', 'encoder.conv_in.weight'],
    ['encoder.down.0.block.1.norm1.weight', 'encoder.down_blocks.0.resnets.1.norm1.weight'],
    ['encoder.down.1.block.0.nin_shortcut.weight', 'encoder.down_blocks.1.resnets.0.conv_shortcut.weight'],
    ['encoder.down.2.downsample.conv.bias', 'encoder.down_blocks.2.downsamplers.0.conv.bias'],
    ['encoder.mid.block_2.conv2.weight', 'encoder.mid_block.resnets.1.conv2.weight'],
    ['encoder.mid.attn_1.norm.bias', 'encoder.mid_block.attentions.0.group_norm.bias'],
    ['encoder.mid.attn_1.q.weight', 'encoder.mid_block.attentions.0.to_q.weight'],
    ['encoder.mid.attn_1.proj_out.weight', 'encoder.mid_block.attentions.0.to_out.0.weight'],
    ['encoder.norm_out.weight', 'encoder.conv_norm_out.weight'],
    ['quant_conv.weight', 'quant_conv.weight'],
    // LDM numbers the decoder's up blocks from the bottom (4 levels in SD 1.x).
    ['decoder.up.0.block.0.conv1.weight', 'decoder.up_blocks.3.resnets.0.conv1.weight'],
    ['decoder.up.3.block.2.nin_shortcut.bias', 'decoder.up_blocks.0.resnets.2.conv_shortcut.bias'],
    ['decoder.up.2.upsample.conv.weight', 'decoder.up_blocks.1.upsamplers.0.conv.weight'],
    ['decoder.mid.attn_1.proj_out.bias', 'decoder.mid_block.attentions.0.to_out.0.bias'],
    ['decoder.mid.block_1.norm2.weight', 'decoder.mid_block.resnets.0.norm2.weight'],
    ['decoder.norm_out.bias', 'decoder.conv_norm_out.bias'],
    ['decoder.conv_out.weight', 'decoder.conv_out.weight'],
    ['post_quant_conv.bias', 'post_quant_conv.bias'],
    ['decoder.up.4.block.0.conv1.weight', null],
    ['decoder.down.0.block.0.conv1.weight', null],
    ['encoder.mid.attn_2.q.weight', null],
    ['encoder.down.0.block.0.conv3.weight', null],
  ])('%s → %s', (ldm, diffusers) => {
    expect(vaeKeyToDiffusers(ldm, 4)).toBe(diffusers);
  });

  it.each([
    ['encoder.mid_block.attentions.0.query.weight', 'encoder.mid_block.attentions.0.to_q.weight'],
    ['encoder.mid_block.attentions.0.proj_attn.bias', 'encoder.mid_block.attentions.0.to_out.0.bias'],
    ['encoder.mid_block.attentions.0.to_k.weight', 'encoder.mid_block.attentions.0.to_k.weight'],
    ['encoder.down_blocks.0.resnets.0.conv1.weight', 'encoder.down_blocks.0.resnets.0.conv1.weight'],
    ['decoder.mid_block.attentions.0.key.bias', 'decoder.mid_block.attentions.0.to_k.bias'],
    ['decoder.conv_in.weight', 'decoder.conv_in.weight'],
  ])('diffusers folder %s → %s', (key, normalized) => {
    expect(normalizeDiffusersVaeKey(key)).toBe(normalized);
  });
});

describe('names of Object.prototype in a key', () => {
  it('find nothing in the key tables (no inherited property is taken for a name)', () => {
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      expect(unetKeyToDiffusers(`input_blocks.1.0.${name}.weight`, 2)).toBeNull();
      expect(unetKeyToDiffusers(`${name}.weight`, 2)).toBeNull();
      expect(diffusersUnetToLdm(name)).toBeUndefined();
      expect(diffusersUnetToLdm(`down_blocks.0.resnets.0.${name}`)).toBeUndefined();
      expect(vaeKeyToDiffusers(`encoder.down.0.block.0.${name}.weight`, 4)).toBeNull();
      expect(vaeKeyToDiffusers(`encoder.mid.attn_1.${name}.weight`, 4)).toBeNull();
      expect(normalizeDiffusersVaeKey(`encoder.mid_block.attentions.0.${name}.weight`)).toBe(
        `encoder.mid_block.attentions.0.${name}.weight`,
      );
    }
  });
});

describe('CLIP keys', () => {
  it.each([
    ['text_model.encoder.layers.3.mlp.fc1.bias', 'text_model.encoder.layers.3.mlp.fc1.bias'],
    ['embeddings.token_embedding.weight', 'text_model.embeddings.token_embedding.weight'],
    ['final_layer_norm.weight', 'text_model.final_layer_norm.weight'],
    ['text_model.embeddings.position_ids', undefined],
  ])('%s → %s', (key, normalized) => {
    expect(normalizeClipKey(key)).toBe(normalized);
  });
});

describe('OpenCLIP text-tower keys (SD 2.x single files) → transformers CLIP', () => {
  it.each([
    ['token_embedding.weight', [{ key: 'text_model.embeddings.token_embedding.weight' }]],
    ['positional_embedding', [{ key: 'text_model.embeddings.position_embedding.weight' }]],
    ['ln_final.bias', [{ key: 'text_model.final_layer_norm.bias' }]],
    ['transformer.resblocks.0.ln_1.weight', [{ key: 'text_model.encoder.layers.0.layer_norm1.weight' }]],
    ['transformer.resblocks.7.ln_2.bias', [{ key: 'text_model.encoder.layers.7.layer_norm2.bias' }]],
    ['transformer.resblocks.22.mlp.c_fc.weight', [{ key: 'text_model.encoder.layers.22.mlp.fc1.weight' }]],
    ['transformer.resblocks.3.mlp.c_proj.bias', [{ key: 'text_model.encoder.layers.3.mlp.fc2.bias' }]],
    [
      'transformer.resblocks.3.attn.out_proj.weight',
      [{ key: 'text_model.encoder.layers.3.self_attn.out_proj.weight' }],
    ],
    [
      'transformer.resblocks.12.attn.in_proj_bias',
      ['q_proj', 'k_proj', 'v_proj'].map((p, part) => ({
        key: `text_model.encoder.layers.12.self_attn.${p}.bias`,
        part,
      })),
    ],
    // SD 2.x never runs the last resblock, nor the contrastive head.
    ['transformer.resblocks.23.attn.in_proj_weight', undefined],
    ['transformer.resblocks.23.ln_2.weight', undefined],
    ['text_projection', undefined],
    ['logit_scale', undefined],
    ['transformer.resblocks.24.ln_1.weight', null],
    ['transformer.resblocks.0.attn.qkv.weight', null],
    ['transformer.resblocks.0.constructor.weight', null],
    ['constructor', null],
  ])('%s', (key, expected) => {
    expect(openClipKeyToClip(key, 23)).toEqual(expected);
  });

  it("maps every key of ViT-H/14's text tower to a distinct CLIPTextModel name, or skips it", () => {
    const mapped = openClipTextModel().flatMap(([key]) => openClipKeyToClip(key, 23) ?? []);
    // 23 layers × 16 names (q, k, v and out of the attention, both norms and MLP linears, weight and bias) + 4.
    expect(new Set(mapped.map((t) => t.key)).size).toBe(mapped.length);
    expect(mapped).toHaveLength(23 * 16 + 4);
  });
});

describe('LoRA targets match whole path segments', () => {
  it.each([
    ['to_q', 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q', true],
    ['to_out', 'mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0', true],
    ['ff', 'up_blocks.1.attentions.2.transformer_blocks.0.ff.net.0.proj', true],
    ['ff', 'up_blocks.1.attentions.2.transformer_blocks.0.ff.net.2', true],
    ['proj_in', 'down_blocks.0.attentions.0.proj_in', true],
    ['attn2', 'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v', true],
    ['to', 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q', false],
    ['to_q', 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_qx', false],
    ['proj', 'down_blocks.0.attentions.0.proj_in', false],
    ['q_proj', 'text_model.encoder.layers.0.self_attn.q_proj', true],
    ['fc1', 'text_model.encoder.layers.11.mlp.fc1', true],
  ])('%s in %s: %s', (target, path, wanted) => {
    expect(new LoraPlan('unet', [target], { rank: 1, alpha: 1 }).wants(path)).toBe(wanted);
  });
});
