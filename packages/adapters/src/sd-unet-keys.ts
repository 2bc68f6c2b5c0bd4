/**
 * The one table between Stable Diffusion UNet names in diffusers (`down_blocks.0.resnets.1.conv1`)
 * and in original LDM single files (`input_blocks.2.0.in_layers.2`), both directions: loading a
 * single file (LDM → diffusers, the trainer) and merging into one (diffusers → LDM). Both follow
 * kohya's `convert_unet_state_dict_to_sd` and diffusers' `convert_ldm_unet_checkpoint`
 * (refs/formats.md §2), generalised to any `layers_per_block`, matching whole path segments.
 */
import type { LoraAdapter } from './adapter.ts';
import { flattenPath } from './names.ts';
import {
  type ClipTarget,
  clipModuleToOpenClip,
  SD2_OPENCLIP_PREFIX,
  SDXL_OPENCLIP_PREFIX,
} from './sd-openclip-keys.ts';

// Maps, not object literals: a key segment such as `constructor` must find nothing.
/** diffusers resnet parameter names → original LDM names. */
const RESNET: ReadonlyMap<string, string> = new Map(
  Object.entries({
    norm1: 'in_layers.0',
    conv1: 'in_layers.2',
    time_emb_proj: 'emb_layers.1',
    norm2: 'out_layers.0',
    conv2: 'out_layers.3',
    conv_shortcut: 'skip_connection',
  }),
);

const TOP_LEVEL: ReadonlyMap<string, string> = new Map(
  Object.entries({
    conv_in: 'input_blocks.0.0',
    conv_norm_out: 'out.0',
    conv_out: 'out.2',
    'time_embedding.linear_1': 'time_embed.0',
    'time_embedding.linear_2': 'time_embed.2',
    // SDXL's text_time condition (sgm `label_emb`, a Sequential inside a Sequential).
    'add_embedding.linear_1': 'label_emb.0.0',
    'add_embedding.linear_2': 'label_emb.0.2',
  }),
);

const reverse = (table: ReadonlyMap<string, string>): ReadonlyMap<string, string> =>
  new Map([...table].map(([diffusers, ldm]) => [ldm, diffusers]));
const LDM_RESNET = reverse(RESNET);
const LDM_TOP_LEVEL = reverse(TOP_LEVEL);

/**
 * How a UNet's diffusers blocks sit in the LDM `input_blocks` / `output_blocks` lists, which
 * number their modules in one run: each down level holds `layersPerBlock` resnets (+ attentions)
 * and then its downsampler, each up level `layersPerBlock + 1`, the last one also holding the
 * upsampler after its attention, if any.
 */
export interface UnetLayout {
  /** diffusers' `layers_per_block`: 2 for SD 1.x / 2.x / XL. */
  readonly layersPerBlock: number;
  /** Up levels (diffusers numbering) with attentions, whose upsampler is module 2, not 1. */
  readonly attentionUpBlocks: readonly number[];
}

/** SD 1.x / 2.x: `CrossAttnUpBlock2D` everywhere but up block 0. */
export const SD_UNET_LAYOUT: UnetLayout = { layersPerBlock: 2, attentionUpBlocks: [1, 2, 3] };

const LDM_INPUT_BLOCK = /^model\.diffusion_model\.input_blocks\.(\d+)\.(\d+)\.(op\.)?/;
const LDM_OUTPUT_ATTENTION = /^model\.diffusion_model\.output_blocks\.(\d+)\.1\.(?!conv\.)/;

/**
 * The block layout of an LDM single-file checkpoint, from its key names: the first downsampler
 * (`input_blocks.N.0.op`) sits at N = layersPerBlock + 1, or without one, the last input block is
 * N = layersPerBlock. Undefined when the keys hold no LDM UNet.
 */
export function ldmUnetLayout(keys: Iterable<string>): UnetLayout | undefined {
  let lastBlock = -1;
  let firstDownsampler = Number.POSITIVE_INFINITY;
  const attentionOutputBlocks = new Set<number>();
  for (const key of keys) {
    const input = LDM_INPUT_BLOCK.exec(key);
    if (input !== null) {
      const block = Number(input[1]);
      lastBlock = Math.max(lastBlock, block);
      if (input[2] === '0' && input[3] !== undefined) firstDownsampler = Math.min(firstDownsampler, block);
      continue;
    }
    const output = LDM_OUTPUT_ATTENTION.exec(key);
    if (output !== null) attentionOutputBlocks.add(Number(output[1]));
  }
  if (lastBlock < 1) return undefined;
  const layersPerBlock = Number.isFinite(firstDownsampler) ? firstDownsampler - 1 : lastBlock;
  const levels = new Set([...attentionOutputBlocks].map((block) => Math.floor(block / (layersPerBlock + 1))));
  return { layersPerBlock, attentionUpBlocks: [...levels].sort((a, b) => a - b) };
}

