import { describe, expect, it } from 'vitest';
import { ModelError } from '../model-error.ts';
import {
  parseClipTextConfig,
  parseUnetConfig,
  parseVaeConfig,
  SD15_TEXT_ENCODER,
  SD15_UNET,
  SD15_VAE,
  SD21_TEXT_ENCODER,
  SD21_UNET,
  sdFamilyOf,
} from './config.ts';

/** The SD 1.5 diffusers config.json files (runwayml/stable-diffusion-v1-5, as quoted in refs/formats.md). */
const SD15_UNET_JSON = {
  _class_name: 'UNet2DConditionModel',
  act_fn: 'silu',
  attention_head_dim: 8,
  block_out_channels: [320, 640, 1280, 1280],
  center_input_sample: false,
  cross_attention_dim: 768,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  sample_size: 64,
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
};
const SD15_TEXT_ENCODER_JSON = {
  architectures: ['CLIPTextModel'],
  hidden_act: 'quick_gelu',
  hidden_size: 768,
  intermediate_size: 3072,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 77,
  num_attention_heads: 12,
  num_hidden_layers: 12,
  vocab_size: 49408,
};
const SD15_VAE_JSON = {
  _class_name: 'AutoencoderKL',
  block_out_channels: [128, 256, 512, 512],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  in_channels: 3,
  latent_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 512,
};

/** What stabilityai/stable-diffusion-2-1 changes in them (unet/, text_encoder/config.json). */
const SD21_UNET_JSON = {
  ...SD15_UNET_JSON,
  attention_head_dim: [5, 10, 20, 20],
  cross_attention_dim: 1024,
  sample_size: 96,
  use_linear_projection: true,
};
const SD21_TEXT_ENCODER_JSON = {
  ...SD15_TEXT_ENCODER_JSON,
  hidden_act: 'gelu',
  hidden_size: 1024,
  intermediate_size: 4096,
  num_attention_heads: 16,
  num_hidden_layers: 23,
  projection_dim: 512,
};

describe('diffusers / transformers config.json files', () => {
  it('the SD 1.5 files give the built-in SD 1.5 sizes', () => {
    expect(parseUnetConfig(SD15_UNET_JSON)).toEqual(SD15_UNET);
    expect(parseClipTextConfig(SD15_TEXT_ENCODER_JSON)).toEqual(SD15_TEXT_ENCODER);
    expect(parseVaeConfig(SD15_VAE_JSON)).toEqual(SD15_VAE);
  });

  it('the SD 2.1 files give the built-in SD 2.x sizes: heads of 64 channels, linear projections, OpenCLIP with GELU', () => {
    expect(parseUnetConfig(SD21_UNET_JSON)).toEqual(SD21_UNET);
    expect(parseClipTextConfig(SD21_TEXT_ENCODER_JSON)).toEqual(SD21_TEXT_ENCODER);
    const vae = parseVaeConfig(SD15_VAE_JSON);
    expect(sdFamilyOf({ unet: SD21_UNET, textEncoder: SD21_TEXT_ENCODER, vae })).toBe('sd2');
    expect(sdFamilyOf({ unet: SD15_UNET, textEncoder: SD15_TEXT_ENCODER, vae })).toBe('sd1');
  });

  it('a per-block attention_head_dim list is kept per level', () => {
    expect(
      parseUnetConfig({ ...SD15_UNET_JSON, attention_head_dim: [5, 10, 20, 20] }).attentionHeads,
    ).toEqual([5, 10, 20, 20]);
  });

  it.each<[string, () => unknown, RegExp]>([
    ['not an object', () => parseUnetConfig([]), /unet\/config\.json must hold a JSON object/],
    [
      'an unknown down block',
      () => parseUnetConfig({ ...SD15_UNET_JSON, down_block_types: ['A', 'B', 'C', 'D'] }),
      /"down_block_types" must be CrossAttnDownBlock2D or DownBlock2D entries \(got A\)/,
    ],
    [
      'up blocks that do not mirror the down blocks',
      () =>
        parseUnetConfig({
          ...SD15_UNET_JSON,
          up_block_types: ['UpBlock2D', 'UpBlock2D', 'UpBlock2D', 'UpBlock2D'],
        }),
      /"up_block_types" must be the mirror of down_block_types/,
    ],
    [
      'a use_linear_projection that is not a boolean',
      () => parseUnetConfig({ ...SD15_UNET_JSON, use_linear_projection: 'yes' }),
      /"use_linear_projection" must be true or false, got "yes"/,
    ],
    [
      'a block count that differs from the channels',
      () => parseUnetConfig({ ...SD15_UNET_JSON, block_out_channels: [320, 640] }),
      /"down_block_types" must be a list of 2 block type names/,
    ],
    [
      'a non-integer size',
      () => parseClipTextConfig({ ...SD15_TEXT_ENCODER_JSON, hidden_size: 76.8 }),
      /text_encoder\/config\.json: "hidden_size" must be a positive integer, got 76\.8/,
    ],
    [
      'another activation',
      () => parseClipTextConfig({ ...SD15_TEXT_ENCODER_JSON, hidden_act: 'relu' }),
      /"hidden_act" must be "quick_gelu" or "gelu", got "relu"/,
    ],
    [
      'a VAE with attention down blocks',
      () =>
        parseVaeConfig({
          ...SD15_VAE_JSON,
          down_block_types: [
            'AttnDownEncoderBlock2D',
            'DownEncoderBlock2D',
            'DownEncoderBlock2D',
            'DownEncoderBlock2D',
          ],
        }),
      /vae\/config\.json: "down_block_types" must be DownEncoderBlock2D entries/,
    ],
  ])('refuses %s', (_, parse, message) => {
    let error: unknown;
    try {
      parse();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ModelError);
    expect((error as ModelError).code).toBe('E_MODEL_CONFIG');
    expect((error as Error).message).toMatch(message);
  });
});
