/**
 * Every tensor name and shape of an SD 1.5 or 2.x single-file checkpoint, written from the LDM
 * architecture (openaimodel.py UNetModel as v1-/v2-inference.yaml configure it, transformers'
 * CLIPTextModel ViT-L/14 or OpenCLIP's ViT-H/14 text tower, the AutoencoderKL Encoder/Decoder)
 * rather than from this package's key mapping, so that tests and benchmarks can synthesise a
 * real-size checkpoint without one. Other sizes of the same architectures (the tiny test and demo
 * models) come from passing a config.
 */
import {
  type ClipTextConfig,
  SD15_TEXT_ENCODER,
  SD15_UNET,
  SD15_VAE,
  SD21_TEXT_ENCODER,
  type UnetConfig,
  type VaeEncoderConfig,
} from './config.ts';

export type Shapes = [string, number[]][];

const conv = (name: string, out: number, inp: number, k: number): Shapes => [
  [`${name}.weight`, [out, inp, k, k]],
  [`${name}.bias`, [out]],
];
const linear = (name: string, out: number, inp: number, bias = true): Shapes => [
  [`${name}.weight`, [out, inp]],
  ...(bias ? ([[`${name}.bias`, [out]]] as Shapes) : []),
];
const norm = (name: string, c: number): Shapes => [
  [`${name}.weight`, [c]],
  [`${name}.bias`, [c]],
];

/** openaimodel.py ResBlock. */
const ldmResBlock = (p: string, inp: number, out: number, emb: number): Shapes => [
  ...norm(`${p}.in_layers.0`, inp),
  ...conv(`${p}.in_layers.2`, out, inp, 3),
  ...linear(`${p}.emb_layers.1`, out, emb),
  ...norm(`${p}.out_layers.0`, out),
  ...conv(`${p}.out_layers.3`, out, out, 3),
  ...(inp === out ? [] : conv(`${p}.skip_connection`, out, inp, 1)),
];

/** attention.py SpatialTransformer with `depth` BasicTransformerBlocks, conv (or `use_linear`) projections. */
const ldmSpatialTransformer = (
  p: string,
  c: number,
  context: number,
  useLinear: boolean,
  depth: number,
): Shapes => {
  const projection = (name: string) => (useLinear ? linear(name, c, c) : conv(name, c, c, 1));
  const block = (b: string): Shapes => {
    const attention = (a: string, kv: number): Shapes => [
      ...linear(`${b}.${a}.to_q`, c, c, false),
      ...linear(`${b}.${a}.to_k`, c, kv, false),
      ...linear(`${b}.${a}.to_v`, c, kv, false),
      ...linear(`${b}.${a}.to_out.0`, c, c),
    ];
    return [
      ...attention('attn1', c),
      ...linear(`${b}.ff.net.0.proj`, 8 * c, c),
      ...linear(`${b}.ff.net.2`, c, 4 * c),
      ...attention('attn2', context),
      ...norm(`${b}.norm1`, c),
      ...norm(`${b}.norm2`, c),
      ...norm(`${b}.norm3`, c),
    ];
  };
  return [
    ...norm(`${p}.norm`, c),
    ...projection(`${p}.proj_in`),
    ...Array.from({ length: depth }, (_, i) => block(`${p}.transformer_blocks.${i}`)).flat(),
    ...projection(`${p}.proj_out`),
  ];
};

/**
 * openaimodel.py UNetModel as v1-inference.yaml configures it (or as `config` sizes it: SDXL's
 * sd_xl_base.yaml adds `label_emb` and several transformer blocks per level).
 */
export function ldmUnet(config: UnetConfig = SD15_UNET): Shapes {
  const channels = config.blockOutChannels;
  const [mc, resBlocks] = [channels[0]!, config.layersPerBlock];
  const transformer = (p: string, c: number, level: number) =>
    ldmSpatialTransformer(
      p,
      c,
      config.crossAttentionDim,
      config.linearProjection ?? false,
      config.transformerDepth?.[level] ?? 1,
    );
  const emb = 4 * mc;
  const out: Shapes = [
    ...linear('time_embed.0', emb, mc),
    ...linear('time_embed.2', emb, emb),
    ...(config.textTime
      ? [...linear('label_emb.0.0', emb, config.textTime.inputDim), ...linear('label_emb.0.2', emb, emb)]
      : []),
    ...conv('input_blocks.0.0', mc, config.inChannels, 3),
  ];
  const chans = [mc];
  let [ch, n] = [mc, 1];
  channels.forEach((width, level) => {
    for (let r = 0; r < resBlocks; r++, n++) {
      out.push(...ldmResBlock(`input_blocks.${n}.0`, ch, width, emb));
      ch = width;
      if (config.crossAttention[level]) out.push(...transformer(`input_blocks.${n}.1`, ch, level));
      chans.push(ch);
    }
    if (level !== channels.length - 1) {
      out.push(...conv(`input_blocks.${n++}.0.op`, ch, ch, 3));
      chans.push(ch);
    }
  });
  out.push(
    ...ldmResBlock('middle_block.0', ch, ch, emb),
    ...transformer('middle_block.1', ch, channels.length - 1),
  );
  out.push(...ldmResBlock('middle_block.2', ch, ch, emb));
  n = 0;
  [...channels.entries()].reverse().forEach(([level, width]) => {
    for (let r = 0; r <= resBlocks; r++, n++) {
      const layers = [ldmResBlock(`output_blocks.${n}.0`, ch + chans.pop()!, width, emb)];
      ch = width;
      if (config.crossAttention[level]) layers.push(transformer(`output_blocks.${n}.1`, ch, level));
      if (level && r === resBlocks) layers.push(conv(`output_blocks.${n}.${layers.length}.conv`, ch, ch, 3));
      out.push(...layers.flat());
    }
  });
  out.push(...norm('out.0', mc), ...conv('out.2', config.outChannels, mc, 3));
  return out;
}

