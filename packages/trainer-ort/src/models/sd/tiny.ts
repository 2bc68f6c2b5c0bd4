/**
 * A tiny Stable Diffusion of the SD 1.x or 2.x architecture with random weights, for tests and the
 * quick-start demo: an LDM single-file checkpoint (`<name>.safetensors`), the diffusers /
 * transformers `config.json` of each model beside it (a single file carries no sizes, see
 * `model-files.ts`), and a CLIP-style byte-level BPE `tokenizer/tokenizer.json` with a small
 * vocabulary. Plus a dataset of coloured-shape PNGs with structured captions in `metadata.csv`.
 * Nothing is downloaded.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRng, type Rng } from '@lora/dataset';
import { type TensorData, writeSafetensors } from '@lora/safetensors';
import { byteLevelAlphabet } from '../llama/demo-bpe.ts';
import { CLIP_TOKENIZER_CONFIG, clipTokenizerFromVocab } from './clip-tokenizer-json.ts';
import {
  type ClipTextConfig,
  SDXL_VAE,
  type SdFamily,
  type SdModelConfig,
  type UnetConfig,
  type VaeEncoderConfig,
} from './config.ts';
import { LDM_PREFIXES, OPENCLIP_PREFIX, SINGLE_FILE_PREFIXES } from './keys.ts';
import { clipTextModel, ldmUnet, ldmVae, openClipTextModel, type Shapes } from './ldm-layout.ts';
import { encodePng } from './png.ts';

/** The demo's words: every one is a single token of the tiny tokenizer. */
const DEMO_WORDS = [
  'a',
  'red',
  'green',
  'blue',
  'yellow',
  'circle',
  'square',
  'on',
  'white',
  'black',
  'background',
  'flat',
  'shape',
  'style',
  'shapes',
  'simple',
  'bold',
  'pastel',
];

/**
 * Sizes of the tiny model; images of 64 px give 8×8 latents (VAE factor 8, as SD). SD 2.x's has
 * its architecture: 16 channels per head, linear projections, an OpenCLIP-style GELU encoder.
 */
export function tinySdConfig(vocabSize: number, family: SdFamily = 'sd1'): SdModelConfig {
  const sd1: UnetConfig = {
    inChannels: 4,
    outChannels: 4,
    blockOutChannels: [32, 64],
    layersPerBlock: 1,
    crossAttention: [true, false],
    attentionHeads: [2, 2],
    crossAttentionDim: 32,
    normGroups: 8,
    normEpsilon: 1e-5,
  };
  if (family === 'sdxl') return tinySdxlConfig(sd1, vocabSize);
  const unet: UnetConfig =
    family === 'sd2' ? { ...sd1, attentionHeads: [2, 4], linearProjection: true } : sd1;
  const textEncoder: ClipTextConfig = {
    vocabSize,
    hiddenSize: 32,
    intermediateSize: 64,
    numLayers: 2,
    numHeads: 2,
    maxPositions: 77,
    layerNormEpsilon: 1e-5,
    ...(family === 'sd2' ? { hiddenAct: 'gelu' as const } : {}),
  };
  const vae: VaeEncoderConfig = {
    inChannels: 3,
    blockOutChannels: [8, 8, 16, 16],
    layersPerBlock: 1,
    latentChannels: 4,
    normGroups: 4,
    scalingFactor: 0.18215,
  };
  return { unet, textEncoder, vae };
}

/**
 * SDXL's architecture at the tiny size: no attention at full resolution, 2 transformer blocks
 * below, linear projections, two text encoders (a CLIP-style one of 3 layers, whose penultimate
 * states condition, and an OpenCLIP-style one with a pooled projection) side by side in the
 * context, the `text_time` size condition, the VAE scaled by SDXL's 0.13025.
 */
function tinySdxlConfig(sd1: UnetConfig, vocabSize: number): SdModelConfig {
  const encoder: ClipTextConfig = {
    vocabSize,
    hiddenSize: 32,
    intermediateSize: 64,
    numLayers: 3,
    numHeads: 2,
    maxPositions: 77,
    layerNormEpsilon: 1e-5,
  };
  const textEncoder2: ClipTextConfig = { ...encoder, numLayers: 2, hiddenAct: 'gelu', projectionDim: 32 };
  return {
    unet: {
      ...sd1,
      crossAttention: [false, true],
      attentionHeads: [2, 4],
      crossAttentionDim: encoder.hiddenSize + textEncoder2.hiddenSize,
      linearProjection: true,
      transformerDepth: [1, 2],
      textTime: { timeEmbedDim: 8, inputDim: 32 + 6 * 8 },
    },
    textEncoder: encoder,
    textEncoder2,
    vae: { ...tinySdConfig(vocabSize).vae, scalingFactor: SDXL_VAE.scalingFactor },
  };
}

/**
 * The tiny demo's CLIP tokenizer: the 512 byte tokens, merges that build each of `words`, and the
 * two special tokens last, in the layout of openai/clip-vit-large-patch14's `tokenizer.json`.
 */
