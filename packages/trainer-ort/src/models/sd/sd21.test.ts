/**
 * Real-size check for SD 2.x: a header with every tensor name and shape of an SD 2.1 single-file
 * checkpoint (ldm-layout.ts with v2-inference-v.yaml's UNet, OpenCLIP ViT-H/14's text tower in its
 * own names, the same VAE; no data), loaded with no sizes given. The keys must name the family,
 * the shapes the sizes; every UNet, text-encoder and VAE-encoder tensor SD 2.x runs must be
 * consumed (q, k, v as thirds of the fused in_proj); kohya's module list for the same targets; and
 * every module must reach a weight of its shape through A1111's and ComfyUI's SD 2.x mappings.
 */

import { VARIANTS, type VariantId } from '@lora/adapters';
import { gradients } from '@lora/engine';
import type { TensorInfo } from '@lora/safetensors';
import { describe, expect, it } from 'vitest';
import { SdCheckpoint, type WeightFile } from './checkpoint.ts';
import { SD21 } from './config.ts';
import { ldmUnet, ldmVae, openClipTextModel } from './ldm-layout.ts';
import { kohyaSdNames } from './peer-lora-keys.ts';
import {
  buildRunGraphs,
  contains,
  expectPeersLoad,
  externalData,
  kohyaModules,
  unreadTensors,
} from './real-size-lora.ts';

const TARGETS = {
  unet: ['to_q', 'to_k', 'to_v', 'to_out', 'proj_in', 'proj_out', 'ff'],
  textEncoder: ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'],
};

/** The whole file as an F16 header (no data): models, EMA bookkeeping, schedule buffers. */
function sd21Header(): WeightFile & { counts: Record<string, number> } {
  const as = (prefix: string, shapes: [string, number[]][]) =>
    shapes.map(([k, s]): [string, number[], string] => [`${prefix}${k}`, s, 'F16']);
  const unet = as('model.diffusion_model.', ldmUnet(SD21.unet));
  const clip = as('cond_stage_model.model.', openClipTextModel());
  const vae = as('first_stage_model.', ldmVae());
  const extra: [string, number[], string][] = [
    ['model_ema.decay', [], 'F32'],
    ['model_ema.num_updates', [], 'I32'],
    ...['betas', 'alphas_cumprod', 'alphas_cumprod_prev', 'sqrt_alphas_cumprod'].map(
      (k): [string, number[], string] => [k, [1000], 'F32'],
    ),
  ];
  const tensors = new Map<string, TensorInfo>();
  let offset = 0;
  for (const [key, shape, dtype] of [...unet, ...clip, ...vae, ...extra]) {
    const byteLength =
      shape.reduce((a, b) => a * b, 1) * ({ F16: 2, F32: 4, I32: 4 } as const)[dtype as 'F16'];
    tensors.set(key, { dtype: dtype as TensorInfo['dtype'], shape, byteOffset: offset, byteLength });
    offset += byteLength;
  }
  return {
    path: '/models/v2-1_768-ema-pruned.safetensors',
    tensors,
    dataStart: 8 + 98_765,
    counts: { unet: unet.length, clip: clip.length, vae: vae.length },
  };
}

