/**
 * Real-size check: a header with every tensor name and shape of an SD 1.5 single-file checkpoint
 * (from ldm-layout.ts, with no data), loaded with the default config. Every UNet, text-encoder and
 * VAE-encoder tensor must be consumed, the graphs must build, and the LoRA module names must be
 * kohya's list for SD 1.5.
 */

import { VARIANTS, type VariantId } from '@lora/adapters';
import { gradients, serializeModel } from '@lora/engine';
import type { TensorInfo } from '@lora/safetensors';
import { describe, expect, it } from 'vitest';
import { SdCheckpoint, type WeightFile } from './checkpoint.ts';
import { SD15 } from './config.ts';
import { clipTextModel, ldmUnet, ldmVae } from './ldm-layout.ts';
import { kohyaSdNames } from './peer-lora-keys.ts';
import { buildRunGraphs, expectPeersLoad, externalData, kohyaModules } from './real-size-lora.ts';

/** The whole file as an F16 header (no data): models, EMA bookkeeping, schedule buffers, position_ids. */
function sd15Header(): WeightFile & { counts: Record<string, number> } {
  const unet = ldmUnet().map(([k, s]): [string, number[], string] => [
    `model.diffusion_model.${k}`,
    s,
    'F16',
  ]);
  const clip = clipTextModel().map(([k, s]): [string, number[], string] => [
    `cond_stage_model.transformer.${k}`,
    s,
    'F16',
  ]);
  const vae = ldmVae().map(([k, s]): [string, number[], string] => [`first_stage_model.${k}`, s, 'F16']);
  const extra: [string, number[], string][] = [
    ['cond_stage_model.transformer.text_model.embeddings.position_ids', [1, 77], 'I64'],
    ['model_ema.decay', [], 'F32'],
    ['model_ema.num_updates', [], 'I32'],
    ['model_ema.diffusion_modelinput_blocks00weight', [320, 4, 3, 3], 'F16'],
    ...['betas', 'alphas_cumprod', 'alphas_cumprod_prev', 'sqrt_alphas_cumprod'].map(
      (k): [string, number[], string] => [k, [1000], 'F32'],
    ),
  ];
  const tensors = new Map<string, TensorInfo>();
  let offset = 0;
  for (const [key, shape, dtype] of [...unet, ...clip, ...vae, ...extra]) {
    const byteLength =
      shape.reduce((a, b) => a * b, 1) * ({ F16: 2, F32: 4, I32: 4, I64: 8 } as const)[dtype as 'F16'];
    tensors.set(key, { dtype: dtype as TensorInfo['dtype'], shape, byteOffset: offset, byteLength });
    offset += byteLength;
  }
  const encoder = vae.filter(([k]) => /^first_stage_model\.(encoder|quant_conv)\./.test(k)).length;
  return {
    path: '/models/v1-5-pruned.safetensors',
    tensors,
    dataStart: 8 + 123_456,
    counts: { unet: unet.length, clip: clip.length, vae: vae.length, encoder },
  };
}

describe('SD 1.5 at real size, from a synthesised single-file header', () => {
  const header = sd15Header();

  it('the synthesised header has the tensor counts of a real SD 1.5 checkpoint', () => {
    // 686 UNet, 196 text-encoder (+ position_ids), 248 VAE tensors, of which 108 in the encoder half (with quant_conv).
    expect(header.counts).toEqual({ unet: 686, clip: 196, vae: 248, encoder: 108 });
  });

  it('consumes every UNet, text-encoder and VAE-encoder tensor and builds the graphs', () => {
    // No sizes given: they are read off the shapes, and the keys name the family.
    const checkpoint = SdCheckpoint.fromSingleFile(header);
    expect(checkpoint.family).toBe('sd1');
    expect(checkpoint.config).toEqual(SD15);
    const { graph, built, vae } = buildRunGraphs(checkpoint, 512, 'epsilon', {
      unet: ['to_q', 'to_k', 'to_v', 'to_out', 'proj_in', 'proj_out', 'ff'],
      textEncoder: ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'],
    });
    expect(checkpoint.unusedKeys()).toEqual([]);
    expect(built.loss.shape).toEqual([]);
    expect(vae.outputs[0]!.tensor.shape).toEqual(['batch', 4, 64, 64]);

    // Frozen weights are external data at the right byte ranges, never inline.
    const external = externalData(graph, vae);
    expect(external).toHaveLength(686 + 196 + 108);
    const info = header.tensors.get('model.diffusion_model.output_blocks.11.1.proj_out.weight')!;
    const initializer = [...graph.initializers].find(
      ([t]) => t.name === 'unet.up_blocks.3.attentions.2.proj_out.weight',
    )?.[1];
    expect(initializer).toEqual({
      kind: 'external',
      path: header.path,
      offset: header.dataStart + info.byteOffset,
      length: info.byteLength,
    });
    expect(serializeModel(graph).byteLength).toBeLessThan(16 * 2 ** 20);

    // The backward pass builds too, toward the 528 LoRA tensors only.
    const params = built.lora.flatMap((m) => m.layer.parameters);
    gradients(
      built.loss,
      params.map((p) => p.tensor),
    ).forEach((g, i) => {
      expect(g.shape).toEqual(params[i]!.shape);
      graph.output(g, `grad.${params[i]!.name}`);
    });

    const names = built.lora.map((m) => m.kohyaName);
    expect(names.filter((n) => n.startsWith('lora_unet_'))).toHaveLength(192);
    expect(names.filter((n) => n.startsWith('lora_te_'))).toHaveLength(72);
    expect(names.toSorted()).toEqual(kohyaSdNames(12).toSorted());
  });

  it.each(Object.keys(VARIANTS) as VariantId[])(
    "writes %s files (with LoCon's modules) whose every module A1111's and ComfyUI's loaders resolve, with shapes their formulas take",
    (network) => {
      const modules = kohyaModules(SdCheckpoint.fromSingleFile(header), network, 'epsilon');
      // kohya's 264 attention and CLIP modules, and the 86 conv_dim adds: 22 ResNets × (conv1, conv2,
      // time_emb_proj), 14 conv_shortcuts (every up block ResNet and two down ones), 3 downsamplers, 3 upsamplers.
      expect(modules.size).toBe(264 + 22 * 3 + 14 + 3 + 3);

      expectPeersLoad(modules, header.tensors, network);
    },
  );
});
