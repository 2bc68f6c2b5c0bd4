/**
 * The one table between OpenCLIP's text-tower names (as SD 2.x single files hold it, under
 * `cond_stage_model.model.`) and transformers' CLIPTextModel names (what kohya, ComfyUI and this
 * project's LoRA modules use), both directions: loading a single file (OpenCLIP → CLIP, the
 * trainer) and merging into one (CLIP → OpenCLIP). OpenCLIP fuses q, k and v into
 * `attn.in_proj_weight` / `in_proj_bias`, stacked by rows in that order (kohya's
 * `convert_ldm_clip_checkpoint_v2`, ComfyUI's `clip_text_transformers_convert`, A1111's
 * `torch.vstack([updown_q, updown_k, updown_v])`), so a q, k or v name is one third of it.
 */

import { flattenPath } from './names.ts';

/** Where SD 2.x single files keep OpenCLIP's text tower. */
export const SD2_OPENCLIP_PREFIX = 'cond_stage_model.model.';

/** Where SDXL single files keep OpenCLIP ViT-bigG, its second text encoder (sgm's conditioner embedder 1). */
export const SDXL_OPENCLIP_PREFIX = 'conditioner.embedders.1.model.';

/** A name on the other side: a whole tensor, or one third of its rows (q, k, v of a fused in_proj). */
export interface ClipTarget {
  readonly key: string;
  /** Rows [part·n/3, (part+1)·n/3) of a tensor of n rows. */
  readonly part?: 0 | 1 | 2;
}

/** Per-layer modules: OpenCLIP → transformers. */
const LAYER: ReadonlyMap<string, string> = new Map([
  ['ln_1', 'layer_norm1'],
  ['ln_2', 'layer_norm2'],
  ['mlp.c_fc', 'mlp.fc1'],
  ['mlp.c_proj', 'mlp.fc2'],
  ['attn.out_proj', 'self_attn.out_proj'],
]);
/** transformers → OpenCLIP, by the flattened transformers name (`mlp_fc1`). */
const FLAT_CLIP_LAYER: ReadonlyMap<string, string> = new Map(
  [...LAYER].map(([open, clip]) => [flattenPath(clip), open]),
);
const FUSED = ['q_proj', 'k_proj', 'v_proj'] as const;

const TOP: ReadonlyMap<string, string | undefined> = new Map([
  ['token_embedding.weight', 'text_model.embeddings.token_embedding.weight'],
  ['positional_embedding', 'text_model.embeddings.position_embedding.weight'],
  ['ln_final.weight', 'text_model.final_layer_norm.weight'],
  ['ln_final.bias', 'text_model.final_layer_norm.bias'],
  // CLIP's contrastive head: SD 2.x conditions on the token states only.
  ['text_projection', undefined],
  ['logit_scale', undefined],
]);

/**
 * An OpenCLIP text-tower key without its prefix → the CLIPTextModel names it provides (three
 * for a fused in_proj). `layers` is the encoder's depth as SD runs it: resblock `layers` is the
 * one SD 2.x never runs (it conditions on the penultimate layer), so it is `undefined` like the
 * contrastive head; `null` fits no rule.
 */
export function openClipKeyToClip(key: string, layers: number): readonly ClipTarget[] | null | undefined {
  if (TOP.has(key)) {
    const mapped = TOP.get(key);
    return mapped === undefined ? undefined : [{ key: mapped }];
  }
  const match = /^transformer\.resblocks\.(\d+)\.(.+)$/.exec(key);
  const layer = Number(match?.[1]);
  if (match === null || layer > layers) return null;
  if (layer === layers) return undefined;
  const path = `text_model.encoder.layers.${layer}`;
  const fused = /^attn\.in_proj_(weight|bias)$/.exec(match[2]!);
  if (fused) {
    return FUSED.map((name, part) => ({
      key: `${path}.self_attn.${name}.${fused[1]}`,
      part: part as 0 | 1 | 2,
    }));
  }
  const param = /^(.+)\.(weight|bias)$/.exec(match[2]!);
  const module = param ? LAYER.get(param[1]!) : undefined;
  return module === undefined ? null : [{ key: `${path}.${module}.${param![2]}` }];
}

/**
 * A CLIPTextModel module path (`text_model.encoder.layers.3.self_attn.q_proj`, dots or kohya's
 * underscores) → the OpenCLIP weight key it lives in, without prefix (a third of
 * `attn.in_proj_weight` for q, k, v).
 */
export function clipModuleToOpenClip(path: string): ClipTarget | undefined {
  const match = /^text_model_encoder_layers_(\d+)_(.+)$/.exec(flattenPath(path));
  if (match === null) return undefined;
  const block = `transformer.resblocks.${match[1]}`;
  const part = FUSED.findIndex((name) => `self_attn_${name}` === match[2]);
  if (part >= 0) return { key: `${block}.attn.in_proj_weight`, part: part as 0 | 1 | 2 };
  const module = FLAT_CLIP_LAYER.get(match[2]!);
  return module === undefined ? undefined : { key: `${block}.${module}.weight` };
}