describe('SD 2.1 at real size, from a synthesised single-file header', () => {
  const header = sd21Header();

  it('the synthesised header has the tensor counts of an SD 2.1 checkpoint', () => {
    // The UNet has SD 1.5's 686 tensors (only shapes differ); OpenCLIP: 24 resblocks × 12
    // (fused in_proj weight and bias, out_proj, ln_1, ln_2, c_fc, c_proj) + token and positional
    // embeddings, ln_final, text_projection, logit_scale; the VAE is SD 1.5's.
    expect(header.counts).toEqual({ unet: 686, clip: 24 * 12 + 6, vae: 248 });
    expect(header.tensors.get('model.diffusion_model.middle_block.1.proj_in.weight')?.shape).toEqual([
      1280, 1280,
    ]);
    expect(
      header.tensors.get('model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight')
        ?.shape,
    ).toEqual([320, 1024]);
  });

  it('reads SD 2.x and its sizes off the keys and shapes, consumes every tensor SD 2.x runs, builds the graphs', () => {
    const checkpoint = SdCheckpoint.fromSingleFile(header);
    expect(checkpoint.family).toBe('sd2');
    expect(checkpoint.config).toEqual(SD21);
    const { graph, built, vae } = buildRunGraphs(checkpoint, 768, 'v_prediction', TARGETS);
    expect(checkpoint.unusedKeys()).toEqual([]);

    // Every stored tensor is read, but the last resblock and the contrastive head, which SD 2.x never runs.
    const external = externalData(graph, vae);
    const unread = unreadTensors(
      header,
      /^(model\.diffusion_model|cond_stage_model|first_stage_model\.(encoder|quant_conv))\./,
      graph,
      vae,
    );
    expect(unread.toSorted()).toEqual(
      [
        ...openClipTextModel()
          .map(([k]) => k)
          .filter((k) => k.startsWith('transformer.resblocks.23.')),
        'text_projection',
        'logit_scale',
      ]
        .map((k) => `cond_stage_model.model.${k}`)
        .toSorted(),
    );
    // 23 layers × (10 unfused + q, k, v of the in_proj weight and bias) + embeddings + ln_final.
    expect(external.filter((d) => contained(header, 'cond_stage_model.', d.offset))).toHaveLength(
      23 * 16 + 4,
    );

    // q, k and v are the three row blocks of in_proj_weight, in that order.
    const fused = header.tensors.get('cond_stage_model.model.transformer.resblocks.5.attn.in_proj_weight')!;
    const third = fused.byteLength / 3;
    ['q_proj', 'k_proj', 'v_proj'].forEach((name, part) => {
      const data = [...graph.initializers].find(
        ([t]) => t.name === `text_encoder.text_model.encoder.layers.5.self_attn.${name}.weight`,
      )?.[1];
      expect(data).toEqual({
        kind: 'external',
        path: header.path,
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
    // proj_in / proj_out are Linear: their LoRA is [r, c] / [c, r], as kohya's for SD 2.x.
    const projIn = built.lora.find((m) => m.path === 'mid_block.attentions.0.proj_in')!;
    expect(projIn.layer.parameters.map((p) => p.shape)).toEqual([
      [4, 1280],
      [1280, 4],
    ]);
    const names = built.lora.map((m) => m.kohyaName);
    expect(names.filter((n) => n.startsWith('lora_unet_'))).toHaveLength(192);
    expect(names.filter((n) => n.startsWith('lora_te_'))).toHaveLength(23 * 6);
    expect(names.toSorted()).toEqual(kohyaSdNames(23).toSorted());
  });

  it.each(Object.keys(VARIANTS) as VariantId[])(
    "writes %s files whose every module A1111's and ComfyUI's SD 2.x loaders resolve, with shapes their formulas take",
    (network) => {
      const modules = kohyaModules(SdCheckpoint.fromSingleFile(header), network, 'v_prediction');
      // The 330 attention and text-encoder modules and LoCon's 86 (as for SD 1.5).
      expect(modules.size).toBe(192 + 138 + 86);
      expectPeersLoad(modules, header.tensors, network);
      // A1111 applies a text-encoder layer's q, k, v only together with its out_proj: all four are here.
      for (let layer = 0; layer < 23; layer++) {
        for (const p of ['q_proj', 'k_proj', 'v_proj', 'out_proj'])
          expect(modules.has(`lora_te_text_model_encoder_layers_${layer}_self_attn_${p}`)).toBe(true);
      }
    },
  );
});

/** Whether the offset lies in a tensor whose key starts with `prefix`. */
const contained = (file: WeightFile, prefix: string, offset: number) =>
  [...file.tensors].some(([key, info]) => key.startsWith(prefix) && contains(file, info, offset));
