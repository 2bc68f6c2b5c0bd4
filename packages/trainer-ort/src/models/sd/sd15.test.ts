/**
 * Real-size check: a header with every tensor name and shape of an SD 1.5 single-file checkpoint
 * (from ldm-layout.ts, with no data), loaded with the default config. Every UNet, text-encoder and
 * VAE-encoder tensor must be consumed, the graphs must build, and the LoRA module names must be
 * kohya's list for SD 1.5.
 */

import { parameterName, toKohya, VARIANTS, type VariantId } from '@lora/adapters';
import { Graph, gradients, serializeModel } from '@lora/engine';
import type { TensorInfo } from '@lora/safetensors';
import { describe, expect, it } from 'vitest';
import { magnitudesAsStored, sdLoraAdapter } from './adapter.ts';
import { SdCheckpoint, type WeightFile } from './checkpoint.ts';
import { SD15 } from './config.ts';
import type { SdComponent } from './keys.ts';
import { isLoconConv } from './layers.ts';
import { clipTextModel, ldmUnet, ldmVae } from './ldm-layout.ts';
import { buildSdLoss } from './loss.ts';
import { buildVaeEncoder } from './vae.ts';

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

/** kohya's LoRA names for SD 1.5: every Linear / 1×1 Conv2d in the 16 Transformer2DModels, and the CLIP attention + MLP linears. */
function kohyaSd15Names(): string[] {
  const transformers = [
    ...[0, 1, 2].flatMap((b) => [0, 1].map((i) => `down_blocks_${b}_attentions_${i}`)),
    'mid_block_attentions_0',
    ...[1, 2, 3].flatMap((b) => [0, 1, 2].map((i) => `up_blocks_${b}_attentions_${i}`)),
  ];
  const children = [
    'proj_in',
    'proj_out',
    ...['attn1', 'attn2'].flatMap((a) =>
      ['to_q', 'to_k', 'to_v', 'to_out_0'].map((n) => `transformer_blocks_0_${a}_${n}`),
    ),
    'transformer_blocks_0_ff_net_0_proj',
    'transformer_blocks_0_ff_net_2',
  ];
  const unet = transformers.flatMap((t) => children.map((c) => `lora_unet_${t}_${c}`));
  const te = Array.from({ length: 12 }, (_, l) =>
    [
      'self_attn_q_proj',
      'self_attn_k_proj',
      'self_attn_v_proj',
      'self_attn_out_proj',
      'mlp_fc1',
      'mlp_fc2',
    ].map((n) => `lora_te_text_model_encoder_layers_${l}_${n}`),
  ).flat();
  return [...unet, ...te];
}

