import { describe, expect, it } from 'vitest';
import { diffusersUnetToLdm, ldmUnetLayout, SD_UNET_LAYOUT, type UnetLayout } from './sd-unet-keys.ts';

/**
 * The weight keys of an LDM UNet (one per module) and the diffusers path of each, built the way
 * diffusers' and LDM's constructors lay blocks out, for `attention` levels (down order).
 */
function unet(levels: number, layersPerBlock: number, attention: readonly boolean[]) {
  const ldm = new Map<string, string>(); // diffusers path → LDM module
  const per = layersPerBlock + 1;
  ldm.set('conv_in', 'input_blocks.0.0');
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < layersPerBlock; j++) {
      ldm.set(`down_blocks.${i}.resnets.${j}.conv1`, `input_blocks.${i * per + j + 1}.0.in_layers.2`);
      if (attention[i])
        ldm.set(`down_blocks.${i}.attentions.${j}.proj_in`, `input_blocks.${i * per + j + 1}.1.proj_in`);
    }
    if (i < levels - 1) ldm.set(`down_blocks.${i}.downsamplers.0.conv`, `input_blocks.${(i + 1) * per}.0.op`);
  }
  for (let i = 0; i < levels; i++) {
    const upAttention = attention[levels - 1 - i];
    for (let j = 0; j <= layersPerBlock; j++) {
      ldm.set(`up_blocks.${i}.resnets.${j}.conv_shortcut`, `output_blocks.${i * per + j}.0.skip_connection`);
      if (upAttention)
        ldm.set(`up_blocks.${i}.attentions.${j}.proj_out`, `output_blocks.${i * per + j}.1.proj_out`);
    }
    if (i < levels - 1) {
      ldm.set(
        `up_blocks.${i}.upsamplers.0.conv`,
        `output_blocks.${i * per + layersPerBlock}.${upAttention ? 2 : 1}.conv`,
      );
    }
  }
  ldm.set('mid_block.resnets.1.norm2', 'middle_block.2.out_layers.0');
  const keys = [...ldm.values()].map((module) => `model.diffusion_model.${module}.weight`);
  return { ldm, keys };
}

const UNETS: ReadonlyArray<readonly [string, ReturnType<typeof unet>, UnetLayout]> = [
  ['SD 1.5', unet(4, 2, [true, true, true, false]), SD_UNET_LAYOUT],
  ['SDXL', unet(3, 2, [false, true, true]), { layersPerBlock: 2, attentionUpBlocks: [0, 1] }],
  ['tiny SD (layers_per_block 1)', unet(2, 1, [false, true]), { layersPerBlock: 1, attentionUpBlocks: [0] }],
  ['layers_per_block 3', unet(3, 3, [true, true, true]), { layersPerBlock: 3, attentionUpBlocks: [0, 1, 2] }],
  ['one level', unet(1, 2, [true]), { layersPerBlock: 2, attentionUpBlocks: [0] }],
];

describe('ldmUnetLayout', () => {
  it.each(UNETS)('reads the %s layout from its keys', (_, { keys }, layout) => {
    expect(ldmUnetLayout(keys)).toEqual(layout);
  });

  it('finds no layout in a checkpoint without LDM UNet keys', () => {
    expect(ldmUnetLayout(['down_blocks.0.resnets.0.conv1.weight', 'conv_in.weight'])).toBeUndefined();
  });
});

describe('diffusersUnetToLdm', () => {
  it.each(UNETS)('maps every %s module to its own LDM module', (_, { ldm }, layout) => {
    for (const [path, module] of ldm) expect(diffusersUnetToLdm(path, layout), path).toBe(module);
  });

  it.each([
    ['down_blocks.0.resnets.1.conv1', 1],
    ['down_blocks.1.attentions.1.proj_in', 1],
    ['up_blocks.0.resnets.2.conv1', 1],
    ['down_blocks.0.resnets.2.conv1', 2],
    ['up_blocks.1.attentions.3.proj_in', 2],
    ['mid_block.resnets.2.conv1', 2],
  ])('maps %s to nothing, not into the next block, with layers_per_block %i', (path, layersPerBlock) => {
    expect(diffusersUnetToLdm(path, { layersPerBlock, attentionUpBlocks: [] })).toBeUndefined();
  });

  it.each([
    ['down_blocks.0.attentions.1.proj_in', 'input_blocks.2.1.proj_in'],
    ['down_blocks.2.resnets.1.conv_shortcut', 'input_blocks.8.0.skip_connection'],
    ['down_blocks.1.downsamplers.0.conv', 'input_blocks.6.0.op'],
    ['mid_block.resnets.1.time_emb_proj', 'middle_block.2.emb_layers.1'],
    [
      'mid_block.attentions.0.transformer_blocks.0.attn2.to_k',
      'middle_block.1.transformer_blocks.0.attn2.to_k',
    ],
    ['up_blocks.0.resnets.2.conv2', 'output_blocks.2.0.out_layers.3'],
    ['up_blocks.3.attentions.2.proj_out', 'output_blocks.11.1.proj_out'],
    ['up_blocks.0.upsamplers.0.conv', 'output_blocks.2.1.conv'],
    ['up_blocks.2.upsamplers.0.conv', 'output_blocks.8.2.conv'],
    ['time_embedding.linear_2', 'time_embed.2'],
    ['conv_in', 'input_blocks.0.0'],
  ])('SD 1.5 by default: %s → %s', (diffusers, ldm) => {
    expect(diffusersUnetToLdm(diffusers)).toBe(ldm);
  });
});
