/**
 * Real-size check for SDXL: a header with every tensor name and shape of an SDXL 1.0 base single
 * file (ldm-layout.ts with sd_xl_base.yaml's UNet, CLIP ViT-L under conditioner embedder 0,
 * OpenCLIP ViT-bigG in its own names under embedder 1, the VAE; no data), loaded with no sizes
 * given. The keys must name the family and the shapes the sizes; every tensor SDXL runs must be
 * consumed (q, k, v as thirds of bigG's fused in_proj, text_projection as a transposed Linear);
 * kohya's module list for the same targets; and every module must reach a weight of its shape
 * through A1111's and ComfyUI's SDXL mappings.
 */

import { VARIANTS, type VariantId } from '@lora/adapters';
import { gradients } from '@lora/engine';
import type { TensorInfo } from '@lora/safetensors';
import { describe, expect, it } from 'vitest';
import { SdCheckpoint, type WeightFile } from './checkpoint.ts';
import { SDXL } from './config.ts';
import { clipTextModel, ldmUnet, ldmVae, openClipTextModel } from './ldm-layout.ts';
import { a1111SdxlTarget, comfySdxlTargets, kohyaSdxlNames } from './peer-lora-keys.ts';
import { buildRunGraphs, expectPeersLoad, kohyaModules, unreadTensors } from './real-size-lora.ts';

const TE = ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'];
const TARGETS = {
  unet: ['to_q', 'to_k', 'to_v', 'to_out', 'proj_in', 'proj_out', 'ff'],
  textEncoder: TE,
  textEncoder2: TE,
};

/** The whole file as an F16 header (no data), as sd_xl_base_1.0.safetensors holds it. */
function sdxlHeader(): WeightFile & { counts: Record<string, number> } {
  const as = (prefix: string, shapes: [string, number[]][], dtype = 'F16') =>
    shapes.map(([k, s]): [string, number[], string] => [`${prefix}${k}`, s, dtype]);
  const unet = as('model.diffusion_model.', ldmUnet(SDXL.unet));
  const clipL = [
    ...as('conditioner.embedders.0.transformer.', clipTextModel(SDXL.textEncoder)),
    ...as('conditioner.embedders.0.transformer.', [['text_model.embeddings.position_ids', [1, 77]]], 'I64'),
  ];
  const bigG = as('conditioner.embedders.1.model.', openClipTextModel(SDXL.textEncoder2));
  const vae = as('first_stage_model.', ldmVae(SDXL.vae));
  const tensors = new Map<string, TensorInfo>();
  let offset = 0;
  for (const [key, shape, dtype] of [...unet, ...clipL, ...bigG, ...vae]) {
    const byteLength = shape.reduce((a, b) => a * b, 1) * ({ F16: 2, I64: 8 } as const)[dtype as 'F16'];
    tensors.set(key, { dtype: dtype as TensorInfo['dtype'], shape, byteOffset: offset, byteLength });
    offset += byteLength;
  }
  return {
    path: '/models/sd_xl_base_1.0.safetensors',
    tensors,
    dataStart: 8 + 234_567,
    counts: { unet: unet.length, clipL: clipL.length, bigG: bigG.length, vae: vae.length },
  };
}