describe('SD 1.5 at real size, from a synthesised single-file header', () => {
  const header = sd15Header();

  it('the synthesised header has the tensor counts of a real SD 1.5 checkpoint', () => {
    // 686 UNet, 196 text-encoder (+ position_ids), 248 VAE tensors, of which 108 in the encoder half (with quant_conv).
    expect(header.counts).toEqual({ unet: 686, clip: 196, vae: 248, encoder: 108 });
  });

  it('consumes every UNet, text-encoder and VAE-encoder tensor and builds the graphs', () => {
    const checkpoint = SdCheckpoint.fromSingleFile(header);
    const graph = new Graph('sd_loss');
    const built = buildSdLoss(graph, checkpoint, {
      latentSize: [64, 64],
      text: 'ids',
      prediction: 'epsilon',
      lora: {
        rank: 4,
        alpha: 4,
        unet: ['to_q', 'to_k', 'to_v', 'to_out', 'proj_in', 'proj_out', 'ff'],
        textEncoder: ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'],
      },
    });
    const vae = new Graph('vae');
    vae.output(
      buildVaeEncoder(
        { checkpoint, component: 'vae' },
        SD15.vae,
        vae.input('image', 'float32', ['batch', 3, 512, 512]),
      ),
      'latents',
    );
    expect(checkpoint.unusedKeys()).toEqual([]);
    expect(built.loss.shape).toEqual([]);
    expect(vae.outputs[0]!.tensor.shape).toEqual(['batch', 4, 64, 64]);

    // Frozen weights are external data at the right byte ranges, never inline.
    const external = [...graph.initializers.values(), ...vae.initializers.values()].filter(
      (d) => d.kind === 'external',
    );
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
    expect(names.toSorted()).toEqual(kohyaSd15Names().toSorted());
  });

  it.each(Object.keys(VARIANTS) as VariantId[])(
    "writes %s files (with LoCon's modules) whose every module A1111's and ComfyUI's loaders resolve, with shapes their formulas take",
    (network) => {
      const checkpoint = SdCheckpoint.fromSingleFile(header);
      const built = buildSdLoss(new Graph('sd_loss'), checkpoint, {
        latentSize: [8, 8],
        text: 'ids',
        prediction: 'epsilon',
        lora: {
          rank: 4,
          alpha: 4,
          unet: ['to_q', 'to_k', 'to_v', 'to_out', 'proj_in', 'proj_out', 'ff'],
          textEncoder: ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'],
          conv: { rank: 2, alpha: 1 },
        },
      });
      // The variant's tensors for each module as an SD run declares them (DoRA per input column).
      const parameters = built.lora.flatMap((m) => {
        const path = `${m.component}.${m.path}`;
        const [down, up] = m.layer.parameters;
        const weightShape = [up!.shape[0]!, ...down!.shape.slice(1)];
        const rank = isLoconConv(path) ? 2 : 4;
        return VARIANTS[network]
          .parameters(weightShape, { rank, alpha: 1, normAxis: 'input' })
          .map((spec) => ({ name: parameterName(path, network, spec.role), shape: spec.shape }));
      });
      const values = new Map(
        parameters.map((p) => [p.name, new Float32Array(p.shape.reduce((a, b) => a * b, 1))]),
      );
      const adapter = magnitudesAsStored(
        sdLoraAdapter(parameters, values, (path) => ({ network, rank: isLoconConv(path) ? 2 : 4, alpha: 1 })),
        (path) => {
          const dot = path.indexOf('.');
          return checkpoint.storedShape(path.slice(0, dot) as SdComponent, `${path.slice(dot + 1)}.weight`);
        },
      );
      const file = toKohya(adapter);

      const modules = new Map<string, Map<string, readonly number[]>>();
      for (const [key, tensor] of file) {
        const dot = key.indexOf('.');
        const entry = modules.get(key.slice(0, dot)) ?? new Map<string, readonly number[]>();
        entry.set(key.slice(dot + 1), tensor.shape);
        modules.set(key.slice(0, dot), entry);
      }
      // kohya's 264 attention and CLIP modules, and the 86 conv_dim adds: 22 ResNets × (conv1, conv2,
      // time_emb_proj), 14 conv_shortcuts (every up block ResNet and two down ones), 3 downsamplers, 3 upsamplers.
      expect(modules.size).toBe(264 + 22 * 3 + 14 + 3 + 3);

      // Each UI's own names for the checkpoint's weights.
      const a1111 = new Map<string, readonly number[]>();
      for (const [key, info] of header.tensors) {
        const unet = /^model\.diffusion_model\.(.+)\.weight$/.exec(key);
        const te = /^cond_stage_model\.transformer\.(.+)\.weight$/.exec(key);
        if (unet) a1111.set(`diffusion_model_${unet[1]!.replaceAll('.', '_')}`, info.shape);
        if (te) a1111.set(`transformer_${te[1]!.replaceAll('.', '_')}`, info.shape);
      }
      const comfy = comfyLoraKeyMap(new Set(header.tensors.keys()));
      for (const [name, tensors] of modules) {
        const weight = a1111.get(a1111ModuleName(name));
        expect(weight, `${name} → ${a1111ModuleName(name)} (A1111)`).toBeDefined();
        const comfyKey = comfy.get(name);
        expect(comfyKey, `${name} (ComfyUI)`).toBeDefined();
        expect(header.tensors.get(comfyKey!)?.shape, `${name} → ${comfyKey} (ComfyUI)`).toEqual(weight);
        expect(tensors.get('alpha'), name).toEqual([]);
        expect(updateShape(network, tensors, weight!), name).toBe(true);
      }
    },
  );
});

/**
 * Whether a module's tensors make an update of `weight`'s shape the way A1111's network_*.py and
 * ComfyUI's weight adapters compute it (each flattens what it multiplies and reshapes the product
 * to the weight), and, for DoRA, whether `dora_scale` fits A1111's per-input-column norm
 * `[1, in, 1…]` (ComfyUI takes that shape as per input channel too, since its first dim is not out).
 */