export function clipTokenizerJson(words: readonly string[] = DEMO_WORDS): object {
  const bytes = byteLevelAlphabet();
  const vocab = new Map<string, number>();
  const add = (token: string) => {
    if (!vocab.has(token)) vocab.set(token, vocab.size);
  };
  for (const c of bytes) add(c);
  for (const c of bytes) add(`${c}</w>`);
  const merges: string[] = [];
  for (const word of words) {
    const symbols = [...word].map((c, i, all) => (i === all.length - 1 ? `${c}</w>` : c));
    let left = symbols[0]!;
    for (const right of symbols.slice(1)) {
      const merged = left + right;
      if (!vocab.has(merged)) {
        merges.push(`${left} ${right}`);
        add(merged);
      }
      left = merged;
    }
  }
  add('<|startoftext|>');
  add('<|endoftext|>');
  return clipTokenizerFromVocab(Object.fromEntries(vocab), merges);
}

/** Random weights at sensible scales: norms 1, biases 0, embeddings N(0, 0.02²) as CLIP's, the rest N(0, 1/fan_in). */
function randomTensor(rng: Rng, key: string, shape: readonly number[]): TensorData {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  // OpenCLIP's fused `in_proj_bias` is a bias too; its scalar `logit_scale` starts at 1 like the norms.
  const isBias = key.endsWith('bias');
  if (!isBias && shape.length <= 1) data.fill(1);
  else if (!isBias) {
    const std = key.includes('embedding') ? 0.02 : 1 / Math.sqrt(size / shape[0]!);
    for (let i = 0; i < size; i++) data[i] = rng.normal() * std;
  }
  return { dtype: 'F32', shape, data };
}

/** diffusers / transformers `config.json` contents for the sizes in `config`. */
export function diffusersConfigJson(
  config: SdModelConfig,
): Record<'unet' | 'text_encoder' | 'vae', object> & { text_encoder_2?: object } {
  const { unet, textEncoder: te, textEncoder2: te2, vae } = config;
  const clip = (c: ClipTextConfig) => ({
    architectures: [c.projectionDim === undefined ? 'CLIPTextModel' : 'CLIPTextModelWithProjection'],
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    max_position_embeddings: c.maxPositions,
    hidden_act: c.hiddenAct ?? 'quick_gelu',
    layer_norm_eps: c.layerNormEpsilon,
    ...(c.projectionDim === undefined ? {} : { projection_dim: c.projectionDim }),
  });
  const down = unet.crossAttention.map((a) => (a ? 'CrossAttnDownBlock2D' : 'DownBlock2D'));
  return {
    unet: {
      _class_name: 'UNet2DConditionModel',
      in_channels: unet.inChannels,
      out_channels: unet.outChannels,
      block_out_channels: unet.blockOutChannels,
      layers_per_block: unet.layersPerBlock,
      down_block_types: down,
      up_block_types: unet.crossAttention.map((a) => (a ? 'CrossAttnUpBlock2D' : 'UpBlock2D')).reverse(),
      attention_head_dim: unet.attentionHeads,
      cross_attention_dim: unet.crossAttentionDim,
      norm_num_groups: unet.normGroups,
      norm_eps: unet.normEpsilon,
      use_linear_projection: unet.linearProjection ?? false,
      ...(unet.transformerDepth ? { transformer_layers_per_block: unet.transformerDepth } : {}),
      ...(unet.textTime
        ? {
            addition_embed_type: 'text_time',
            addition_time_embed_dim: unet.textTime.timeEmbedDim,
            projection_class_embeddings_input_dim: unet.textTime.inputDim,
          }
        : {}),
    },
    text_encoder: clip(te),
    ...(te2 ? { text_encoder_2: clip(te2) } : {}),
    vae: {
      _class_name: 'AutoencoderKL',
      in_channels: vae.inChannels,
      block_out_channels: vae.blockOutChannels,
      down_block_types: vae.blockOutChannels.map(() => 'DownEncoderBlock2D'),
      layers_per_block: vae.layersPerBlock,
      latent_channels: vae.latentChannels,
      norm_num_groups: vae.normGroups,
      scaling_factor: vae.scalingFactor,
    },
  };
}

export interface TinySdModel {
  /** The single-file checkpoint. */
  readonly checkpoint: string;
  readonly config: SdModelConfig;
}

/**
 * Writes `<folder>/<name>.safetensors` (LDM keys, F32, random weights from `seed`; SD 2.x's text
 * encoder in OpenCLIP's names), the three `config.json` files and `tokenizer/` beside it.
 */
