/**
 * Test support: re-implementations of how A1111 and ComfyUI find the base weight of each module
 * of a kohya LoRA file, and which update shapes their formulas accept, written from their
 * sources (cited per function) rather than from this package's key tables, so the real-size
 * tests (sd15.test.ts, sd21.test.ts, sdxl.test.ts) check our files against them; and kohya's module names.
 */
import type { VariantId } from '@lora/adapters';
import type { TensorInfo } from '@lora/safetensors';

type Tensors = ReadonlyMap<string, Pick<TensorInfo, 'shape'>>;

/**
 * kohya's LoRA names for SD 1.x / 2.x (networks/lora.py: every Linear and 1×1 Conv2d in the 16
 * Transformer2DModels, and the CLIPAttention + CLIPMLP linears of each of `textEncoderLayers`
 * layers; SD 2.x's are named as transformers' CLIPTextModel names them, its 23 layers).
 */
export function kohyaSdNames(textEncoderLayers: number): string[] {
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
  const te = Array.from({ length: textEncoderLayers }, (_, l) =>
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

/**
 * Whether a module's tensors make an update of `weight`'s shape the way A1111's network_*.py and
 * ComfyUI's weight adapters compute it (each flattens what it multiplies and reshapes the product
 * to the weight), and, for DoRA, whether `dora_scale` fits A1111's per-input-column norm
 * `[1, in, 1…]` (ComfyUI takes that shape as per input channel too, since its first dim is not out).
 */
export function updateShape(
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
 * ComfyUI's LoRA key map for an SD 1.x / 2.x checkpoint (comfy/lora.py `model_lora_keys_unet` and
 * `model_lora_keys_clip`, with comfy/utils.py `unet_to_diffusers` for the UNet config both share):
 * `lora_unet_<diffusers path>` and `lora_te_text_model_encoder_layers_…` → the shape of the
 * weight it patches. ComfyUI loads an SD 2.x OpenCLIP text tower under transformers' names
 * (supported_models.py SD20 → utils.py `clip_text_transformers_convert`), splitting
 * `attn.in_proj_weight` into q, k, v by thirds of its rows; its patches apply to those.
 */
export function comfyTargets(tensors: Tensors): Map<string, readonly number[]> {
  const map = new Map<string, readonly number[]>();
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
    const info = tensors.get(`model.diffusion_model.${ldm}.weight`);
    if (info) map.set(`lora_unet_${path.replaceAll('.', '_')}`, info.shape);
  }
  const clipH = comfyClipH(tensors);
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
      const shape =
        tensors.get(`cond_stage_model.transformer.text_model.encoder.layers.${b}.${c}.weight`)?.shape ??
        clipH.get(`encoder.layers.${b}.${c}.weight`);
      if (shape) map.set(`lora_te_text_model_encoder_layers_${b}_${c.replace('.', '_')}`, shape);
    }
  }
  return map;
}

/** utils.py `transformers_convert` of `cond_stage_model.model.` (SD 2.x), as shapes by the `text_model.` key. */
function comfyClipH(tensors: Tensors): Map<string, readonly number[]> {
  const renamed: Record<string, string> = {
    ln_1: 'layer_norm1',
    ln_2: 'layer_norm2',
    'mlp.c_fc': 'mlp.fc1',
    'mlp.c_proj': 'mlp.fc2',
    'attn.out_proj': 'self_attn.out_proj',
  };
  const out = new Map<string, readonly number[]>();
  for (let b = 0; b < 32; b++) {
    const from = `cond_stage_model.model.transformer.resblocks.${b}`;
    for (const [x, to] of Object.entries(renamed)) {
      const info = tensors.get(`${from}.${x}.weight`);
      if (info) out.set(`encoder.layers.${b}.${to}.weight`, info.shape);
    }
    const fused = tensors.get(`${from}.attn.in_proj_weight`);
    if (fused) {
      const [rows, ...rest] = fused.shape;
      for (const p of ['q_proj', 'k_proj', 'v_proj'])
        out.set(`encoder.layers.${b}.self_attn.${p}.weight`, [rows! / 3, ...rest]);
    }
  }
  return out;
}

/**
 * The shape of the weight A1111 adds a module's update to (extensions-builtin/Lora): its name
 * through `convert_diffusers_name_to_compvis`, then the model's `network_layer_mapping` (module
 * names of `model` and `cond_stage_model.wrapped`, dots → underscores). On SD 2.x (a model with
 * `model_transformer_resblocks` modules) a `…_[qkv]_proj` name falls back to its
 * MultiheadAttention (`re_x_proj`), whose `in_proj_weight` takes q, k and v stacked by rows
 * (`torch.vstack([updown_q, updown_k, updown_v])`, applied only when q, k, v and out are all
 * present): the update is one third of it.
 */