/**
 * A diffusers SD UNet module path → its name in an original (LDM) single-file checkpoint with
 * `layout`, following kohya's `convert_unet_state_dict_to_sd` generalised to any
 * `layers_per_block`. Matches whole path segments, never substrings; a resnet or attention index
 * past its level's count maps to nothing rather than into the next level.
 */
export function diffusersUnetToLdm(path: string, layout: UnetLayout = SD_UNET_LAYOUT): string | undefined {
  const top = TOP_LEVEL.get(path);
  if (top !== undefined) return top;
  const perLevel = layout.layersPerBlock + 1;
  const resnet = (rest: string) => {
    const [name, ...tail] = rest.split('.');
    const mapped = name === undefined ? undefined : RESNET.get(name);
    return mapped === undefined ? undefined : [mapped, ...tail].join('.');
  };
  const inBlock = (prefix: string, block: number, kind: string, rest: string) => {
    const mapped = kind === 'attentions' ? rest : resnet(rest);
    return mapped === undefined ? undefined : `${prefix}.${block}.${kind === 'attentions' ? 1 : 0}.${mapped}`;
  };
  let match = /^down_blocks\.(\d+)\.(attentions|resnets)\.(\d+)\.(.+)$/.exec(path);
  if (match !== null) {
    const index = Number(match[3]);
    if (index >= layout.layersPerBlock) return undefined;
    return inBlock('input_blocks', perLevel * Number(match[1]) + index + 1, match[2]!, match[4]!);
  }
  match = /^down_blocks\.(\d+)\.downsamplers\.0\.conv$/.exec(path);
  if (match !== null) return `input_blocks.${perLevel * (Number(match[1]) + 1)}.0.op`;
  match = /^mid_block\.attentions\.0\.(.+)$/.exec(path);
  if (match !== null) return `middle_block.1.${match[1]}`;
  match = /^mid_block\.resnets\.([01])\.(.+)$/.exec(path);
  if (match !== null) {
    const rest = resnet(match[2]!);
    return rest === undefined ? undefined : `middle_block.${2 * Number(match[1])}.${rest}`;
  }
  match = /^up_blocks\.(\d+)\.(attentions|resnets)\.(\d+)\.(.+)$/.exec(path);
  if (match !== null) {
    const index = Number(match[3]);
    if (index >= perLevel) return undefined;
    return inBlock('output_blocks', perLevel * Number(match[1]) + index, match[2]!, match[4]!);
  }
  match = /^up_blocks\.(\d+)\.upsamplers\.0\.conv$/.exec(path);
  if (match !== null) {
    const level = Number(match[1]);
    const module = layout.attentionUpBlocks.includes(level) ? 2 : 1;
    return `output_blocks.${perLevel * level + layout.layersPerBlock}.${module}.conv`;
  }
  return undefined;
}

/** Where a module's weight may live in a base checkpoint with `layout`, most direct first. */
export function candidateWeightKeys(path: string, layout?: UnetLayout): string[] {
  const candidates = [path];
  const dot = path.indexOf('.');
  const component = path.slice(0, dot);
  const rest = path.slice(dot + 1);
  if (component === 'unet') {
    candidates.push(rest, `model.diffusion_model.${rest}`);
    const ldm = diffusersUnetToLdm(rest, layout);
    if (ldm !== undefined) candidates.push(`model.diffusion_model.${ldm}`);
  } else if (component === 'text_encoder') {
    candidates.push(
      rest,
      `cond_stage_model.transformer.${rest}`,
      `conditioner.embedders.0.transformer.${rest}`,
    );
  } else if (component === 'text_encoder_2') {
    candidates.push(rest);
  }
  return candidates.map((candidate) => `${candidate}.weight`);
}

/**
 * Finds the base weight a LoRA module modifies: a candidate key present in the checkpoint
 * (diffusers UNet paths mapped with the checkpoint's own LDM block layout), else one equal after
 * kohya-style flattening (which forgives a wrong guess at where dots were), else, for a text
 * encoder module of an SD 2.x single file (or SDXL's second), its OpenCLIP weight (q, k, v: a
 * third of the fused `in_proj_weight`).
 */