export async function writeTinySdModel(
  folder: string,
  name = 'tiny-sd',
  seed = 0,
  family: SdFamily = 'sd1',
): Promise<TinySdModel> {
  const tokenizer = clipTokenizerJson() as { model: { vocab: object }; added_tokens: unknown[] };
  const config = tinySdConfig(
    Object.keys(tokenizer.model.vocab).length + tokenizer.added_tokens.length,
    family,
  );
  const rng = createRng(seed);
  const tensors = new Map<string, TensorData>();
  const prefixes = SINGLE_FILE_PREFIXES[family];
  const parts: [string, Shapes][] = [
    [LDM_PREFIXES.unet, ldmUnet(config.unet)],
    family === 'sd2'
      ? [OPENCLIP_PREFIX, openClipTextModel(config.textEncoder, config.textEncoder.hiddenSize)]
      : [prefixes.text_encoder!, clipTextModel(config.textEncoder)],
    ...(config.textEncoder2
      ? [[prefixes.text_encoder_2!, openClipTextModel(config.textEncoder2)] as [string, Shapes]]
      : []),
    [LDM_PREFIXES.vae, ldmVae(config.vae)],
  ];
  for (const [prefix, shapes] of parts) {
    for (const [key, shape] of shapes) tensors.set(prefix + key, randomTensor(rng, key, shape));
  }
  await mkdir(join(folder, 'tokenizer'), { recursive: true });
  const checkpoint = join(folder, `${name}.safetensors`);
  await writeSafetensors(checkpoint, tensors, { format: 'pt' });
  for (const [component, json] of Object.entries(diffusersConfigJson(config))) {
    await mkdir(join(folder, component), { recursive: true });
    await writeFile(join(folder, component, 'config.json'), `${JSON.stringify(json, null, 2)}\n`);
  }
  await writeFile(join(folder, 'tokenizer', 'tokenizer.json'), JSON.stringify(tokenizer));
  await writeFile(
    join(folder, 'tokenizer', 'tokenizer_config.json'),
    // SD 2.x pads with "!", as its diffusers tokenizer_config.json says.
    `${JSON.stringify(family === 'sd2' ? { ...CLIP_TOKENIZER_CONFIG, pad_token: '!' } : CLIP_TOKENIZER_CONFIG, null, 2)}\n`,
  );
  if (family === 'sdxl') {
    // SDXL repositories carry the second encoder's tokenizer (the same vocabulary, "!" padding) too.
    await mkdir(join(folder, 'tokenizer_2'), { recursive: true });
    await writeFile(join(folder, 'tokenizer_2', 'tokenizer.json'), JSON.stringify(tokenizer));
    await writeFile(
      join(folder, 'tokenizer_2', 'tokenizer_config.json'),
      `${JSON.stringify({ ...CLIP_TOKENIZER_CONFIG, pad_token: '!' }, null, 2)}\n`,
    );
  }
  return { checkpoint, config };
}

const COLOURS: Readonly<Record<string, readonly [number, number, number]>> = {
  red: [220, 40, 40],
  green: [40, 180, 70],
  blue: [40, 80, 220],
  yellow: [235, 210, 40],
};
const BACKGROUNDS: Readonly<Record<string, readonly [number, number, number]>> = {
  white: [245, 245, 245],
  black: [20, 20, 20],
};

export interface ShapeImagesOptions {
  count?: number;
  /** Side in pixels (square images). */
  size?: number;
  seed?: number;
}

/**
 * Writes `count` PNGs of one coloured circle or square on a plain background into `folder`, and
 * a `metadata.csv` whose captions use the markup (`**flat shape style**` core tag, `*mood*`).
 * Returns the captions by file name.
 */
export async function writeShapeImages(
  folder: string,
  { count = 6, size = 64, seed = 1 }: ShapeImagesOptions = {},
): Promise<Map<string, string>> {
  await mkdir(folder, { recursive: true });
  const rng = createRng(seed);
  const colours = Object.keys(COLOURS);
  const backgrounds = Object.keys(BACKGROUNDS);
  const captions = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const colour = colours[i % colours.length]!;
    const background = backgrounds[Math.floor(i / colours.length) % backgrounds.length]!;
    const shape = i % 2 === 0 ? 'circle' : 'square';
    const [cx, cy] = [size * (0.35 + 0.3 * rng.next()), size * (0.35 + 0.3 * rng.next())];
    const radius = size * (0.18 + 0.1 * rng.next());
    const rgb = new Uint8Array(size * size * 3);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const [dx, dy] = [x + 0.5 - cx, y + 0.5 - cy];
        const inside =
          shape === 'circle'
            ? dx * dx + dy * dy <= radius * radius
            : Math.max(Math.abs(dx), Math.abs(dy)) <= radius;
        rgb.set(inside ? COLOURS[colour]! : BACKGROUNDS[background]!, 3 * (y * size + x));
      }
    }
    const file = `shape_${String(i).padStart(2, '0')}.png`;
    await writeFile(join(folder, file), encodePng(size, size, rgb));
    captions.set(file, `**flat shape style**, a ${colour} ${shape}, ${background} background, *simple*`);
  }
  const csv = ['file_name,text', ...[...captions].map(([file, text]) => `${file},"${text}"`)].join('\n');
  await writeFile(join(folder, 'metadata.csv'), `${csv}\n`);
  return captions;
}
