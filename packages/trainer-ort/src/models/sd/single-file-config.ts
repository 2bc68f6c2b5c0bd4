/**
 * The family and sizes of an LDM single-file checkpoint, read off its key names and tensor shapes,
 * so a single file needs no config.json beside it. The text encoder's naming gives the family
 * (SD 1.x: transformers CLIP under `cond_stage_model.transformer.`; SD 2.x: OpenCLIP under
 * `cond_stage_model.model.`). Shapes give channels, levels, blocks per level, which levels attend,
 * the context width, linear or 1×1-conv projections, the text encoder's width, depth and MLP, and
 * the VAE's levels. What shapes cannot tell comes from the family's LDM config
 * (v1-/v2-inference.yaml): SD 1.x attends with 8 heads, SD 2.x with 64 channels per head; both
 * have 32 norm groups, and CLIP heads of 64 channels.
 */
import { ldmUnetLayout } from '@lora/adapters';
import type { TensorInfo } from '@lora/safetensors';
import { ModelError } from '../model-error.ts';
import {
  type ClipTextConfig,
  SD15_VAE,
  SDXL_VAE,
  type SdFamily,
  type SdModelConfig,
  type UnetConfig,
  type VaeEncoderConfig,
} from './config.ts';
import { LDM_PREFIXES, OPENCLIP_PREFIX, SINGLE_FILE_PREFIXES } from './keys.ts';

/** SD 1.x's attention heads per transformer (v1-inference.yaml `num_heads`). */
const SD1_HEADS = 8;
/** SD 2.x's channels per attention head (v2-inference.yaml `num_head_channels`); CLIP's too. */
const HEAD_CHANNELS = 64;

/** The family a single file's text-encoder keys name; `undefined` when it has none of them. */
export function sdFamilyOfKeys(keys: Iterable<string>): SdFamily | undefined {
  for (const key of keys) {
    if (key.startsWith(SINGLE_FILE_PREFIXES.sdxl.text_encoder_2!)) return 'sdxl';
    if (key.startsWith(OPENCLIP_PREFIX)) return 'sd2';
    if (key.startsWith(LDM_PREFIXES.text_encoder)) return 'sd1';
  }
  return undefined;
}

type Tensors = ReadonlyMap<string, Pick<TensorInfo, 'shape'>>;

/** A tensor's shape by key; throws when the file lacks it. */
type ShapeOf = (key: string) => readonly number[];

/** The family and sizes of the single file at `path` with these tensors. */
export function singleFileSdConfig(
  tensors: Tensors,
  path: string,
): { family: SdFamily; config: SdModelConfig } {
  const family = sdFamilyOfKeys(tensors.keys());
  if (family === undefined) {
    throw new ModelError(
      'E_MODEL_ARCHITECTURE',
      `${path} has no text encoder under '${LDM_PREFIXES.text_encoder}' (SD 1.x), '${OPENCLIP_PREFIX}' (SD 2.x) ` +
        `or '${SINGLE_FILE_PREFIXES.sdxl.text_encoder_2}' (SDXL); ` +
        'point base_model at a Stable Diffusion 1.x, 2.x or XL single-file checkpoint or a diffusers folder',
    );
  }
  const fail = (what: string): never => {
    throw new ModelError(
      'E_MODEL_ARCHITECTURE',
      `${path}: ${what}, so its model sizes cannot be read from it; is it a Stable Diffusion 1.x, 2.x or XL ` +
        'single-file checkpoint? For other sizes put unet/, text_encoder/ and vae/config.json beside it',
    );
  };
  const shape: ShapeOf = (key) => tensors.get(key)?.shape ?? fail(`it has no '${key}'`);
  const prefixes = SINGLE_FILE_PREFIXES[family];
  return {
    family,
    config: {
      unet: unetConfig(tensors, shape, family, fail),
      textEncoder:
        family === 'sd2'
          ? openClipConfig(tensors, shape, OPENCLIP_PREFIX, true)
          : clipConfig(tensors, shape, prefixes.text_encoder!),
      ...(family === 'sdxl'
        ? { textEncoder2: openClipConfig(tensors, shape, prefixes.text_encoder_2!, false) }
        : {}),
      vae: vaeConfig(tensors, shape, family),
    },
  };
}

/** How many distinct numbers the first group of `pattern` captures among the keys. */
function numbered(tensors: Tensors, pattern: RegExp): number {
  const seen = new Set<string>();
  for (const key of tensors.keys()) {
    const match = pattern.exec(key);
    if (match) seen.add(match[1]!);
  }
  return seen.size;
}