export function createKeyResolver(baseKeys: Iterable<string>): (path: string) => ClipTarget | undefined {
  const keys = new Set(baseKeys);
  const layout = ldmUnetLayout(keys);
  const flat = new Map<string, string>();
  for (const key of keys) if (key.endsWith('.weight')) flat.set(flattenPath(key), key);
  return (path) => {
    const candidates = candidateWeightKeys(path, layout);
    const key =
      candidates.find((candidate) => keys.has(candidate)) ??
      candidates.map((candidate) => flat.get(flattenPath(candidate))).find(Boolean);
    if (key !== undefined) return { key };
    // SD 2.x's text encoder, or SDXL's second, in OpenCLIP's naming.
    const [component, prefix] = path.startsWith('text_encoder_2.')
      ? ['text_encoder_2.', SDXL_OPENCLIP_PREFIX]
      : ['text_encoder.', SD2_OPENCLIP_PREFIX];
    const openClip = path.startsWith(component)
      ? clipModuleToOpenClip(path.slice(component.length))
      : undefined;
    return openClip && keys.has(prefix + openClip.key)
      ? { ...openClip, key: prefix + openClip.key }
      : undefined;
  };
}

/** `in_layers.0.weight` → `norm1.weight`. */
function resnetRest(rest: readonly string[]): string | null {
  for (const take of [2, 1]) {
    const name = LDM_RESNET.get(rest.slice(0, take).join('.'));
    if (name !== undefined && rest.length === take + 1) return `${name}.${rest[take]}`;
  }
  return null;
}

const index = (segment: string | undefined): number =>
  segment !== undefined && /^\d+$/.test(segment) ? Number(segment) : Number.NaN;

/**
 * An LDM UNet key without its prefix (`input_blocks.1.1.proj_in.weight`) → its diffusers name;
 * `layersPerBlock` fixes the block numbering. `null` for a key that fits no rule.
 */
export function unetKeyToDiffusers(key: string, layersPerBlock: number): string | null {
  const parts = key.split('.');
  const param = parts.at(-1)!;
  const top = LDM_TOP_LEVEL.get(parts.slice(0, -1).join('.'));
  if (top !== undefined) return `${top}.${param}`;
  const [head, a, b, ...rest] = parts;
  const n = index(a);
  const k = index(b);
  const group = layersPerBlock + 1;
  const resnet = (path: string, names: readonly string[] = rest) => {
    const mapped = resnetRest(names);
    return mapped === null ? null : `${path}.${mapped}`;
  };
  if (head === 'input_blocks' && n > 0) {
    if (n % group === 0) {
      return k === 0 && rest[0] === 'op' && rest.length === 2
        ? `down_blocks.${n / group - 1}.downsamplers.0.conv.${rest[1]}`
        : null;
    }
    const [i, j] = [Math.floor((n - 1) / group), (n - 1) % group];
    if (k === 0) return resnet(`down_blocks.${i}.resnets.${j}`);
    if (k === 1) return `down_blocks.${i}.attentions.${j}.${rest.join('.')}`;
    return null;
  }
  if (head === 'middle_block') {
    if (n === 0 || n === 2) return resnet(`mid_block.resnets.${n / 2}`, parts.slice(2));
    if (n === 1) return `mid_block.attentions.0.${parts.slice(2).join('.')}`;
    return null;
  }
  if (head === 'output_blocks' && n >= 0) {
    const [i, j] = [Math.floor(n / group), n % group];
    if ((k === 1 || k === 2) && rest[0] === 'conv' && rest.length === 2) {
      return j === layersPerBlock ? `up_blocks.${i}.upsamplers.0.conv.${rest[1]}` : null;
    }
    if (k === 0) return resnet(`up_blocks.${i}.resnets.${j}`);
    if (k === 1) return `up_blocks.${i}.attentions.${j}.${rest.join('.')}`;
  }
  return null;
}

/** SDXL base's block layout (sd_xl_base.yaml): up blocks 0 and 1 attend, so their upsamplers are module 2. */
export const SDXL_UNET_LAYOUT: UnetLayout = { layersPerBlock: 2, attentionUpBlocks: [0, 1] };

/**
 * An SDXL LoRA's UNet module paths in the naming a file layout uses: kohya's SDXL UNet
 * (sdxl_original_unet) keeps the LDM names (`unet.input_blocks.4.1.…`), diffusers uses its own
 * (`unet.down_blocks.1.attentions.0.…`). Paths already in the asked naming, and other components'
 * modules, stay as they are.
 */
export function sdxlUnetNaming(adapter: LoraAdapter, naming: 'ldm' | 'diffusers'): LoraAdapter {
  const rename = (rest: string): string | undefined =>
    naming === 'ldm'
      ? diffusersUnetToLdm(rest, SDXL_UNET_LAYOUT)
      : unetKeyToDiffusers(`${rest}.weight`, SDXL_UNET_LAYOUT.layersPerBlock)?.slice(0, -'.weight'.length);
  return new Map(
    [...adapter].map(([path, module]) => {
      const renamed = path.startsWith('unet.') ? rename(path.slice('unet.'.length)) : undefined;
      return [renamed === undefined ? path : `unet.${renamed}`, module];
    }),
  );
}
