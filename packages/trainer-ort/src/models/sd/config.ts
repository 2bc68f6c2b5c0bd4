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
  /** BasicTransformerBlocks per Transformer2D of each level (diffusers `transformer_layers_per_block`; SDXL 1, 2, 10); default 1. The mid block takes the last. */
  readonly transformerDepth?: readonly number[];
  /**
   * SDXL's `text_time` condition (sgm `label_emb`, diffusers `add_embedding`): the pooled text
   * embedding and six size / crop values, each through a `timeEmbedDim` sinusoidal embedding, go
   * through Linear(inputDim → 4·channels), SiLU, Linear, added to the timestep embedding.
   */
  readonly textTime?: { readonly timeEmbedDim: number; readonly inputDim: number };
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
  /** CLIPTextModelWithProjection's `projection_dim` (SDXL's second text encoder: the pooled output's width). */
  readonly projectionDim?: number;
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
  /** SDXL's OpenCLIP ViT-bigG (CLIPTextModelWithProjection); absent for SD 1.x / 2.x. */
  readonly textEncoder2?: ClipTextConfig;
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

/**
 * SDXL base 1.0 (sgm's sd_xl_base.yaml): three levels, attention from the second, 2 and 10
 * transformer blocks, heads of 64 channels, linear projections, a 2048-wide context (768 from
 * CLIP ViT-L + 1280 from OpenCLIP ViT-bigG) and the 2816-wide `text_time` vector (1280 pooled +
 * 6 × 256).
 */
export const SDXL_UNET: UnetConfig = {
  ...SD15_UNET,
  blockOutChannels: [320, 640, 1280],
  crossAttention: [false, true, true],
  attentionHeads: [5, 10, 20],
  crossAttentionDim: 2048,
  linearProjection: true,
  transformerDepth: [1, 2, 10],
  textTime: { timeEmbedDim: 256, inputDim: 2816 },
};

/** OpenCLIP ViT-bigG/14's text tower, all 32 layers (the last feeds the pooled output). */
export const SDXL_TEXT_ENCODER_2: ClipTextConfig = {
  vocabSize: 49408,
  hiddenSize: 1280,
  intermediateSize: 5120,
  numLayers: 32,
  numHeads: 20,
  maxPositions: 77,
  layerNormEpsilon: 1e-5,
  hiddenAct: 'gelu',
  projectionDim: 1280,
};

/** SDXL's VAE has SD's architecture but its own weights and scale (sd_xl_base.yaml `scale_factor`). */
export const SDXL_VAE: VaeEncoderConfig = { ...SD15_VAE, scalingFactor: 0.13025 };

export const SDXL: SdModelConfig = {
  unet: SDXL_UNET,
  textEncoder: SD15_TEXT_ENCODER,
  textEncoder2: SDXL_TEXT_ENCODER_2,
  vae: SDXL_VAE,
};

/**
 * Stable Diffusion 1.x (OpenAI CLIP ViT-L/14), 2.x (OpenCLIP ViT-H/14, linear projections,
 * v-prediction at 768) or XL (both CLIP ViT-L and OpenCLIP ViT-bigG, size conditioning): one
 * family with three variants.
 */
export type SdFamily = 'sd1' | 'sd2' | 'sdxl';

export const SD_FAMILY_NAMES: Readonly<Record<SdFamily, string>> = {
  sd1: 'Stable Diffusion 1.x',
  sd2: 'Stable Diffusion 2.x',
  sdxl: 'Stable Diffusion XL',
};

/** The family of a model's sizes: a second text encoder is SDXL's; an OpenCLIP one (exact GELU) alone SD 2.x's. */
export const sdFamilyOf = (config: SdModelConfig): SdFamily =>
  config.textEncoder2 ? 'sdxl' : config.textEncoder.hiddenAct === 'gelu' ? 'sd2' : 'sd1';

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
    ...transformerDepth(r, levels),
    ...textTime(r),
  };
}

/** `transformer_layers_per_block`: one number or one per level (SDXL `[1, 2, 10]`); 1 when absent. */
function transformerDepth(
  r: ReturnType<typeof reader>,
  levels: number,
): Pick<UnetConfig, 'transformerDepth'> {
  const value = r.object['transformer_layers_per_block'];
  if (value === undefined) return {};
  const depth = Array.isArray(value)
    ? r.counts('transformer_layers_per_block')
    : [r.count('transformer_layers_per_block')];
  if (depth.length !== 1 && depth.length !== levels) {
    r.fail('transformer_layers_per_block', `one number or one per block (${levels})`);
  }
  return depth.every((d) => d === 1)
    ? {}
    : { transformerDepth: Array.from({ length: levels }, (_, i) => depth[depth.length === 1 ? 0 : i]!) };
}

/** SDXL's `addition_embed_type: text_time` with its two sizes. */
function textTime(r: ReturnType<typeof reader>): Pick<UnetConfig, 'textTime'> {
  const type = r.object['addition_embed_type'] ?? null;
  if (type === null) return {};
  if (type !== 'text_time') r.fail('addition_embed_type', '"text_time" (SDXL) or null');
  return {
    textTime: {
      timeEmbedDim: r.count('addition_time_embed_dim'),
      inputDim: r.count('projection_class_embeddings_input_dim'),
    },
  };
}

/** A transformers `text_encoder/config.json` of a CLIPTextModel (QuickGELU: SD 1.x, GELU: SD 2.x), or SDXL's `text_encoder_2/` CLIPTextModelWithProjection. */
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
    ...(withProjection(r.object['architectures']) ? { projectionDim: r.count('projection_dim', 512) } : {}),
  };
}

/** SDXL's `text_encoder_2/` is a CLIPTextModelWithProjection: its pooled output goes through `text_projection`. */
const withProjection = (architectures: unknown): boolean =>
  Array.isArray(architectures) && architectures.includes('CLIPTextModelWithProjection');

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