describe('SDXL 1.0 base at real size, from a synthesised single-file header', () => {
  const header = sdxlHeader();

  it('the synthesised header has the tensor counts and shapes of SDXL 1.0 base', () => {
    // UNet: 70 transformer blocks × 20 + 11 Transformer2Ds × 6 (norm, proj_in, proj_out) + 17 ResNets
    // × 10 + 11 skip convs × 2 + 4 resamplers × 2 + time_embed, label_emb, conv_in, out (14) = 1680.
    // CLIP ViT-L: 196 + position_ids; bigG: 32 resblocks × 12 + 6; the VAE is SD's 248.
    expect(header.counts).toEqual({ unet: 1680, clipL: 197, bigG: 32 * 12 + 6, vae: 248 });
    const shape = (k: string) => header.tensors.get(k)?.shape;
    expect(shape('model.diffusion_model.label_emb.0.0.weight')).toEqual([1280, 2816]);
    expect(shape('model.diffusion_model.output_blocks.3.1.transformer_blocks.0.attn2.to_k.weight')).toEqual([
      640, 2048,
    ]);
    expect(shape('model.diffusion_model.output_blocks.2.2.conv.weight')).toEqual([1280, 1280, 3, 3]);
    expect(shape('conditioner.embedders.1.model.transformer.resblocks.13.attn.in_proj_weight')).toEqual([
      3840, 1280,
    ]);
    expect(shape('conditioner.embedders.1.model.text_projection')).toEqual([1280, 1280]);
  });

  it('reads SDXL and its sizes off the keys and shapes, consumes every tensor SDXL runs, builds the graphs', () => {
    const checkpoint = SdCheckpoint.fromSingleFile(header);
    expect(checkpoint.family).toBe('sdxl');
    expect(checkpoint.config).toEqual(SDXL);
    const { graph, built, vae } = buildRunGraphs(checkpoint, 1024, 'epsilon', TARGETS);
    // CLIP ViT-L's last layer and final norm never run (SDXL takes its penultimate states raw).
    expect(checkpoint.unusedKeys().toSorted()).toEqual(
      clipTextModel(SDXL.textEncoder)
        .map(([k]) => `conditioner.embedders.0.transformer.${k}`)
        .filter((k) => k.includes('.layers.11.') || k.includes('final_layer_norm'))
        .toSorted(),
    );

    const unread = unreadTensors(
      header,
      /^(model\.diffusion_model|conditioner|first_stage_model\.(encoder|quant_conv))\./,
      graph,
      vae,
    );
    expect(unread.filter((k) => k.startsWith('conditioner.embedders.1.'))).toEqual([
      'conditioner.embedders.1.model.logit_scale',
    ]);
    expect(unread.filter((k) => k.startsWith('model.'))).toEqual([]);

    // bigG's q, k, v are the row thirds of in_proj_weight; text_projection is read whole.
    const fused = header.tensors.get(
      'conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_weight',
    )!;
    const third = fused.byteLength / 3;
    ['q_proj', 'k_proj', 'v_proj'].forEach((name, part) => {
      const data = [...graph.initializers].find(
        ([t]) => t.name === `text_encoder_2.text_model.encoder.layers.31.self_attn.${name}.weight`,
      )?.[1];
      expect(data).toMatchObject({
        offset: header.dataStart + fused.byteOffset + part * third,
        length: third,
      });
    });

    const params = built.lora.flatMap((m) => m.layer.parameters);
    gradients(
      built.loss,
      params.map((p) => p.tensor),
    ).forEach((g, i) => {
      expect(g.shape).toEqual(params[i]!.shape);
    });
    // kohya's list for these targets: the same UNet (722, LDM names) and ViT-bigG (192) modules; of
    // CLIP ViT-L's 72 kohya also wraps the 6 of layer 11, which SDXL never runs (they stay zero there).
    const names = built.lora.map((m) => m.kohyaName);
    expect(names.filter((n) => n.startsWith('lora_unet_'))).toHaveLength(722);
    expect(names.filter((n) => n.startsWith('lora_te1_'))).toHaveLength(66);
    expect(names.filter((n) => n.startsWith('lora_te2_'))).toHaveLength(192);
    expect(names.toSorted()).toEqual(
      kohyaSdxlNames()
        .filter((n) => !n.startsWith('lora_te1_text_model_encoder_layers_11_'))
        .toSorted(),
    );
    expect(names).toContain('lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q');
  });

  it.each(Object.keys(VARIANTS) as VariantId[])(
    "writes %s files (with LoCon's modules) whose every module A1111's and ComfyUI's SDXL loaders resolve, with shapes their formulas take",
    (network) => {
      const modules = kohyaModules(SdCheckpoint.fromSingleFile(header), network, 'epsilon');
      // 980 attention and CLIP modules, and LoCon's 66: 17 ResNets × (conv1, conv2, time_emb_proj),
      // 11 skip connections, 2 downsamplers, 2 upsamplers.
      expect(modules.size).toBe(722 + 66 + 192 + 17 * 3 + 11 + 2 + 2);
      expect(modules.has('lora_unet_input_blocks_4_0_skip_connection')).toBe(true);
      expect(modules.has('lora_unet_output_blocks_5_2_conv')).toBe(true);
      expectPeersLoad(modules, header.tensors, network, { a1111: a1111SdxlTarget, comfy: comfySdxlTargets });
    },
  );
});