export function a1111Target(name: string, tensors: Tensors): readonly number[] | undefined {
  const modules = new Map<string, readonly number[]>();
  for (const [key, info] of tensors) {
    const unet = /^model\.diffusion_model\.(.+)\.weight$/.exec(key);
    const te = /^cond_stage_model\.transformer\.(.+)\.weight$/.exec(key);
    const openClip = /^cond_stage_model\.(model\..+)\.weight$/.exec(key);
    const mha = /^cond_stage_model\.(model\..+)\.in_proj_weight$/.exec(key);
    if (unet) modules.set(`diffusion_model_${unet[1]!.replaceAll('.', '_')}`, info.shape);
    if (te) modules.set(`transformer_${te[1]!.replaceAll('.', '_')}`, info.shape);
    if (openClip) modules.set(openClip[1]!.replaceAll('.', '_'), info.shape);
    if (mha) modules.set(mha[1]!.replaceAll('.', '_'), info.shape);
  }
  const sd2 = [...modules.keys()].some((k) => k.startsWith('model_transformer_resblocks'));
  const compvis = a1111ModuleName(name, sd2);
  const direct = modules.get(compvis);
  if (direct) return direct;
  const x = /^(.*)_([qkv]_proj)$/.exec(compvis);
  const fused = x ? modules.get(x[1]!) : undefined;
  return fused && [fused[0]! / 3, ...fused.slice(1)];
}

/** A1111's `convert_diffusers_name_to_compvis` (extensions-builtin/Lora/lora_convert.py). */
function a1111ModuleName(key: string, sd2: boolean): string {
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
  if (m && sd2) {
    const rest = m[2]!
      .replace('mlp_fc1', 'mlp_c_fc')
      .replace('mlp_fc2', 'mlp_c_proj')
      .replace('self_attn', 'attn');
    return `model_transformer_resblocks_${m[1]}_${rest}`;
  }
  if (m) return `transformer_text_model_encoder_layers_${m[1]}_${m[2]}`;
  return key;
}

/**
 * kohya's LoRA names for SDXL (sdxl_train_network → networks/lora.py on sdxl_original_unet, which
 * keeps the LDM names): every Linear of the 11 Transformer2DModels (proj_in, proj_out, and per
 * BasicTransformerBlock attn1 / attn2 q, k, v, out and the GEGLU ff's two), and the CLIPAttention
 * + CLIPMLP linears of all 12 CLIP ViT-L layers (`lora_te1_`) and 32 OpenCLIP ViT-bigG layers
 * (`lora_te2_`). Transformer blocks: 2 at input blocks 4, 5 and output blocks 3–5, 10 at input
 * blocks 7, 8, the middle block and output blocks 0–2 (sd_xl_base.yaml transformer_depth [1, 2, 10],
 * level 0 without attention).
 */
export function kohyaSdxlNames(): string[] {
  const transformers: [string, number][] = [
    ...[4, 5].map((n): [string, number] => [`input_blocks_${n}_1`, 2]),
    ...[7, 8].map((n): [string, number] => [`input_blocks_${n}_1`, 10]),
    ['middle_block_1', 10],
    ...[0, 1, 2].map((n): [string, number] => [`output_blocks_${n}_1`, 10]),
    ...[3, 4, 5].map((n): [string, number] => [`output_blocks_${n}_1`, 2]),
  ];
  const block = (i: number) => [
    ...['attn1', 'attn2'].flatMap((a) =>
      ['to_q', 'to_k', 'to_v', 'to_out_0'].map((n) => `transformer_blocks_${i}_${a}_${n}`),
    ),
    `transformer_blocks_${i}_ff_net_0_proj`,
    `transformer_blocks_${i}_ff_net_2`,
  ];
  const unet = transformers.flatMap(([t, depth]) =>
    ['proj_in', 'proj_out', ...Array.from({ length: depth }, (_, i) => block(i)).flat()].map(
      (c) => `lora_unet_${t}_${c}`,
    ),
  );
  const te = (prefix: string, layers: number) =>
    Array.from({ length: layers }, (_, l) =>
      [
        'self_attn_q_proj',
        'self_attn_k_proj',
        'self_attn_v_proj',
        'self_attn_out_proj',
        'mlp_fc1',
        'mlp_fc2',
      ].map((n) => `${prefix}_text_model_encoder_layers_${l}_${n}`),
    ).flat();
  return [...unet, ...te('lora_te1', 12), ...te('lora_te2', 32)];
}

