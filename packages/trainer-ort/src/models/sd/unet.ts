/**
 * The SD 1.x / 2.x UNet (diffusers UNet2DConditionModel with CrossAttnDownBlock2D / DownBlock2D,
 * UNetMidBlock2DCrossAttn, UpBlock2D / CrossAttnUpBlock2D): sinusoidal timestep embedding,
 * ResnetBlock2D, Transformer2DModel (GroupNorm, proj_in, self-attention, cross-attention to
 * the text states, GEGLU feed-forward, proj_out), strided-conv downsampling, nearest ×2
 * upsampling and skip connections. SD 2.x differs only in its sizes (heads of 64 channels, a
 * 1024-wide context) and its linear proj_in / proj_out; SDXL also in its levels (none attending at
 * full resolution), several transformer blocks per Transformer2D, and the `text_time` condition
 * added to the timestep embedding.
 */
import type { Tensor } from '@lora/engine';
import { add, cast, concat, gelu, mul, reshape, resizeNearest, silu, split, transpose } from '@lora/engine';
import { block } from '../memory.ts';
import type { UnetConfig } from './config.ts';
import {
  conv2d,
  groupNormLayer,
  layerNormLayer,
  linear,
  type ModelContext,
  multiHeadAttention,
  resnetBlock,
} from './layers.ts';

/** diffusers `get_timestep_embedding` with flip_sin_to_cos and freq_shift 0: [cos(t·f), sin(t·f)]. */
function timestepEmbedding(timesteps: Tensor, dim: number): Tensor {
  const graph = timesteps.graph;
  const half = dim / 2;
  // Float32 at every step, as torch computes exp(-ln(10000)·i / half).
  const lnPeriod = Math.fround(-Math.log(10000));
  const frequencies = Array.from({ length: half }, (_, i) =>
    Math.fround(Math.exp(Math.fround(Math.fround(lnPeriod * i) / half))),
  );
  const angles = mul(
    reshape(cast(timesteps, 'float32'), [-1, 1]),
    graph.constant(frequencies, 'float32', [1, half]),
  );
  const [cos, sin] = ['Cos', 'Sin'].map(
    (op) => graph.addNode(op, [angles], [{ dtype: 'float32', shape: angles.shape }])[0]!,
  );
  return concat([cos!, sin!], -1);
}

/** Self-attention, cross-attention to the text states, GEGLU feed-forward, each pre-norm with a residual. */
function basicTransformerBlock(
  ctx: ModelContext,
  x: Tensor,
  context: Tensor,
  block: string,
  heads: number,
  c: number,
): Tensor {
  const attention = (input: Tensor, kv: Tensor, name: string) =>
    multiHeadAttention(ctx, input, kv, `${block}.${name}`, {
      heads,
      names: ['to_q', 'to_k', 'to_v', 'to_out.0'],
      bias: false,
    });
  const norm1 = layerNormLayer(ctx, x, `${block}.norm1`, 1e-5);
  let hidden = add(attention(norm1, norm1, 'attn1'), x);
  hidden = add(attention(layerNormLayer(ctx, hidden, `${block}.norm2`, 1e-5), context, 'attn2'), hidden);
  // GEGLU: one projection to 2 × 4c, split into value and gate; exact GELU on the gate.
  const projected = linear(
    ctx,
    layerNormLayer(ctx, hidden, `${block}.norm3`, 1e-5),
    `${block}.ff.net.0.proj`,
    8 * c,
  );
  const [value, gate] = split(projected, [4 * c, 4 * c], -1);
  return add(linear(ctx, mul(value!, gelu(gate!)), `${block}.ff.net.2`, c), hidden);
}

/**
 * One Transformer2DModel with `depth` BasicTransformerBlocks (SD 1.x / 2.x: 1). proj_in / proj_out
 * are 1×1 convs (SD 1.x) or, with `linear`, Linear layers on the flattened tokens (SD 2.x, XL):
 * the same map, but its own weight shape, and so its own LoRA shape.
 */
function transformer2d(
  ctx: ModelContext,
  x: Tensor,
  context: Tensor,
  path: string,
  heads: number,
  groups: number,
  linearProjection: boolean,
  depth: number,
) {
  return x.graph.scope(path, () => {
    const [, c, h, w] = x.shape as number[];
    const tokens = (t: Tensor) => reshape(transpose(t, [0, 2, 3, 1]), [0, h! * w!, c!]);
    const normed = groupNormLayer(ctx, x, `${path}.norm`, groups, 1e-6);
    let hidden = linearProjection
      ? linear(ctx, tokens(normed), `${path}.proj_in`, c!)
      : tokens(conv2d(ctx, normed, `${path}.proj_in`, c!, 1));
    for (let i = 0; i < depth; i++)
      hidden = basicTransformerBlock(ctx, hidden, context, `${path}.transformer_blocks.${i}`, heads, c!);
    const image = (t: Tensor) => transpose(reshape(t, [0, h!, w!, c!]), [0, 3, 1, 2]);
    const out = linearProjection
      ? image(linear(ctx, hidden, `${path}.proj_out`, c!))
      : conv2d(ctx, image(hidden), `${path}.proj_out`, c!, 1);
    return add(out, x);
  });
}

