/**
 * The SD VAE (diffusers AutoencoderKL). The encoder (Encoder + quant_conv) gives the latents the
 * UNet trains on: the posterior mean, or a sample with caller-given noise, times the scaling
 * factor (0.18215 for SD 1.x); latents are computed once and cached. The decoder
 * (post_quant_conv + Decoder) turns sampled latents back into an image. Forward only.
 */
import type { Tensor } from '@lora/engine';
import { add, div, exp, mul, reshape, resizeNearest, silu, split, transpose } from '@lora/engine';
import type { VaeEncoderConfig } from './config.ts';
import { conv2d, groupNormLayer, type ModelContext, multiHeadAttention, resnetBlock } from './layers.ts';

/** The VAE's GroupNorms all use this epsilon. */
const VAE_NORM_EPSILON = 1e-6;

/** diffusers clamps the log-variance to this range before sampling. */
const LOGVAR_RANGE = [-30, 20] as const;

/** Single-head self-attention over the pixels, with a residual (UNetMidBlock2D's Attention). */
function midAttention(ctx: ModelContext, x: Tensor, path: string, groups: number): Tensor {
  return x.graph.scope(path, () => {
    const [, c, h, w] = x.shape as number[];
    const normed = groupNormLayer(ctx, x, `${path}.group_norm`, groups, VAE_NORM_EPSILON);
    const pixels = transpose(reshape(normed, [0, c!, h! * w!]), [0, 2, 1]);
    const attended = multiHeadAttention(ctx, pixels, undefined, path, {
      heads: 1,
      names: ['to_q', 'to_k', 'to_v', 'to_out.0'],
      bias: true,
    });
    return add(reshape(transpose(attended, [0, 2, 1]), [0, c!, h!, w!]), x);
  });
}

/**
 * Latents `[b, latentChannels, h/f, w/f]` of `image [b, in, h, w]` (values in [−1, 1]; static
 * h, w divisible by f = 2^(levels−1)). With `noise` (standard normal, the latents' shape) the
 * posterior is sampled: mean + exp(logvar / 2)·noise.
 */
export function buildVaeEncoder(
  ctx: ModelContext,
  config: VaeEncoderConfig,
  image: Tensor,
  noise?: Tensor,
): Tensor {
  const graph = image.graph;
  const channels = config.blockOutChannels;
  const factor = 2 ** (channels.length - 1);
  const [, , height, width] = image.shape;
  if (typeof height !== 'number' || typeof width !== 'number' || height % factor || width % factor) {
    throw graph.error(
      'E_SHAPE_MISMATCH',
      'VAE encoder',
      `image ${image} needs static height and width divisible by ${factor}`,
    );
  }
  const norm = { groups: config.normGroups, epsilon: VAE_NORM_EPSILON };
  let h = conv2d(ctx, image, 'encoder.conv_in', channels[0]!, 3);
  channels.forEach((out, i) => {
    for (let j = 0; j < config.layersPerBlock; j++) {
      h = resnetBlock(ctx, h, `encoder.down_blocks.${i}.resnets.${j}`, out, norm);
    }
    // LDM's Downsample pads right and bottom by one, then convolves with stride 2 and no padding.
    if (i < channels.length - 1) {
      h = conv2d(ctx, h, `encoder.down_blocks.${i}.downsamplers.0.conv`, out, 3, {
        strides: [2, 2],
        pads: [0, 0, 1, 1],
      });
    }
  });
  const last = channels[channels.length - 1]!;
  h = resnetBlock(ctx, h, 'encoder.mid_block.resnets.0', last, norm);
  h = midAttention(ctx, h, 'encoder.mid_block.attentions.0', norm.groups);
  h = resnetBlock(ctx, h, 'encoder.mid_block.resnets.1', last, norm);
  h = silu(groupNormLayer(ctx, h, 'encoder.conv_norm_out', norm.groups, VAE_NORM_EPSILON));
  const z = config.latentChannels;
  h = conv2d(ctx, h, 'encoder.conv_out', 2 * z, 3);
  const [mean, logvar] = split(conv2d(ctx, h, 'quant_conv', 2 * z, 1), [z, z], 1);
  let latents = mean!;
  if (noise) {
    const clamped = graph.addNode(
      'Clip',
      [logvar!, graph.scalar(LOGVAR_RANGE[0], 'float32'), graph.scalar(LOGVAR_RANGE[1], 'float32')],
      [{ dtype: 'float32', shape: logvar!.shape }],
    )[0]!;
    latents = add(latents, mul(exp(mul(clamped, 0.5)), noise));
  }
  return mul(latents, config.scalingFactor);
}

/**
 * The image `[b, channels, h·f, w·f]` (about −1 to 1) of `latents [b, latentChannels, h, w]` as
 * the UNet sees them (divided by the scaling factor first). diffusers' Decoder: the channels in
 * reverse, `layersPerBlock + 1` ResNets per level, nearest ×2 then a 3×3 convolution between levels.
 */
export function buildVaeDecoder(ctx: ModelContext, config: VaeEncoderConfig, latents: Tensor): Tensor {
  const channels = [...config.blockOutChannels].reverse();
  const norm = { groups: config.normGroups, epsilon: VAE_NORM_EPSILON };
  const z = config.latentChannels;
  let h = conv2d(ctx, div(latents, config.scalingFactor), 'post_quant_conv', z, 1);
  h = conv2d(ctx, h, 'decoder.conv_in', channels[0]!, 3);
  h = resnetBlock(ctx, h, 'decoder.mid_block.resnets.0', channels[0]!, norm);
  h = midAttention(ctx, h, 'decoder.mid_block.attentions.0', norm.groups);
  h = resnetBlock(ctx, h, 'decoder.mid_block.resnets.1', channels[0]!, norm);
  channels.forEach((out, i) => {
    for (let j = 0; j <= config.layersPerBlock; j++) {
      h = resnetBlock(ctx, h, `decoder.up_blocks.${i}.resnets.${j}`, out, norm);
    }
    if (i < channels.length - 1)
      h = conv2d(ctx, resizeNearest(h, 2), `decoder.up_blocks.${i}.upsamplers.0.conv`, out, 3);
  });
  h = silu(groupNormLayer(ctx, h, 'decoder.conv_norm_out', norm.groups, VAE_NORM_EPSILON));
  return conv2d(ctx, h, 'decoder.conv_out', config.inChannels, 3);
}