/**
 * The shape of the weight A1111 adds an SDXL module's update to (extensions-builtin/Lora
 * networks.py `load_network`): `network_layer_mapping` holds `diffusion_model_…` for the UNet and,
 * per conditioner embedder i with a `wrapped` model, `{i}_` + its module names (CLIP ViT-L:
 * `0_transformer_text_model_…`; OpenCLIP: `1_model_transformer_resblocks_…`, its attention one
 * MultiheadAttention). A name goes through `convert_diffusers_name_to_compvis` (which rewrites
 * `lora_te2_…` to `1_model_transformer_resblocks_{n}_…` with attn, c_fc, c_proj), then the `[qkv]_proj`
 * fallback to the MultiheadAttention (its in_proj_weight: the update is a third), then `lora_unet` →
 * `diffusion_model` (kohya's SDXL names are LDM already) or `lora_te1_text_model` →
 * `0_transformer_text_model`.
 */
export function a1111SdxlTarget(name: string, tensors: Tensors): readonly number[] | undefined {
  const modules = new Map<string, readonly number[]>();
  for (const [key, info] of tensors) {
    const unet = /^model\.diffusion_model\.(.+)\.weight$/.exec(key);
    const clipL = /^conditioner\.embedders\.0\.(transformer\..+)\.weight$/.exec(key);
    const bigG = /^conditioner\.embedders\.1\.(model\..+)\.(?:in_proj_)?weight$/.exec(key);
    if (unet) modules.set(`diffusion_model_${unet[1]!.replaceAll('.', '_')}`, info.shape);
    if (clipL) modules.set(`0_${clipL[1]!.replaceAll('.', '_')}`, info.shape);
    if (bigG) modules.set(`1_${bigG[1]!.replaceAll('.', '_')}`, info.shape);
  }
  const te2 = /^lora_te2_text_model_encoder_layers_(\d+)_(.+)$/.exec(name);
  const key = te2
    ? `1_model_transformer_resblocks_${te2[1]}_${te2[2]!.replace('mlp_fc1', 'mlp_c_fc').replace('mlp_fc2', 'mlp_c_proj').replace('self_attn', 'attn')}`
    : name;
  const direct = modules.get(key);
  if (direct) return direct;
  const x = /^(.*)_([qkv]_proj)$/.exec(key);
  const fused = x ? modules.get(x[1]!) : undefined;
  if (fused) return [fused[0]! / 3, ...fused.slice(1)];
  if (name.includes('lora_unet')) return modules.get(name.replace('lora_unet', 'diffusion_model'));
  if (name.includes('lora_te1_text_model')) {
    return modules.get(name.replace('lora_te1_text_model', '0_transformer_text_model'));
  }
  return undefined;
}

/**
 * ComfyUI's LoRA key map for an SDXL checkpoint (comfy/lora.py `model_lora_keys_unet`: every
 * `diffusion_model.X.weight` as `lora_unet_` + X flattened; `model_lora_keys_clip`: with clip_l
 * present, `lora_te1_text_model_encoder_layers_…` → clip_l and `lora_te2_…` → clip_g), the clips
 * loaded as supported_models.py SDXL does: embedder 0 as it is, embedder 1 through
 * `clip_text_transformers_convert` (in_proj split into q, k, v by thirds).
 */
export function comfySdxlTargets(tensors: Tensors): Map<string, readonly number[]> {
  const map = new Map<string, readonly number[]>();
  const clip = [
    'mlp.fc1',
    'mlp.fc2',
    'self_attn.k_proj',
    'self_attn.q_proj',
    'self_attn.v_proj',
    'self_attn.out_proj',
  ];
  const renamed: Record<string, string> = {
    'mlp.c_fc': 'mlp.fc1',
    'mlp.c_proj': 'mlp.fc2',
    'attn.out_proj': 'self_attn.out_proj',
  };
  const clipG = new Map<string, readonly number[]>();
  for (const [key, info] of tensors) {
    const unet = /^model\.diffusion_model\.(.+)\.weight$/.exec(key);
    if (unet) map.set(`lora_unet_${unet[1]!.replaceAll('.', '_')}`, info.shape);
    const g = /^conditioner\.embedders\.1\.model\.transformer\.resblocks\.(\d+)\.(.+)$/.exec(key);
    if (!g) continue;
    const [, b, rest] = g;
    const module = /^(.+)\.weight$/.exec(rest!)?.[1];
    if (module && renamed[module]) clipG.set(`${b}.${renamed[module]}`, info.shape);
    if (rest === 'attn.in_proj_weight') {
      for (const p of ['q_proj', 'k_proj', 'v_proj'])
        clipG.set(`${b}.self_attn.${p}`, [info.shape[0]! / 3, ...info.shape.slice(1)]);
    }
  }
  for (let b = 0; b < 32; b++) {
    for (const c of clip) {
      const flat = c.replace('.', '_');
      const l = tensors.get(`conditioner.embedders.0.transformer.text_model.encoder.layers.${b}.${c}.weight`);
      if (l) map.set(`lora_te1_text_model_encoder_layers_${b}_${flat}`, l.shape);
      const g = clipG.get(`${b}.${c}`);
      if (g) map.set(`lora_te2_text_model_encoder_layers_${b}_${flat}`, g);
    }
  }
  return map;
}
