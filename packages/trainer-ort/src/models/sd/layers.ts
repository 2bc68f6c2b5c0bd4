/**
 * The modules the three SD models share (Linear, Conv2d, GroupNorm, LayerNorm, ResnetBlock2D,
 * multi-head attention), each reading its weights by diffusers module path and, where the LoRA
 * plan says so, wrapped in a LoRA layer named after that path.
 */

import { flattenPath } from '@lora/adapters';
import type { DType, Tensor } from '@lora/engine';
import {
  add,
  type ConvOptions,
  cast,
  castAtUse,
  conv,
  groupNorm,
  layerNorm,
  matmul,
  reshape,
  scaledDotProductAttention,
  silu,
  transpose,
  unsqueeze,
} from '@lora/engine';
import { type LoraLayer, type LoraOptions, loraLayer } from '../../lora.ts';
import type { MemoryOptions } from '../memory.ts';
import type { SdCheckpoint } from './checkpoint.ts';
import type { SdComponent } from './keys.ts';

/** The models that take LoRA. */
export type SdLoraComponent = 'unet' | 'text_encoder' | 'text_encoder_2';

/** A LoRA module of the UNet or a text encoder, named by its diffusers module path. */
export interface SdLoraModule {
  readonly component: SdLoraComponent;
  /** Module path inside its model, e.g. `down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q`. */
  readonly path: string;
  /** The path in kohya's model: this one, but SDXL's UNet modules by their LDM path (`input_blocks.4.1.…`). */
  readonly kohyaPath: string;
  /** kohya's name (`kohyaModuleName`): `lora_unet_…`, `lora_te_…` (SDXL: `lora_te1_…`, `lora_te2_…`). */
  readonly kohyaName: string;
  readonly layer: LoraLayer;
}

/**
 * kohya's module name (networks/lora.py: prefix + the module's path in kohya's own model, dots →
 * underscores). kohya's SD 1.x / 2.x UNet is diffusers', so its paths are these; its SDXL UNet
 * (sdxl_original_unet.py) keeps the original LDM names (`input_blocks.4.1.…`), so `ldmPath` gives
 * them, and SDXL's text encoders are `lora_te1_` / `lora_te2_`.
 */
export function kohyaModuleName(
  component: SdLoraComponent,
  path: string,
  ldmPath?: (diffusersPath: string) => string | undefined,
): string {
  if (component === 'unet') return `lora_unet_${flattenPath(ldmPath?.(path) ?? path)}`;
  const prefix = component === 'text_encoder_2' ? 'lora_te2_' : ldmPath ? 'lora_te1_' : 'lora_te_';
  return `${prefix}${flattenPath(path)}`;
}

/** The rank and alpha of the UNet's 3×3 convolutions (kohya's LoCon, `conv_dim` / `conv_alpha`). */
export interface ConvNetwork {
  rank: number;
  alpha: number;
}

/** What kohya's `conv_dim` adds to the UNet: the ResNet, downsampler and upsampler blocks' layers. */
const LOCON_MODULE =
  /(^|\.)(resnets\.\d+\.(conv1|conv2|conv_shortcut|time_emb_proj)|(down|up)samplers\.0\.conv)$/;
/** Of those, the 3×3 convolutions, which take conv_rank; `time_emb_proj` and `conv_shortcut` keep lora_rank. */
const LOCON_3X3 = /(^|\.)(resnets\.\d+\.(conv1|conv2)|(down|up)samplers\.0\.conv)$/;

/** Whether a module path (`unet.down_blocks.0.resnets.0.conv1`) is a 3×3 convolution LoCon trains at conv_rank. */
export const isLoconConv = (path: string): boolean => LOCON_3X3.test(path);

/**
 * Which modules of one model get LoRA: a target matches a module path when its segments appear
 * in the path as whole segments (`to_q` matches `…attn1.to_q`, `to_out` matches `…to_out.0`,
 * `ff` matches `…ff.net.0.proj` and `…ff.net.2`; `to` matches nothing). With `conv`, the UNet's
 * ResNet, downsampler and upsampler layers join, the 3×3 convolutions at `conv`'s rank and alpha.
 */
