/**
 * Architecture sizes of the three Stable Diffusion 1.x / 2.x models this package trains with: the
 * UNet, the CLIP text encoder and the VAE encoder. The SD 1.5 values come from
 * `v1-inference.yaml`, the SD 2.x ones from `v2-inference-v.yaml` and OpenCLIP's `ViT-H-14`
 * text tower, both as the diffusers `config.json` files state them; smaller values give the tiny
 * test and demo models of the same architectures. `parse…` read the diffusers / transformers
 * `config.json` of each folder.
 */
import { ModelError } from '../model-error.ts';

export interface UnetConfig {
  readonly inChannels: number;
  readonly outChannels: number;
  /** Channels of each resolution level, highest resolution first. */
  readonly blockOutChannels: readonly number[];
  readonly layersPerBlock: number;
  /** Whether each down block (and its mirrored up block) has Transformer2D blocks. */
  readonly crossAttention: readonly boolean[];
  /** Attention heads per level (diffusers calls this `attention_head_dim`); the mid block uses the last. */
  readonly attentionHeads: readonly number[];
  readonly crossAttentionDim: number;
  readonly normGroups: number;
  readonly normEpsilon: number;
  /**
   * diffusers `use_linear_projection` (LDM `use_linear_in_transformer`, SD 2.x): the transformers'
   * proj_in / proj_out are Linear layers on the flattened tokens instead of 1×1 convolutions.
   */
  readonly linearProjection?: boolean;
}

/** The MLP activation of a CLIP text encoder: OpenAI's CLIP (SD 1.x) uses QuickGELU, OpenCLIP (SD 2.x) exact GELU. */
export type ClipActivation = 'quick_gelu' | 'gelu';

export interface ClipTextConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly maxPositions: number;
  readonly layerNormEpsilon: number;
  /** Default `quick_gelu`. */
  readonly hiddenAct?: ClipActivation;
}

export interface VaeEncoderConfig {
  readonly inChannels: number;
  readonly blockOutChannels: readonly number[];
  readonly layersPerBlock: number;
  readonly latentChannels: number;
  readonly normGroups: number;
  /** Latents = encoder mean (or sample) × this. */
  readonly scalingFactor: number;
}

export interface SdModelConfig {
  readonly unet: UnetConfig;
  readonly textEncoder: ClipTextConfig;
  readonly vae: VaeEncoderConfig;
}

export const SD15_UNET: UnetConfig = {
  inChannels: 4,
  outChannels: 4,
  blockOutChannels: [320, 640, 1280, 1280],
  layersPerBlock: 2,
  crossAttention: [true, true, true, false],
  attentionHeads: [8, 8, 8, 8],
  crossAttentionDim: 768,
  normGroups: 32,
  normEpsilon: 1e-5,
};

export const SD15_TEXT_ENCODER: ClipTextConfig = {
  vocabSize: 49408,
  hiddenSize: 768,
  intermediateSize: 3072,
  numLayers: 12,
  numHeads: 12,
  maxPositions: 77,
  layerNormEpsilon: 1e-5,
};

export const SD15_VAE: VaeEncoderConfig = {
  inChannels: 3,
  blockOutChannels: [128, 256, 512, 512],
  layersPerBlock: 2,
  latentChannels: 4,
  normGroups: 32,
  scalingFactor: 0.18215,
};

export const SD15: SdModelConfig = { unet: SD15_UNET, textEncoder: SD15_TEXT_ENCODER, vae: SD15_VAE };

/** SD 2.x (v2-inference(-v).yaml): 64 channels per attention head, linear projections, 1024-wide context. */
export const SD21_UNET: UnetConfig = {
  ...SD15_UNET,
  attentionHeads: [5, 10, 20, 20],
  crossAttentionDim: 1024,
  linearProjection: true,
};

/**
 * OpenCLIP ViT-H/14's text tower as SD 2.x runs it: 24 layers, of which the last is never run
 * (ldm's FrozenOpenCLIPEmbedder takes the penultimate layer, then ln_final), so 23 layers, as
 * kohya and the diffusers `text_encoder/config.json` of SD 2.x have them.
 */
export const SD21_TEXT_ENCODER: ClipTextConfig = {
  vocabSize: 49408,
  hiddenSize: 1024,
  intermediateSize: 4096,
  numLayers: 23,
  numHeads: 16,
  maxPositions: 77,
  layerNormEpsilon: 1e-5,
  hiddenAct: 'gelu',
};

export const SD21: SdModelConfig = { unet: SD21_UNET, textEncoder: SD21_TEXT_ENCODER, vae: SD15_VAE };

/** Stable Diffusion 1.x (OpenAI CLIP ViT-L/14) or 2.x (OpenCLIP ViT-H/14, linear projections, v-prediction at 768). */
export type SdFamily = 'sd1' | 'sd2';

export const SD_FAMILY_NAMES: Readonly<Record<SdFamily, string>> = {
  sd1: 'Stable Diffusion 1.x',
  sd2: 'Stable Diffusion 2.x',
};

/** The family of a model's sizes: an OpenCLIP text encoder (exact GELU) is SD 2.x's. */
export const sdFamilyOf = (config: SdModelConfig): SdFamily =>
  config.textEncoder.hiddenAct === 'gelu' ? 'sd2' : 'sd1';

type Json = Readonly<Record<string, unknown>>;

