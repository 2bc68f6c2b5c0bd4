/**
 * Every tensor name and shape of an SD 1.5 single-file checkpoint, written from the LDM
 * architecture (openaimodel.py UNetModel as v1-inference.yaml configures it, transformers'
 * CLIPTextModel ViT-L/14, the AutoencoderKL Encoder/Decoder) rather than from this package's key
 * mapping, so that tests and benchmarks can synthesise a real-size checkpoint without one.
 */

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
const ldmResBlock = (p: string, inp: number, out: number): Shapes => [
  ...norm(`${p}.in_layers.0`, inp),
  ...conv(`${p}.in_layers.2`, out, inp, 3),
  ...linear(`${p}.emb_layers.1`, out, 1280),
  ...norm(`${p}.out_layers.0`, out),
  ...conv(`${p}.out_layers.3`, out, out, 3),
  ...(inp === out ? [] : conv(`${p}.skip_connection`, out, inp, 1)),
];

/** attention.py SpatialTransformer with one BasicTransformerBlock, conv projections. */
const ldmSpatialTransformer = (p: string, c: number): Shapes => {
  const b = `${p}.transformer_blocks.0`;
  const attention = (a: string, kv: number): Shapes => [
    ...linear(`${b}.${a}.to_q`, c, c, false),
    ...linear(`${b}.${a}.to_k`, c, kv, false),
    ...linear(`${b}.${a}.to_v`, c, kv, false),
    ...linear(`${b}.${a}.to_out.0`, c, c),
  ];
  return [
    ...norm(`${p}.norm`, c),
    ...conv(`${p}.proj_in`, c, c, 1),
    ...attention('attn1', c),
    ...linear(`${b}.ff.net.0.proj`, 8 * c, c),
    ...linear(`${b}.ff.net.2`, c, 4 * c),
    ...attention('attn2', 768),
    ...norm(`${b}.norm1`, c),
    ...norm(`${b}.norm2`, c),
    ...norm(`${b}.norm3`, c),
    ...conv(`${p}.proj_out`, c, c, 1),
  ];
};

/** openaimodel.py UNetModel as v1-inference.yaml configures it. */
export function ldmUnet(): Shapes {
  const [mc, mult, resBlocks] = [320, [1, 2, 4, 4], 2];
  const attentionAt = [1, 2, 4];
  const out: Shapes = [
    ...linear('time_embed.0', 1280, 320),
    ...linear('time_embed.2', 1280, 1280),
    ...conv('input_blocks.0.0', 320, 4, 3),
  ];
  const chans = [mc];
  let [ch, ds, n] = [mc, 1, 1];
  mult.forEach((m, level) => {
    for (let r = 0; r < resBlocks; r++, n++) {
      out.push(...ldmResBlock(`input_blocks.${n}.0`, ch, m * mc));
      ch = m * mc;
      if (attentionAt.includes(ds)) out.push(...ldmSpatialTransformer(`input_blocks.${n}.1`, ch));
      chans.push(ch);
    }
    if (level !== mult.length - 1) {
      out.push(...conv(`input_blocks.${n++}.0.op`, ch, ch, 3));
      chans.push(ch);
      ds *= 2;
    }
  });
  out.push(...ldmResBlock('middle_block.0', ch, ch), ...ldmSpatialTransformer('middle_block.1', ch));
  out.push(...ldmResBlock('middle_block.2', ch, ch));
  n = 0;
  [...mult.entries()].reverse().forEach(([level, m]) => {
    for (let r = 0; r <= resBlocks; r++, n++) {
      const layers = [ldmResBlock(`output_blocks.${n}.0`, ch + chans.pop()!, m * mc)];
      ch = m * mc;
      if (attentionAt.includes(ds)) layers.push(ldmSpatialTransformer(`output_blocks.${n}.1`, ch));
      if (level && r === resBlocks) {
        layers.push(conv(`output_blocks.${n}.${layers.length}.conv`, ch, ch, 3));
        ds /= 2;
      }
      out.push(...layers.flat());
    }
  });
  out.push(...norm('out.0', 320), ...conv('out.2', 4, 320, 3));
  return out;
}

/** transformers CLIPTextModel, ViT-L/14. */
export function clipTextModel(): Shapes {
  const out: Shapes = [
    ['text_model.embeddings.token_embedding.weight', [49408, 768]],
    ['text_model.embeddings.position_embedding.weight', [77, 768]],
  ];
  for (let l = 0; l < 12; l++) {
    const p = `text_model.encoder.layers.${l}`;
    for (const proj of ['k_proj', 'v_proj', 'q_proj', 'out_proj'])
      out.push(...linear(`${p}.self_attn.${proj}`, 768, 768));
    out.push(...norm(`${p}.layer_norm1`, 768), ...linear(`${p}.mlp.fc1`, 3072, 768));
    out.push(...linear(`${p}.mlp.fc2`, 768, 3072), ...norm(`${p}.layer_norm2`, 768));
  }
  return [...out, ...norm('text_model.final_layer_norm', 768)];
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

/** AutoencoderKL (ddconfig ch 128, ch_mult [1,2,4,4], 2 res blocks, z 4, double_z), decoder included. */
export function ldmVae(): Shapes {
  const mult = [1, 2, 4, 4];
  const out: Shapes = [...conv('encoder.conv_in', 128, 3, 3)];
  let c = 128;
  mult.forEach((m, i) => {
    for (let j = 0; j < 2; j++) {
      out.push(...vaeResnet(`encoder.down.${i}.block.${j}`, c, 128 * m));
      c = 128 * m;
    }
    if (i !== mult.length - 1) out.push(...conv(`encoder.down.${i}.downsample.conv`, c, c, 3));
  });
  out.push(...vaeResnet('encoder.mid.block_1', c, c), ...vaeAttention('encoder.mid.attn_1', c));
  out.push(...vaeResnet('encoder.mid.block_2', c, c), ...norm('encoder.norm_out', c));
  out.push(
    ...conv('encoder.conv_out', 8, c, 3),
    ...conv('quant_conv', 8, 8, 1),
    ...conv('post_quant_conv', 4, 4, 1),
  );
  out.push(...conv('decoder.conv_in', 512, 4, 3), ...vaeResnet('decoder.mid.block_1', 512, 512));
  out.push(...vaeAttention('decoder.mid.attn_1', 512), ...vaeResnet('decoder.mid.block_2', 512, 512));
  c = 512;
  [...mult.entries()].reverse().forEach(([i, m]) => {
    for (let j = 0; j < 3; j++) {
      out.push(...vaeResnet(`decoder.up.${i}.block.${j}`, c, 128 * m));
      c = 128 * m;
    }
    if (i !== 0) out.push(...conv(`decoder.up.${i}.upsample.conv`, c, c, 3));
  });
  return [...out, ...norm('decoder.norm_out', 128), ...conv('decoder.conv_out', 3, 128, 3)];
}