function updateShape(
  network: VariantId,
  t: ReadonlyMap<string, readonly number[]>,
  weight: readonly number[],
): boolean {
  const numel = weight.reduce((a, b) => a * b, 1);
  const size = (shape: readonly number[] | undefined) => (shape ?? []).slice(1).reduce((a, b) => a * b, 1);
  const [out, inputs] = weight as [number, number];
  switch (network) {
    case 'lora':
    case 'dora': {
      // network_lora: down [r, in(, k, k)], up [out, r(, 1, 1)]; mm(up, down) reshaped to the weight.
      const [down, up] = [t.get('lora_down.weight')!, t.get('lora_up.weight')!];
      const fits = up[0] === out && down[1] === inputs && up[0]! * size(down) === numel;
      const scale = t.get('dora_scale');
      return network === 'lora'
        ? fits
        : fits && scale?.join() === [1, inputs, ...weight.slice(2).map(() => 1)].join();
    }
    case 'loha': {
      // network_hada: output_shape [w1a.size(0), w1b.size(1)], the two products of that shape.
      const [w1a, w1b, w2a, w2b] = ['hada_w1_a', 'hada_w1_b', 'hada_w2_a', 'hada_w2_b'].map((k) => t.get(k)!);
      return w1a![0] === out && w1a![0]! * w1b![1]! === numel && w2a![0] === w1a![0] && w2b![1] === w1b![1];
    }
    case 'lokr': {
      // network_lokr: output_shape [w1.size(0) · w2.size(0), w1.size(1) · w2.size(1)], w = full or a @ b.
      const factor = (name: string) => {
        const full = t.get(name);
        return full ? [full[0]!, size(full)] : [t.get(`${name}_a`)![0]!, size(t.get(`${name}_b`))];
      };
      const [w1, w2] = [factor('lokr_w1'), factor('lokr_w2')];
      return w1[0]! * w2[0]! === out && w1[0]! * w2[0]! * w1[1]! * w2[1]! === numel;
    }
  }
}

/**
 * ComfyUI's LoRA key map for an SD 1.x checkpoint (comfy/lora.py `model_lora_keys_unet` and
 * `model_lora_keys_clip`, with comfy/utils.py `unet_to_diffusers` for SD 1.5's UNet config):
 * `lora_unet_<diffusers path>` and `lora_te_text_model_encoder_layers_…` → the checkpoint key.
 */
function comfyLoraKeyMap(keys: ReadonlySet<string>): Map<string, string> {
  const map = new Map<string, string>();
  const resnet: Record<string, string> = {
    'in_layers.0': 'norm1',
    'in_layers.2': 'conv1',
    'emb_layers.1': 'time_emb_proj',
    'out_layers.0': 'norm2',
    'out_layers.3': 'conv2',
    skip_connection: 'conv_shortcut',
  };
  const attention = ['proj_in', 'proj_out', 'norm'];
  const transformer = [
    'attn1.to_q',
    'attn1.to_k',
    'attn1.to_v',
    'attn1.to_out.0',
    'attn2.to_q',
    'attn2.to_k',
    'attn2.to_v',
    'attn2.to_out.0',
    'ff.net.0.proj',
    'ff.net.2',
    'norm1',
    'norm2',
    'norm3',
  ];
  const diffusers = new Map<string, string>();
  // SD 1.5: num_res_blocks 2 per level, transformer depth 1 at levels 0–2 (input and output).
  const depthIn = [1, 1, 1, 1, 1, 1, 0, 0];
  const depthOut = [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0];
  for (let x = 0; x < 4; x++) {
    let n = 1 + 3 * x;
    for (let i = 0; i < 2; i++) {
      for (const [ldm, name] of Object.entries(resnet))
        diffusers.set(`down_blocks.${x}.resnets.${i}.${name}`, `input_blocks.${n}.0.${ldm}`);
      if (depthIn.shift()! > 0) {
        for (const b of attention)
          diffusers.set(`down_blocks.${x}.attentions.${i}.${b}`, `input_blocks.${n}.1.${b}`);
        for (const b of transformer) {
          diffusers.set(
            `down_blocks.${x}.attentions.${i}.transformer_blocks.0.${b}`,
            `input_blocks.${n}.1.transformer_blocks.0.${b}`,
          );
        }
      }
      n++;
    }
    diffusers.set(`down_blocks.${x}.downsamplers.0.conv`, `input_blocks.${n}.0.op`);
  }
  for (const b of attention) diffusers.set(`mid_block.attentions.0.${b}`, `middle_block.1.${b}`);
  for (const b of transformer)
    diffusers.set(
      `mid_block.attentions.0.transformer_blocks.0.${b}`,
      `middle_block.1.transformer_blocks.0.${b}`,
    );
  for (const [i, n] of [
    [0, 0],
    [1, 2],
  ]) {
    for (const [ldm, name] of Object.entries(resnet))
      diffusers.set(`mid_block.resnets.${i}.${name}`, `middle_block.${n}.${ldm}`);
  }
  for (let x = 0; x < 4; x++) {
    let n = 3 * x;
    for (let i = 0; i < 3; i++) {
      let c = 0;
      for (const [ldm, name] of Object.entries(resnet))
        diffusers.set(`up_blocks.${x}.resnets.${i}.${name}`, `output_blocks.${n}.0.${ldm}`);
      c++;
      if (depthOut.pop()! > 0) {
        c++;
        for (const b of attention)
          diffusers.set(`up_blocks.${x}.attentions.${i}.${b}`, `output_blocks.${n}.1.${b}`);
        for (const b of transformer) {
          diffusers.set(
            `up_blocks.${x}.attentions.${i}.transformer_blocks.0.${b}`,
            `output_blocks.${n}.1.transformer_blocks.0.${b}`,
          );
        }
      }
      if (i === 2) diffusers.set(`up_blocks.${x}.upsamplers.0.conv`, `output_blocks.${n}.${c}.conv`);
      n++;
    }
  }
  for (const [path, ldm] of diffusers) {
    const key = `model.diffusion_model.${ldm}.weight`;
    if (keys.has(key)) map.set(`lora_unet_${path.replaceAll('.', '_')}`, key);
  }
  const clip = [
    'mlp.fc1',
    'mlp.fc2',
    'self_attn.k_proj',
    'self_attn.q_proj',
    'self_attn.v_proj',
    'self_attn.out_proj',
  ];
  for (let b = 0; b < 32; b++) {
    for (const c of clip) {
      const key = `cond_stage_model.transformer.text_model.encoder.layers.${b}.${c}.weight`;
      if (keys.has(key)) map.set(`lora_te_text_model_encoder_layers_${b}_${c.replace('.', '_')}`, key);
    }
  }
  return map;
}