export class LoraPlan {
  readonly modules: SdLoraModule[] = [];

  constructor(
    readonly component: SdLoraComponent,
    readonly targets: readonly string[],
    readonly options: LoraOptions,
    readonly conv?: ConvNetwork,
    /** SDXL: a UNet path's LDM name, which kohya names its UNet modules by (see `kohyaModuleName`). */
    readonly ldmPath?: (diffusersPath: string) => string | undefined,
  ) {}

  wants(path: string): boolean {
    const padded = `.${path}.`;
    if (this.conv && this.component === 'unet' && LOCON_MODULE.test(path)) return true;
    return this.targets.some((t) => padded.includes(`.${t}.`));
  }

  /** The LoRA settings of the module at `path`. */
  optionsFor(path: string): LoraOptions {
    return this.conv && isLoconConv(path) ? { ...this.options, ...this.conv } : this.options;
  }

  record(path: string, layer: LoraLayer): void {
    const kohyaPath = (this.component === 'unet' && this.ldmPath?.(path)) || path;
    const kohyaName = kohyaModuleName(this.component, path, this.ldmPath);
    this.modules.push({ component: this.component, path, kohyaPath, kohyaName, layer });
  }
}

/** What a module builder needs: where weights come from and which modules get LoRA. */
export interface ModelContext {
  readonly checkpoint: SdCheckpoint;
  readonly component: SdComponent;
  readonly lora?: LoraPlan;
  /** The type the module computes in (its weights are cast to it); default float32. */
  readonly dtype?: DType;
  /** Checkpointed blocks and attention in query blocks. */
  readonly memory?: MemoryOptions;
}

/**
 * A weight in the module's compute type. Matrices and kernels are converted at each use (the
 * file's F16 stays 2 bytes a weight between uses); vectors once, when the session loads.
 */
function weight(ctx: ModelContext, x: Tensor, key: string, shape: readonly number[]): Tensor {
  const stored = ctx.checkpoint.weight(x.graph, ctx.component, key, shape, ctx.memory?.weightDtype);
  const dtype = ctx.dtype ?? 'float32';
  return shape.length > 1 ? castAtUse(stored, dtype, x) : cast(stored, dtype);
}

const staticDim = (x: Tensor, axis: number, what: string): number => {
  const d = x.shape[axis];
  if (typeof d !== 'number') {
    throw x.graph.error('E_SHAPE_MISMATCH', what, `dim ${axis} of ${x} must be static`);
  }
  return d;
};

/** `x·Wᵀ (+ b)` with `W [out, in]`, in = last dim of `x`. */
export function linear(ctx: ModelContext, x: Tensor, path: string, out: number, bias = true): Tensor {
  const inFeatures = staticDim(x, x.rank - 1, `Linear '${path}'`);
  const w = weight(ctx, x, `${path}.weight`, [out, inFeatures]);
  const b = bias ? weight(ctx, x, `${path}.bias`, [out]) : undefined;
  const plan = ctx.lora;
  if (plan?.wants(path)) {
    const layer = loraLayer(x, w, `${plan.component}.${path}`, plan.optionsFor(path), b ? { bias: b } : {});
    plan.record(path, layer);
    return layer.output;
  }
  const y = matmul(x, transpose(w));
  return b ? add(y, b) : y;
}

/** Conv2d with bias, square kernel `k`, "same" padding unless `options` say otherwise. */
export function conv2d(
  ctx: ModelContext,
  x: Tensor,
  path: string,
  out: number,
  k: number,
  options: ConvOptions = { pads: Array(4).fill((k - 1) / 2) },
): Tensor {
  const inChannels = staticDim(x, 1, `Conv2d '${path}'`);
  const w = weight(ctx, x, `${path}.weight`, [out, inChannels, k, k]);
  const b = weight(ctx, x, `${path}.bias`, [out]);
  const plan = ctx.lora;
  if (plan?.wants(path)) {
    const layer = loraLayer(x, w, `${plan.component}.${path}`, plan.optionsFor(path), {
      bias: b,
      conv: options,
    });
    plan.record(path, layer);
    return layer.output;
  }
  return conv(x, w, b, options);
}