/** transformers CLIPTextModel, ViT-L/14 (or as `config` sizes it). */
export function clipTextModel(config: ClipTextConfig = SD15_TEXT_ENCODER): Shapes {
  const [d, inner] = [config.hiddenSize, config.intermediateSize];
  const out: Shapes = [
    ['text_model.embeddings.token_embedding.weight', [config.vocabSize, d]],
    ['text_model.embeddings.position_embedding.weight', [config.maxPositions, d]],
  ];
  for (let l = 0; l < config.numLayers; l++) {
    const p = `text_model.encoder.layers.${l}`;
    for (const proj of ['k_proj', 'v_proj', 'q_proj', 'out_proj'])
      out.push(...linear(`${p}.self_attn.${proj}`, d, d));
    out.push(...norm(`${p}.layer_norm1`, d), ...linear(`${p}.mlp.fc1`, inner, d));
    out.push(...linear(`${p}.mlp.fc2`, d, inner), ...norm(`${p}.layer_norm2`, d));
  }
  return [...out, ...norm('text_model.final_layer_norm', d)];
}

/**
 * OpenCLIP's text tower (ViT-H-14.json text_cfg, or as `config` sizes it) in its own names, as SD
 * 2.x single files hold it under `cond_stage_model.model.`: `config.numLayers` + `unrun` resblocks
 * (SD 2.x never runs the last; SDXL's ViT-bigG runs all, `unrun` 0), q, k and v fused in
 * `attn.in_proj_*`, the contrastive head (`text_projection` [width, embed_dim], `logit_scale`).
 */
export function openClipTextModel(
  config: ClipTextConfig = SD21_TEXT_ENCODER,
  embedDim = config.projectionDim ?? 1024,
  unrun = config.projectionDim === undefined ? 1 : 0,
): Shapes {
  const [d, inner] = [config.hiddenSize, config.intermediateSize];
  const out: Shapes = [
    ['positional_embedding', [config.maxPositions, d]],
    ['text_projection', [d, embedDim]],
    ['logit_scale', []],
    ['token_embedding.weight', [config.vocabSize, d]],
  ];
  for (let l = 0; l < config.numLayers + unrun; l++) {
    const p = `transformer.resblocks.${l}`;
    out.push([`${p}.attn.in_proj_weight`, [3 * d, d]], [`${p}.attn.in_proj_bias`, [3 * d]]);
    out.push(...linear(`${p}.attn.out_proj`, d, d), ...norm(`${p}.ln_1`, d));
    out.push(...linear(`${p}.mlp.c_fc`, inner, d), ...linear(`${p}.mlp.c_proj`, d, inner));
    out.push(...norm(`${p}.ln_2`, d));
  }
  return [...out, ...norm('ln_final', d)];
}

/** ldm/modules/diffusionmodules/model.py ResnetBlock (no time embedding). */
const vaeResnet = (p: string, inp: number, out: number): Shapes => [
  ...norm(`${p}.norm1`, inp),
  ...conv(`${p}.conv1`, out, inp, 3),
  ...norm(`${p}.norm2`, out),
  ...conv(`${p}.conv2`, out, out, 3),
  ...(inp === out ? [] : conv(`${p}.nin_shortcut`, out, inp, 1)),
];
const vaeAttention = (p: string, c: number): Shapes => [
  ...norm(`${p}.norm`, c),
  ...['q', 'k', 'v', 'proj_out'].flatMap((n) => conv(`${p}.${n}`, c, c, 1)),
];

/** AutoencoderKL (ddconfig ch 128, ch_mult [1,2,4,4], 2 res blocks, z 4, double_z, or as `config` sizes it), decoder included. */
export function ldmVae(config: VaeEncoderConfig = SD15_VAE): Shapes {
  const channels = config.blockOutChannels;
  const [first, last, blocks, z] = [
    channels[0]!,
    channels.at(-1)!,
    config.layersPerBlock,
    config.latentChannels,
  ];
  const out: Shapes = [...conv('encoder.conv_in', first, config.inChannels, 3)];
  let c = first;
  channels.forEach((width, i) => {
    for (let j = 0; j < blocks; j++) {
      out.push(...vaeResnet(`encoder.down.${i}.block.${j}`, c, width));
      c = width;
    }
    if (i !== channels.length - 1) out.push(...conv(`encoder.down.${i}.downsample.conv`, c, c, 3));
  });
  out.push(...vaeResnet('encoder.mid.block_1', c, c), ...vaeAttention('encoder.mid.attn_1', c));
  out.push(...vaeResnet('encoder.mid.block_2', c, c), ...norm('encoder.norm_out', c));
  out.push(
    ...conv('encoder.conv_out', 2 * z, c, 3),
    ...conv('quant_conv', 2 * z, 2 * z, 1),
    ...conv('post_quant_conv', z, z, 1),
  );
  out.push(...conv('decoder.conv_in', last, z, 3), ...vaeResnet('decoder.mid.block_1', last, last));
  out.push(...vaeAttention('decoder.mid.attn_1', last), ...vaeResnet('decoder.mid.block_2', last, last));
  c = last;
  [...channels.entries()].reverse().forEach(([i, width]) => {
    for (let j = 0; j <= blocks; j++) {
      out.push(...vaeResnet(`decoder.up.${i}.block.${j}`, c, width));
      c = width;
    }
    if (i !== 0) out.push(...conv(`decoder.up.${i}.upsample.conv`, c, c, 3));
  });
  return [
    ...out,
    ...norm('decoder.norm_out', first),
    ...conv('decoder.conv_out', config.inChannels, first, 3),
  ];
}
