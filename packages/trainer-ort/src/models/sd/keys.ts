/**
 * Original LDM single-file key names → diffusers / transformers names, per model, following
 * kohya's `convert_*_state_dict` and diffusers' `convert_ldm_*_checkpoint` (refs/formats.md §2),
 * but matching whole path segments instead of substrings. `undefined` means "not a tensor of the
 * models" (EMA copies, buffers); `null` a key under a model prefix that fits no rule, which the
 * loader reports.
 */

import { SD2_OPENCLIP_PREFIX, SDXL_OPENCLIP_PREFIX } from '@lora/adapters';
import type { SdFamily } from './config.ts';

/** The models of a Stable Diffusion checkpoint; `text_encoder_2` is SDXL's OpenCLIP ViT-bigG. */
export type SdComponent = 'unet' | 'text_encoder' | 'text_encoder_2' | 'vae';

/** Where each model's tensors sit in an LDM single-file checkpoint (SD 1.x's text encoder). */
export const LDM_PREFIXES: Readonly<Record<'unet' | 'text_encoder' | 'vae', string>> = {
  unet: 'model.diffusion_model.',
  text_encoder: 'cond_stage_model.transformer.',
  vae: 'first_stage_model.',
};

/** SD 2.x's OpenCLIP text tower: its one key table (both directions) is in @lora/adapters, as the UNet's. */
export { type ClipTarget, openClipKeyToClip, SD2_OPENCLIP_PREFIX as OPENCLIP_PREFIX } from '@lora/adapters';

/** SDXL's CLIP ViT-L: transformers' CLIPTextModel names under sgm's conditioner embedder 0. */
export const SDXL_CLIP_PREFIX = 'conditioner.embedders.0.transformer.';

/**
 * Where each model of a family's single file sits (the text encoders in the naming their prefix
 * says: transformers' CLIP for `….transformer.`, OpenCLIP's own for `….model.`).
 */
export const SINGLE_FILE_PREFIXES: Readonly<
  Record<SdFamily, Partial<Readonly<Record<SdComponent, string>>>>
> = {
  sd1: LDM_PREFIXES,
  sd2: { ...LDM_PREFIXES, text_encoder: SD2_OPENCLIP_PREFIX },
  sdxl: { ...LDM_PREFIXES, text_encoder: SDXL_CLIP_PREFIX, text_encoder_2: SDXL_OPENCLIP_PREFIX },
};

/** Whether a family's single file keeps a text encoder in OpenCLIP's naming (fused q/k/v). */
export const isOpenClip = (family: SdFamily, component: SdComponent): boolean =>
  SINGLE_FILE_PREFIXES[family][component]?.endsWith('.model.') ?? false;

const VAE_ATTENTION: ReadonlyMap<string, string> = new Map(
  Object.entries({
    norm: 'group_norm',
    q: 'to_q',
    k: 'to_k',
    v: 'to_v',
    proj_out: 'to_out.0',
  }),
);

const VAE_RESNET: ReadonlyMap<string, string> = new Map(
  Object.entries({
    norm1: 'norm1',
    conv1: 'conv1',
    norm2: 'norm2',
    conv2: 'conv2',
    nin_shortcut: 'conv_shortcut',
  }),
);

/**
 * A VAE key without its prefix → diffusers. `levels` is the number of resolution levels: LDM
 * numbers the decoder's up blocks from the lowest resolution's end, diffusers from the top.
 */
export function vaeKeyToDiffusers(key: string, levels: number): string | null | undefined {
  const parts = key.split('.');
  if ((parts[0] === 'quant_conv' || parts[0] === 'post_quant_conv') && parts.length === 2) return key;
  const half = parts[0];
  if (half !== 'encoder' && half !== 'decoder') return null;
  const [, a, b, c, d, e, f] = parts;
  if ((a === 'conv_in' || a === 'conv_out') && parts.length === 3) return key;
  if (a === 'norm_out' && parts.length === 3) return `${half}.conv_norm_out.${b}`;
  const resnet = (path: string, name: string | undefined, param: string | undefined, length: number) => {
    const mapped = name === undefined ? undefined : VAE_RESNET.get(name);
    return mapped === undefined || parts.length !== length ? null : `${half}.${path}.${mapped}.${param}`;
  };
  if (half === 'encoder' && a === 'down' && c === 'block')
    return resnet(`down_blocks.${b}.resnets.${d}`, e, f, 7);
  if (half === 'encoder' && a === 'down' && c === 'downsample' && d === 'conv' && parts.length === 6) {
    return `encoder.down_blocks.${b}.downsamplers.0.conv.${e}`;
  }
  const up = levels - 1 - Number(b);
  if (half === 'decoder' && a === 'up' && Number.isInteger(up) && up >= 0) {
    if (c === 'block') return resnet(`up_blocks.${up}.resnets.${d}`, e, f, 7);
    if (c === 'upsample' && d === 'conv' && parts.length === 6)
      return `decoder.up_blocks.${up}.upsamplers.0.conv.${e}`;
  }
  if (a === 'mid' && (b === 'block_1' || b === 'block_2')) {
    return resnet(`mid_block.resnets.${b === 'block_1' ? 0 : 1}`, c, d, 5);
  }
  const attention = c === undefined ? undefined : VAE_ATTENTION.get(c);
  if (a === 'mid' && b === 'attn_1' && attention !== undefined && parts.length === 5) {
    return `${half}.mid_block.attentions.0.${attention}.${d}`;
  }
  return null;
}

/** The VAE's decoder half (`lora sample` decodes with it; training never reads it). */
export const isVaeDecoderKey = (key: string): boolean =>
  key.startsWith('decoder.') || key.startsWith('post_quant_conv.');

/** diffusers < 0.14 VAE attention names, still found in some `vae/` folders. */
const OLD_DIFFUSERS_VAE_ATTENTION: ReadonlyMap<string, string> = new Map(
  Object.entries({
    query: 'to_q',
    key: 'to_k',
    value: 'to_v',
    proj_attn: 'to_out.0',
  }),
);

/** A diffusers `vae/` key as the current layout names it. */
export function normalizeDiffusersVaeKey(key: string): string {
  const parts = key.split('.');
  const attention = parts.indexOf('attentions');
  const renamed = OLD_DIFFUSERS_VAE_ATTENTION.get(parts[attention + 2] ?? '');
  if (attention < 0 || renamed === undefined) return key;
  return [...parts.slice(0, attention + 2), renamed, ...parts.slice(attention + 3)].join('.');
}

/**
 * A CLIP key without its prefix (or from `text_encoder/`) as `CLIPTextModel` names it:
 * files from older transformers (and ≥ 5.6) lack the `text_model.` level. `undefined` for the
 * `position_ids` buffer, which is rebuilt in the graph.
 */
export function normalizeClipKey(key: string): string | undefined {
  const full = key.startsWith('text_model.') ? key : `text_model.${key}`;
  return full === 'text_model.embeddings.position_ids' ? undefined : full;
}