export function groupNormLayer(ctx: ModelContext, x: Tensor, path: string, groups: number, epsilon: number) {
  const c = staticDim(x, 1, `GroupNorm '${path}'`);
  const scale = weight(ctx, x, `${path}.weight`, [c]);
  return groupNorm(x, scale, weight(ctx, x, `${path}.bias`, [c]), groups, { epsilon });
}

export function layerNormLayer(ctx: ModelContext, x: Tensor, path: string, epsilon: number) {
  const c = staticDim(x, x.rank - 1, `LayerNorm '${path}'`);
  const scale = weight(ctx, x, `${path}.weight`, [c]);
  return layerNorm(x, scale, weight(ctx, x, `${path}.bias`, [c]), { epsilon });
}

/**
 * diffusers ResnetBlock2D: norm1 → SiLU → conv1 (+ time_emb_proj(SiLU(temb))) → norm2 → SiLU →
 * conv2, plus the input (through a 1×1 conv_shortcut when the channels change). `tembAct` is
 * SiLU(temb), shared by every block.
 */
export function resnetBlock(
  ctx: ModelContext,
  x: Tensor,
  path: string,
  out: number,
  norm: { groups: number; epsilon: number },
  tembAct?: Tensor,
): Tensor {
  return x.graph.scope(path, () => {
    let h = conv2d(
      ctx,
      silu(groupNormLayer(ctx, x, `${path}.norm1`, norm.groups, norm.epsilon)),
      `${path}.conv1`,
      out,
      3,
    );
    if (tembAct) h = add(h, unsqueeze(linear(ctx, tembAct, `${path}.time_emb_proj`, out), [2, 3]));
    h = conv2d(
      ctx,
      silu(groupNormLayer(ctx, h, `${path}.norm2`, norm.groups, norm.epsilon)),
      `${path}.conv2`,
      out,
      3,
    );
    const shortcut = x.shape[1] === out ? x : conv2d(ctx, x, `${path}.conv_shortcut`, out, 1);
    return add(shortcut, h);
  });
}

/** `[b, s, heads·d]` → `[b, heads, s, d]`. */
const splitHeads = (x: Tensor, heads: number): Tensor =>
  transpose(reshape(x, [0, 0, heads, -1]), [0, 2, 1, 3]);

/** `[b, heads, s, d]` → `[b, s, heads·d]`. */
const mergeHeads = (x: Tensor): Tensor => reshape(transpose(x, [0, 2, 1, 3]), [0, 0, -1]);

/**
 * Multi-head attention over `[b, s, dim]` queries and `[b, t, ·]` keys/values with projections
 * named `names` under `path` (diffusers `to_q, to_k, to_v, to_out.0`; CLIP `q_proj, …, out_proj`).
 * `bias` is for the q/k/v projections; the output projection always has one.
 */
export function multiHeadAttention(
  ctx: ModelContext,
  x: Tensor,
  /** Keys and values come from here; `undefined` for self-attention. */
  context: Tensor | undefined,
  path: string,
  options: {
    heads: number;
    names: readonly [string, string, string, string];
    bias: boolean;
    causal?: boolean;
  },
): Tensor {
  const dim = staticDim(x, x.rank - 1, `Attention '${path}'`);
  const [q, k, v, o] = options.names;
  const project = (input: Tensor, name: string) =>
    splitHeads(linear(ctx, input, `${path}.${name}`, dim, options.bias), options.heads);
  const attended = scaledDotProductAttention(
    project(x, q),
    project(context ?? x, k),
    project(context ?? x, v),
    {
      causal: options.causal ?? false,
      ...(ctx.memory?.attentionQueryChunk ? { queryChunk: ctx.memory.attentionQueryChunk } : {}),
    },
  );
  return linear(ctx, mergeHeads(attended), `${path}.${o}`, dim, true);
}