/** SDXL's `text_time` condition: the pooled text embedding and the six size / crop values per example. */
export interface UnetTextTime {
  /** `[b, inputDim − 6·timeEmbedDim]`: the second text encoder's pooled, projected output. */
  readonly textEmbeds: Tensor;
  /** `[b, 6]` (any numeric type): original height, width, crop top, left, target height, width. */
  readonly timeIds: Tensor;
}

/**
 * The UNet's noise (or v) prediction for `sample [b, in, h, w]` (static h, w divisible by
 * 2^(levels−1)), `timesteps [b]` (any numeric type) and `context [b, tokens, crossAttentionDim]`;
 * an SDXL UNet (`config.textTime`) also takes `textTime`.
 */
export function buildUnet(
  ctx: ModelContext,
  config: UnetConfig,
  sample: Tensor,
  timesteps: Tensor,
  context: Tensor,
  textTime?: UnetTextTime,
): Tensor {
  const graph = sample.graph;
  const channels = config.blockOutChannels;
  const levels = channels.length;
  const [, , height, width] = sample.shape;
  const factor = 2 ** (levels - 1);
  if (typeof height !== 'number' || typeof width !== 'number' || height % factor || width % factor) {
    throw graph.error(
      'E_SHAPE_MISMATCH',
      'UNet',
      `sample ${sample} needs static height and width divisible by ${factor}`,
    );
  }
  const norm = { groups: config.normGroups, epsilon: config.normEpsilon };
  const embedDim = 4 * channels[0]!;
  if (Boolean(config.textTime) !== Boolean(textTime)) {
    throw graph.error(
      'E_INVALID_ARGUMENT',
      'UNet',
      config.textTime
        ? 'an SDXL UNet needs the pooled text embedding and size ids'
        : 'only an SDXL UNet takes size ids',
    );
  }
  const dtype = ctx.dtype ?? 'float32';
  const tembAct = graph.scope('time_embedding', () => {
    const t = cast(timestepEmbedding(timesteps, channels[0]!), dtype);
    const hidden = silu(linear(ctx, t, 'time_embedding.linear_1', embedDim));
    let temb = linear(ctx, hidden, 'time_embedding.linear_2', embedDim);
    if (config.textTime && textTime) {
      // sgm: emb + label_emb(cat(pooled, sinusoidal(each size value))); diffusers' add_embedding.
      const { timeEmbedDim, inputDim } = config.textTime;
      const sizes = reshape(timestepEmbedding(reshape(textTime.timeIds, [-1]), timeEmbedDim), [
        -1,
        6 * timeEmbedDim,
      ]);
      const vector = concat([cast(textTime.textEmbeds, dtype), cast(sizes, dtype)], -1);
      if (vector.shape[1] !== inputDim) {
        throw graph.error(
          'E_SHAPE_MISMATCH',
          'UNet',
          `the text_time vector ${vector} must have ${inputDim} values`,
        );
      }
      const added = linear(
        ctx,
        silu(linear(ctx, vector, 'add_embedding.linear_1', embedDim)),
        'add_embedding.linear_2',
        embedDim,
      );
      temb = add(temb, added);
    }
    return silu(temb);
  });

  // Each ResNet and transformer block is one gradient checkpoint when the memory options ask.
  const resnet = (x: Tensor, path: string, out: number) =>
    block(ctx.memory, x, (input) => resnetBlock(ctx, input, path, out, norm, tembAct));
  const depth = (level: number) => config.transformerDepth?.[level] ?? 1;
  const transformer = (x: Tensor, path: string, level: number) =>
    block(ctx.memory, x, (input) =>
      transformer2d(
        ctx,
        input,
        context,
        path,
        config.attentionHeads[level]!,
        norm.groups,
        config.linearProjection ?? false,
        depth(level),
      ),
    );

  let h = conv2d(ctx, sample, 'conv_in', channels[0]!, 3);
  const skips: Tensor[] = [h];
  channels.forEach((out, i) => {
    for (let j = 0; j < config.layersPerBlock; j++) {
      h = resnet(h, `down_blocks.${i}.resnets.${j}`, out);
      if (config.crossAttention[i]) h = transformer(h, `down_blocks.${i}.attentions.${j}`, i);
      skips.push(h);
    }
    if (i < levels - 1) {
      h = conv2d(ctx, h, `down_blocks.${i}.downsamplers.0.conv`, out, 3, {
        strides: [2, 2],
        pads: [1, 1, 1, 1],
      });
      skips.push(h);
    }
  });

  const last = channels[levels - 1]!;
  h = resnet(h, 'mid_block.resnets.0', last);
  h = transformer(h, 'mid_block.attentions.0', levels - 1);
  h = resnet(h, 'mid_block.resnets.1', last);

  for (let i = 0; i < levels; i++) {
    const level = levels - 1 - i;
    const out = channels[level]!;
    for (let j = 0; j <= config.layersPerBlock; j++) {
      h = resnet(concat([h, skips.pop()!], 1), `up_blocks.${i}.resnets.${j}`, out);
      if (config.crossAttention[level]) {
        h = transformer(h, `up_blocks.${i}.attentions.${j}`, level);
      }
    }
    if (i < levels - 1) h = conv2d(ctx, resizeNearest(h, 2), `up_blocks.${i}.upsamplers.0.conv`, out, 3);
  }
  h = silu(groupNormLayer(ctx, h, 'conv_norm_out', norm.groups, norm.epsilon));
  return conv2d(ctx, h, 'conv_out', config.outChannels, 3);
}