/** A1111's `convert_diffusers_name_to_compvis` (extensions-builtin/Lora/networks.py) for SD 1.x names. */
function a1111ModuleName(key: string): string {
  const resnet: Record<string, string> = {
    conv1: 'in_layers_2',
    conv2: 'out_layers_3',
    norm1: 'in_layers_0',
    norm2: 'out_layers_0',
    time_emb_proj: 'emb_layers_1',
    conv_shortcut: 'skip_connection',
  };
  const suffix = (kind: string, rest: string) => (kind === 'resnets' ? (resnet[rest] ?? rest) : rest);
  let m = /^lora_unet_down_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)$/.exec(key);
  if (m) {
    const block = 1 + Number(m[1]) * 3 + Number(m[3]);
    return `diffusion_model_input_blocks_${block}_${m[2] === 'attentions' ? 1 : 0}_${suffix(m[2]!, m[4]!)}`;
  }
  m = /^lora_unet_mid_block_(attentions|resnets)_(\d+)_(.+)$/.exec(key);
  if (m) {
    return `diffusion_model_middle_block_${m[1] === 'attentions' ? 1 : Number(m[2]) * 2}_${suffix(m[1]!, m[3]!)}`;
  }
  m = /^lora_unet_up_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)$/.exec(key);
  if (m) {
    const block = Number(m[1]) * 3 + Number(m[3]);
    return `diffusion_model_output_blocks_${block}_${m[2] === 'attentions' ? 1 : 0}_${suffix(m[2]!, m[4]!)}`;
  }
  m = /^lora_unet_down_blocks_(\d+)_downsamplers_0_conv$/.exec(key);
  if (m) return `diffusion_model_input_blocks_${3 + Number(m[1]) * 3}_0_op`;
  m = /^lora_unet_up_blocks_(\d+)_upsamplers_0_conv$/.exec(key);
  if (m) return `diffusion_model_output_blocks_${2 + Number(m[1]) * 3}_${Number(m[1]) > 0 ? 2 : 1}_conv`;
  m = /^lora_te_text_model_encoder_layers_(\d+)_(.+)$/.exec(key);
  if (m) return `transformer_text_model_encoder_layers_${m[1]}_${m[2]}`;
  return key;
}