function unetConfig(
  tensors: Tensors,
  shape: ShapeOf,
  family: SdFamily,
  fail: (what: string) => never,
): UnetConfig {
  const p = LDM_PREFIXES.unet;
  const [modelChannels, inChannels] = shape(`${p}input_blocks.0.0.weight`);
  const layout = ldmUnetLayout(tensors.keys()) ?? fail('its UNet has no input blocks');
  const group = layout.layersPerBlock + 1;
  const levels = numbered(tensors, /^model\.diffusion_model\.input_blocks\.(\d+)\.0\.op\.weight$/) + 1;
  const first = (level: number) => `${p}input_blocks.${group * level + 1}`;
  const blockOutChannels = Array.from(
    { length: levels },
    (_, level) => shape(`${first(level)}.0.out_layers.3.weight`)[0]!,
  );
  if (blockOutChannels[0] !== modelChannels) fail("its first UNet level does not keep conv_in's channels");
  const attention = `${p}middle_block.1`;
  // Transformer blocks per level, counted in the level's first input block (SDXL: 0, 2, 10).
  const depth = blockOutChannels.map((_, level) =>
    numbered(tensors, new RegExp(`^${escapeDots(first(level))}\\.1\\.transformer_blocks\\.(\\d+)\\.`)),
  );
  const attending = depth.filter((d) => d > 0);
  const label = tensors.get(`${p}label_emb.0.0.weight`)?.shape;
  return {
    inChannels: inChannels!,
    outChannels: shape(`${p}out.2.weight`)[0]!,
    blockOutChannels,
    layersPerBlock: layout.layersPerBlock,
    crossAttention: blockOutChannels.map((_, level) => tensors.has(`${first(level)}.1.proj_in.weight`)),
    attentionHeads: blockOutChannels.map((channels) =>
      family === 'sd1'
        ? SD1_HEADS
        : channels % HEAD_CHANNELS === 0
          ? channels / HEAD_CHANNELS
          : fail(`a UNet level of ${channels} channels does not split into ${HEAD_CHANNELS}-channel heads`),
    ),
    crossAttentionDim: shape(`${attention}.transformer_blocks.0.attn2.to_k.weight`)[1]!,
    normGroups: 32,
    normEpsilon: 1e-5,
    ...(shape(`${attention}.proj_in.weight`).length === 2 ? { linearProjection: true } : {}),
    ...(attending.some((d) => d !== 1) ? { transformerDepth: depth.map((d) => d || 1) } : {}),
    ...(label === undefined ? {} : { textTime: textTime(label, shape, fail) }),
  };
}

/**
 * SDXL's `label_emb` input: the pooled text embedding (text_projection's width) and six sinusoidal
 * embeddings of one width each (sgm's original size, crop and target, two values apiece).
 */
function textTime(
  label: readonly number[],
  shape: ShapeOf,
  fail: (what: string) => never,
): NonNullable<UnetConfig['textTime']> {
  const inputDim = label[1]!;
  const pooled = shape(`${SINGLE_FILE_PREFIXES.sdxl.text_encoder_2}text_projection`)[1]!;
  const timeEmbedDim = (inputDim - pooled) / 6;
  if (!Number.isInteger(timeEmbedDim) || timeEmbedDim <= 0 || timeEmbedDim % 2) {
    fail(
      `label_emb takes ${inputDim} values, which is not the ${pooled} pooled ones and six even-width size embeddings`,
    );
  }
  return { timeEmbedDim, inputDim };
}

/** A key prefix as a regular expression. */
const escapeDots = (text: string) => text.replaceAll('.', '\\.');

/** SD 1.x's and SDXL's first: transformers' CLIPTextModel under `prefix`, QuickGELU. */
function clipConfig(tensors: Tensors, shape: ShapeOf, prefix: string): ClipTextConfig {
  // Files from older transformers lack the `text_model.` level (see normalizeClipKey).
  const full = `${prefix}text_model.`;
  const p = tensors.has(`${full}embeddings.token_embedding.weight`) ? full : prefix;
  const [vocabSize, hiddenSize] = shape(`${p}embeddings.token_embedding.weight`);
  return {
    vocabSize: vocabSize!,
    hiddenSize: hiddenSize!,
    intermediateSize: shape(`${p}encoder.layers.0.mlp.fc1.weight`)[0]!,
    numLayers: numbered(
      tensors,
      new RegExp(`^${escapeDots(prefix)}(?:text_model\\.)?encoder\\.layers\\.(\\d+)\\.`),
    ),
    numHeads: hiddenSize! / HEAD_CHANNELS,
    maxPositions: shape(`${p}embeddings.position_embedding.weight`)[0]!,
    layerNormEpsilon: 1e-5,
  };
}

/**
 * OpenCLIP's text tower under `p`, exact GELU: SD 2.x's runs to its penultimate layer only
 * (`skipLast`, see SD21_TEXT_ENCODER); SDXL's runs every layer, the last for the pooled output
 * through `text_projection` [width, dim].
 */
function openClipConfig(tensors: Tensors, shape: ShapeOf, p: string, skipLast: boolean): ClipTextConfig {
  const [vocabSize, hiddenSize] = shape(`${p}token_embedding.weight`);
  const layers = numbered(tensors, new RegExp(`^${escapeDots(p)}transformer\\.resblocks\\.(\\d+)\\.`));
  return {
    vocabSize: vocabSize!,
    hiddenSize: hiddenSize!,
    intermediateSize: shape(`${p}transformer.resblocks.0.mlp.c_fc.weight`)[0]!,
    numLayers: skipLast ? layers - 1 : layers,
    numHeads: hiddenSize! / HEAD_CHANNELS,
    maxPositions: shape(`${p}positional_embedding`)[0]!,
    layerNormEpsilon: 1e-5,
    hiddenAct: 'gelu',
    ...(skipLast ? {} : { projectionDim: shape(`${p}text_projection`)[1]! }),
  };
}

/** AutoencoderKL's encoder (the same for SD 1.x, 2.x and XL; SDXL scales its latents by its own factor). */
function vaeConfig(tensors: Tensors, shape: ShapeOf, family: SdFamily): VaeEncoderConfig {
  const p = `${LDM_PREFIXES.vae}encoder.`;
  const levels = numbered(tensors, /^first_stage_model\.encoder\.down\.(\d+)\./);
  return {
    inChannels: shape(`${p}conv_in.weight`)[1]!,
    blockOutChannels: Array.from(
      { length: levels },
      (_, i) => shape(`${p}down.${i}.block.0.conv2.weight`)[0]!,
    ),
    layersPerBlock: numbered(tensors, /^first_stage_model\.encoder\.down\.0\.block\.(\d+)\./),
    latentChannels: shape(`${LDM_PREFIXES.vae}quant_conv.weight`)[0]! / 2,
    normGroups: 32,
    scalingFactor: family === 'sdxl' ? SDXL_VAE.scalingFactor : SD15_VAE.scalingFactor,
  };
}