function reader(json: unknown, file: string) {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ModelError('E_MODEL_CONFIG', `${file} must hold a JSON object`);
  }
  const object = json as Json;
  const fail = (key: string, want: string): never => {
    throw new ModelError(
      'E_MODEL_CONFIG',
      `${file}: "${key}" must be ${want}, got ${JSON.stringify(object[key])}`,
    );
  };
  const count = (key: string, fallback?: number): number => {
    const value = object[key] ?? fallback;
    return Number.isInteger(value) && (value as number) > 0
      ? (value as number)
      : fail(key, 'a positive integer');
  };
  const real = (key: string, fallback: number): number => {
    const value = object[key] ?? fallback;
    return typeof value === 'number' && value > 0 ? value : fail(key, 'a positive number');
  };
  const counts = (key: string): number[] => {
    const value = object[key];
    return Array.isArray(value) && value.length > 0 && value.every((v) => Number.isInteger(v) && v > 0)
      ? (value as number[])
      : fail(key, 'a non-empty list of positive integers');
  };
  const strings = (key: string, length: number): string[] => {
    const value = object[key];
    return Array.isArray(value) && value.length === length && value.every((v) => typeof v === 'string')
      ? (value as string[])
      : fail(key, `a list of ${length} block type names`);
  };
  const flag = (key: string): boolean => {
    const value = object[key] ?? false;
    return typeof value === 'boolean' ? value : fail(key, 'true or false');
  };
  return { object, fail, count, real, counts, strings, flag };
}

const DOWN_BLOCKS: Readonly<Record<string, boolean>> = { CrossAttnDownBlock2D: true, DownBlock2D: false };

/**
 * A diffusers `unet/config.json` of an SD 1.x / 2.x UNet2DConditionModel. Its `attention_head_dim`
 * holds heads per level (SD 2.x: `[5, 10, 20, 20]`, 64 channels each), a misnomer diffusers keeps.
 */
export function parseUnetConfig(json: unknown, file = 'unet/config.json'): UnetConfig {
  const r = reader(json, file);
  const blockOutChannels = r.counts('block_out_channels');
  const levels = blockOutChannels.length;
  const crossAttention = r.strings('down_block_types', levels).map((type) => {
    const attention = DOWN_BLOCKS[type];
    return (
      attention ?? r.fail('down_block_types', `CrossAttnDownBlock2D or DownBlock2D entries (got ${type})`)
    );
  });
  const expectedUp = crossAttention.map((a) => (a ? 'CrossAttnUpBlock2D' : 'UpBlock2D')).reverse();
  if (r.strings('up_block_types', levels).some((type, i) => type !== expectedUp[i])) {
    r.fail('up_block_types', `the mirror of down_block_types: ${JSON.stringify(expectedUp)}`);
  }
  const heads = r.object['attention_head_dim'] ?? 8;
  const attentionHeads = Array.isArray(heads)
    ? r.counts('attention_head_dim')
    : [r.count('attention_head_dim', 8)];
  if (attentionHeads.length !== 1 && attentionHeads.length !== levels) {
    r.fail('attention_head_dim', `one number or one per block (${levels})`);
  }
  for (const [key, want] of [
    ['flip_sin_to_cos', true],
    ['freq_shift', 0],
    ['act_fn', 'silu'],
  ] as const) {
    if (key in r.object && r.object[key] !== want) r.fail(key, JSON.stringify(want));
  }
  return {
    inChannels: r.count('in_channels', 4),
    outChannels: r.count('out_channels', 4),
    blockOutChannels,
    layersPerBlock: r.count('layers_per_block', 2),
    crossAttention,
    attentionHeads: blockOutChannels.map((_, i) => attentionHeads[attentionHeads.length === 1 ? 0 : i]!),
    crossAttentionDim: r.count('cross_attention_dim', 1280),
    normGroups: r.count('norm_num_groups', 32),
    normEpsilon: r.real('norm_eps', 1e-5),
    ...(r.flag('use_linear_projection') ? { linearProjection: true } : {}),
  };
}

/** A transformers `text_encoder/config.json` of a CLIPTextModel (QuickGELU: SD 1.x, GELU: SD 2.x). */
export function parseClipTextConfig(json: unknown, file = 'text_encoder/config.json'): ClipTextConfig {
  const r = reader(json, file);
  const act = r.object['hidden_act'] ?? 'quick_gelu';
  if (act !== 'quick_gelu' && act !== 'gelu') r.fail('hidden_act', '"quick_gelu" or "gelu"');
  return {
    vocabSize: r.count('vocab_size', 49408),
    hiddenSize: r.count('hidden_size', 512),
    intermediateSize: r.count('intermediate_size', 2048),
    numLayers: r.count('num_hidden_layers', 12),
    numHeads: r.count('num_attention_heads', 8),
    maxPositions: r.count('max_position_embeddings', 77),
    layerNormEpsilon: r.real('layer_norm_eps', 1e-5),
    ...(act === 'gelu' ? { hiddenAct: 'gelu' as const } : {}),
  };
}

/** A diffusers `vae/config.json` of an AutoencoderKL (only the encoder half is read). */
export function parseVaeConfig(json: unknown, file = 'vae/config.json'): VaeEncoderConfig {
  const r = reader(json, file);
  const blockOutChannels = r.counts('block_out_channels');
  if (
    'down_block_types' in r.object &&
    r.strings('down_block_types', blockOutChannels.length).some((t) => t !== 'DownEncoderBlock2D')
  ) {
    r.fail('down_block_types', 'DownEncoderBlock2D entries');
  }
  return {
    inChannels: r.count('in_channels', 3),
    blockOutChannels,
    layersPerBlock: r.count('layers_per_block', 1),
    latentChannels: r.count('latent_channels', 4),
    normGroups: r.count('norm_num_groups', 32),
    scalingFactor: r.real('scaling_factor', 0.18215),
  };
}
