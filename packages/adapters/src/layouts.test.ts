import type { Dtype } from '@lora/safetensors';
import { deserialize, fromFloat32, serialize, type TensorData, toFloat32 } from '@lora/safetensors';
import { describe, expect, it } from 'vitest';
import { formsOf, type LoraAdapter, type LoraModule, loraModule, rankOf, scaleOfModule } from './adapter.ts';
import { fromDiffusers, toDiffusers } from './diffusers.ts';
import { fromKohya, toKohya } from './kohya.ts';
import { detectLoraLayout } from './layout.ts';
import { flattenPath, unflattenPath } from './names.ts';
import { fromPeft, toPeft } from './peft.ts';
import { VARIANTS, type VariantId } from './variants/registry.ts';

let counter = 0;
function tensor(shape: number[], dtype: Dtype = 'F16'): TensorData {
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1)).map(() => ((counter++ % 17) - 8) / 16);
  return { dtype, shape, data: fromFloat32(values, dtype as 'F16') };
}
function module(rank: number, input: number, output: number, alpha: number, kernel = 0): LoraModule {
  return kernel === 0
    ? loraModule(tensor([rank, input]), tensor([output, rank]), alpha)
    : loraModule(tensor([rank, input, kernel, kernel]), tensor([output, rank, 1, 1]), alpha);
}

const SD: LoraAdapter = new Map([
  ['unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q', module(4, 8, 8, 1)],
  ['unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0', module(4, 8, 8, 4)],
  ['unet.down_blocks.0.resnets.0.conv1', module(2, 8, 8, 1, 3)],
  ['unet.mid_block.attentions.0.proj_in', module(4, 8, 8, 0.5)],
  ['unet.up_blocks.1.attentions.2.transformer_blocks.0.ff.net.0.proj', module(4, 8, 16, 2)],
  ['unet.down_blocks.1.resnets.0.time_emb_proj', module(4, 8, 8, 4)],
  ['text_encoder.text_model.encoder.layers.0.self_attn.q_proj', module(4, 8, 8, 1)],
  ['text_encoder.text_model.encoder.layers.11.mlp.fc1', module(4, 8, 32, 1)],
]);

const bytesOf = (data: ArrayBufferView) => [...new Uint8Array(data.buffer, data.byteOffset, data.byteLength)];
const plain = (adapter: LoraAdapter) =>
  [...adapter].map(([path, { variant, tensors, alpha }]) => [
    path,
    variant,
    Object.entries(tensors).map(([role, t]) => [role, { ...t, data: bytesOf(t.data) }]),
    alpha,
  ]);
/** The module's weight update (alpha / rank) · up @ down, flattened, in float64. */
function update({ tensors, alpha }: LoraModule): number[] {
  const { down, up } = tensors as Record<'down' | 'up', TensorData>;
  const floats = (t: TensorData) =>
    toFloat32(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), t.dtype);
  const d = floats(down);
  const u = floats(up);
  const rank = down.shape[0]!;
  const inner = d.length / rank;
  const out = u.length / rank;
  return Array.from({ length: out * inner }, (_, index) => {
    const o = Math.floor(index / inner);
    let sum = 0;
    for (let r = 0; r < rank; r++) sum += u[o * rank + r]! * d[r * inner + (index % inner)]!;
    return (alpha / rank) * sum;
  });
}
const sorted = (adapter: LoraAdapter) =>
  plain(adapter).sort(([a], [b]) => String(a).localeCompare(String(b)));

describe('kohya layout', () => {
  it('names modules as sd-scripts does, with alpha in the weight dtype', () => {
    const kohya = toKohya(SD);
    expect([...kohya.keys()].slice(0, 3)).toEqual([
      'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight',
      'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight',
      'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha',
    ]);
    expect(kohya.has('lora_te_text_model_encoder_layers_11_mlp_fc1.alpha')).toBe(true);
    const alpha = kohya.get('lora_unet_mid_block_attentions_0_proj_in.alpha')!;
    expect(alpha.dtype).toBe('F16');
    expect(alpha.shape).toEqual([]);
    expect(bytesOf(alpha.data)).toEqual([0x00, 0x38]); // 0.5 in float16
  });

  it('round-trips internal → kohya → internal exactly', () => {
    expect(sorted(fromKohya(toKohya(SD)))).toEqual(sorted(SD));
  });

  it('round-trips a kohya file → internal → kohya file byte for byte', () => {
    const file = serialize(toKohya(SD), { ss_network_dim: '4' });
    const { tensors } = deserialize(file);
    const loaded = new Map(
      [...tensors.keys()].map((name) => [
        name,
        { ...tensors.get(name)!, data: deserialize(file).read(name) },
      ]),
    );
    expect(Buffer.compare(serialize(toKohya(fromKohya(loaded)), { ss_network_dim: '4' }), file)).toBe(0);
  });

  it('gives a module without alpha alpha = rank, as sd-scripts does for old files', () => {
    const { down, up } = module(4, 8, 8, 1).tensors as Record<'down' | 'up', TensorData>;
    const adapter = fromKohya(
      new Map([
        ['lora_unet_mid_block_attentions_0_proj_out.lora_down.weight', down],
        ['lora_unet_mid_block_attentions_0_proj_out.lora_up.weight', up],
      ]),
    );
    expect(adapter.get('unet.mid_block.attentions.0.proj_out')?.alpha).toBe(4);
  });

  it('uses lora_te1 / lora_te2 when there are two text encoders (SDXL)', () => {
    const sdxl: LoraAdapter = new Map([
      ['text_encoder.text_model.encoder.layers.0.self_attn.k_proj', module(2, 8, 8, 1)],
      ['text_encoder_2.text_model.encoder.layers.3.self_attn.out_proj', module(2, 8, 8, 1)],
    ]);
    const names = [...toKohya(sdxl).keys()].filter((key) => key.endsWith('.alpha'));
    expect(names).toEqual([
      'lora_te1_text_model_encoder_layers_0_self_attn_k_proj.alpha',
      'lora_te2_text_model_encoder_layers_3_self_attn_out_proj.alpha',
    ]);
    expect(sorted(fromKohya(toKohya(sdxl)))).toEqual(sorted(sdxl));
  });

  it('restores unknown identifiers exactly from the base model paths', () => {
    const custom: LoraAdapter = new Map([['unet.my_block.0.some_layer', module(2, 4, 4, 1)]]);
    expect([...fromKohya(toKohya(custom)).keys()]).toEqual(['unet.my.block.0.some.layer']);
    expect([...fromKohya(toKohya(custom), { modulePaths: ['unet.my_block.0.some_layer'] }).keys()]).toEqual([
      'unet.my_block.0.some_layer',
    ]);
  });

  it.each([
    [
      'down_blocks_0_attentions_1_transformer_blocks_0_attn2_to_out_0',
      'down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_out.0',
    ],
    ['text_model_encoder_layers_10_self_attn_out_proj', 'text_model.encoder.layers.10.self_attn.out_proj'],
    ['model_layers_3_post_attention_layernorm', 'model.layers.3.post_attention_layernorm'],
    ['input_blocks_4_1_proj_in', 'input_blocks.4.1.proj_in'],
    ['up_blocks_3_resnets_2_conv_shortcut', 'up_blocks.3.resnets.2.conv_shortcut'],
  ])('unflattens %s', (flat, path) => {
    expect(unflattenPath(flat)).toBe(path);
    expect(flattenPath(path)).toBe(flat);
  });

  it.each([
    ['a key of another layout', new Map([['unet.x.lora.down.weight', tensor([2, 2])]])],
    ['a module without its up weight', new Map([['lora_unet_x.lora_down.weight', tensor([2, 2])]])],
    [
      'an unknown prefix',
      new Map([
        ['lora_vae_x.lora_down.weight', tensor([2, 2])],
        ['lora_vae_x.lora_up.weight', tensor([2, 2])],
      ]),
    ],
    [
      'mismatched ranks',
      new Map([
        ['lora_unet_x.lora_down.weight', tensor([2, 4])],
        ['lora_unet_x.lora_up.weight', tensor([4, 3])],
      ]),
    ],
    [
      'a non-scalar alpha',
      new Map([
        ['lora_unet_x.lora_down.weight', tensor([2, 4])],
        ['lora_unet_x.lora_up.weight', tensor([4, 2])],
        ['lora_unet_x.alpha', tensor([2])],
      ]),
    ],
  ])('rejects %s', (_, tensors) => {
    expect(() => fromKohya(tensors)).toThrow(expect.objectContaining({ code: 'E_INVALID_LORA' }));
  });

  it('refuses to write an LLM module as kohya', () => {
    expect(() => toKohya(new Map([['model.layers.0.self_attn.q_proj', module(2, 4, 4, 1)]]))).toThrow(
      expect.objectContaining({ code: 'E_INVALID_LORA' }),
    );
  });
});

describe('diffusers layout', () => {
  it('writes no alpha, baking alpha / rank into up, so kohya → diffusers → kohya keeps every update', () => {
    const kohya = toKohya(SD);
    const diffusers = toDiffusers(fromKohya(kohya));
    expect(
      diffusers.has('unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight'),
    ).toBe(true);
    expect([...diffusers.keys()].filter((key) => !/\.lora\.(down|up)\.weight$/.test(key))).toEqual([]);
    const back = fromKohya(toKohya(fromDiffusers(diffusers)));
    expect([...back.keys()].sort()).toEqual([...SD.keys()].sort());
    for (const [path, module] of SD) {
      const got = back.get(path)!;
      expect(got.alpha, path).toBe(rankOf(got));
      expect(bytesOf(got.tensors.down!.data), path).toEqual(bytesOf(module.tensors.down!.data));
      const want = update(module);
      const have = update(got);
      // The scaled up weight is rounded to float16 once: relative error ≤ 2^-11 per element.
      for (let i = 0; i < want.length; i++) expect(Math.abs(have[i]! - want[i]!), path).toBeLessThan(2e-3);
    }
    // alpha = rank: nothing to bake, the bytes travel unchanged.
    const same = 'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0';
    expect(bytesOf(back.get(same)!.tensors.up!.data)).toEqual(bytesOf(SD.get(same)!.tensors.up!.data));
  });

  it.each([
    ['F64', [0.5, -1.25], 2, [1, -2.5]],
    ['F32', [0.5, -1.25], 0.25, [0.125, -0.3125]],
    ['BF16', [0.5, -1.25], 3, [1.5, -3.75]],
  ] as const)('scales %s up weights in their own dtype', (dtype, values, alpha, want) => {
    const up: TensorData =
      dtype === 'F64'
        ? { dtype, shape: [2, 1], data: new Float64Array(values) }
        : { dtype, shape: [2, 1], data: fromFloat32(new Float32Array(values), dtype) };
    const down: TensorData = { dtype: 'F32', shape: [1, 2], data: new Float32Array([1, 1]) };
    const written = toDiffusers(new Map([['unet.a', loraModule(down, up, alpha)]])).get(
      'unet.a.lora.up.weight',
    )!;
    expect(written.dtype).toBe(dtype);
    const bytes = new Uint8Array(written.data.buffer, written.data.byteOffset, written.data.byteLength);
    expect([...toFloat32(bytes, dtype)]).toEqual(want);
  });

  it('still reads an .alpha written by older converters', () => {
    const { down, up } = module(4, 8, 8, 4).tensors as Record<'down' | 'up', TensorData>;
    const adapter = fromDiffusers(
      new Map([
        ['unet.mid_block.attentions.0.proj_in.lora.down.weight', down],
        ['unet.mid_block.attentions.0.proj_in.lora.up.weight', up],
        [
          'unet.mid_block.attentions.0.proj_in.alpha',
          { dtype: 'F32', shape: [], data: new Float32Array([2]) },
        ],
      ]),
    );
    expect(adapter.get('unet.mid_block.attentions.0.proj_in')?.alpha).toBe(2);
  });

  it('reads the lora_A/B, lora_linear_layer and old processor forms', () => {
    const { down, up } = module(2, 4, 4, 2).tensors as Record<'down' | 'up', TensorData>;
    const adapter = fromDiffusers(
      new Map([
        ['unet.mid_block.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.down.weight', down],
        ['unet.mid_block.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight', up],
        ['text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.down.weight', down],
        ['text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.up.weight', up],
        ['unet.mid_block.attentions.0.proj_in.lora_A.weight', down],
        ['unet.mid_block.attentions.0.proj_in.lora_B.weight', up],
      ]),
    );
    expect([...adapter.keys()]).toEqual([
      'unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0',
      'text_encoder.text_model.encoder.layers.0.self_attn.q_proj',
      'unet.mid_block.attentions.0.proj_in',
    ]);
    expect([...adapter.values()].map((m) => m.alpha)).toEqual([2, 2, 2]);
  });
});

describe('PEFT layout', () => {
  const LLM: LoraAdapter = new Map([
    ['model.layers.0.self_attn.q_proj', module(8, 16, 16, 16)],
    ['model.layers.0.self_attn.v_proj', module(8, 16, 4, 16)],
    ['model.layers.1.self_attn.q_proj', module(4, 16, 16, 16)],
    ['model.layers.1.mlp.down_proj', module(8, 32, 16, 8)],
  ]);

  it('writes base_model.model. keys and a config with patterns for the odd modules', () => {
    const { tensors, config } = toPeft(LLM, { baseModelNameOrPath: 'meta-llama/Llama-3.2-1B' });
    expect([...tensors.keys()].slice(0, 2)).toEqual([
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight',
    ]);
    expect(config).toEqual({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: 'meta-llama/Llama-3.2-1B',
      r: 8,
      lora_alpha: 16,
      target_modules: ['down_proj', 'q_proj', 'v_proj'],
      rank_pattern: { 'model\\.layers\\.1\\.self_attn\\.q_proj': 4 },
      alpha_pattern: { 'model\\.layers\\.1\\.mlp\\.down_proj': 8 },
    });
  });

  it.each([
    'unet.mid_block.attentions.0.proj_in',
    'text_encoder.text_model.encoder.layers.0.self_attn.q_proj',
    'text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj',
  ])('refuses a Stable Diffusion module (%s), pointing to kohya or diffusers', (path) => {
    expect(() => toPeft(new Map([[path, module(2, 4, 4, 2)]]), { baseModelNameOrPath: 'x' })).toThrow(
      expect.objectContaining({ code: 'E_INVALID_LORA', message: expect.stringMatching(/kohya.*diffusers/) }),
    );
  });

  it('round-trips internal → PEFT → internal exactly', () => {
    const { tensors, config } = toPeft(LLM, { baseModelNameOrPath: 'x' });
    expect(plain(fromPeft(tensors, JSON.parse(JSON.stringify(config))))).toEqual(plain(LLM));
  });

  it('matches alpha_pattern keys as PEFT does, and converts rsLoRA scaling', () => {
    const { tensors } = toPeft(LLM, { baseModelNameOrPath: 'x' });
    const adapter = fromPeft(tensors, {
      peft_type: 'LORA',
      r: 8,
      lora_alpha: 4,
      target_modules: ['q_proj'],
      alpha_pattern: { v_proj: 32 },
      use_rslora: true,
    });
    // rsLoRA scale alpha / sqrt(r) equals (alpha · sqrt(r)) / r.
    expect(adapter.get('model.layers.0.self_attn.q_proj')?.alpha).toBeCloseTo(4 * Math.sqrt(8));
    expect(adapter.get('model.layers.0.self_attn.v_proj')?.alpha).toBeCloseTo(32 * Math.sqrt(8));
  });
});

describe('detectLoraLayout', () => {
  it.each([
    [['lora_unet_a.lora_down.weight'], 'kohya'],
    [['lora_te2_a.alpha'], 'kohya'],
    [['base_model.model.model.layers.0.q_proj.lora_A.weight'], 'peft'],
    [['unet.a.lora.down.weight'], 'diffusers'],
    [['text_encoder.a.lora_linear_layer.up.weight'], 'diffusers'],
    [['unet.a.lora_B.weight'], 'diffusers'],
  ])('%j is %s', (names, layout) => {
    expect(detectLoraLayout(names)).toBe(layout);
  });

  it('rejects names of no known layout', () => {
    expect(() => detectLoraLayout(['model.embed.weight'])).toThrow(
      expect.objectContaining({ code: 'E_INVALID_LORA' }),
    );
  });
});

describe('DoRA modules', () => {
  const dora = (magnitude: number[], kernel = 0): LoraModule => {
    const { tensors } = module(2, 4, 3, 2, kernel);
    return { variant: 'dora', tensors: { ...tensors, magnitude: tensor(magnitude) }, alpha: 2 };
  };
  const perInput = dora([1, 4]);
  const perOutput = dora([3, 1]);

  it('write dora_scale beside lora_down / lora_up in kohya keys (as LyCORIS does) and read back as DoRA', () => {
    const adapter = new Map([
      ['unet.mid_block.attentions.0.proj_in', perInput],
      ['unet.down_blocks.0.resnets.0.conv1', dora([1, 4, 1, 1], 3)],
    ]);
    const keys = toKohya(adapter);
    expect([...keys.keys()].filter((k) => k.includes('proj_in'))).toEqual([
      'lora_unet_mid_block_attentions_0_proj_in.lora_down.weight',
      'lora_unet_mid_block_attentions_0_proj_in.lora_up.weight',
      'lora_unet_mid_block_attentions_0_proj_in.dora_scale',
      'lora_unet_mid_block_attentions_0_proj_in.alpha',
    ]);
    expect(plain(fromKohya(keys))).toEqual(plain(adapter));
  });

  it("write PEFT's lora_magnitude_vector as [out] with use_dora, and read it back per output row", () => {
    const adapter = new Map([['model.layers.0.self_attn.q_proj', perOutput]]);
    const { tensors, config } = toPeft(adapter, { baseModelNameOrPath: 'm' });
    expect(
      tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector')?.shape,
    ).toEqual([3]);
    expect(config).toMatchObject({ peft_type: 'LORA', use_dora: true });
    expect(plain(fromPeft(tensors, config))).toEqual(plain(adapter));
  });

  it('refuse the layouts that cannot hold them, saying which can', () => {
    const sdInput = new Map([['model.layers.0.mlp.up_proj', perInput]]);
    expect(() => toPeft(sdInput, { baseModelNameOrPath: 'm' })).toThrow(/per input column .* kohya layout/);
    expect(() => toDiffusers(new Map([['unet.a', perOutput]]))).toThrow(
      /dora module, which has no diffusers form/,
    );
  });

  it('refuse a magnitude that fits neither axis of the weight', () => {
    const keys = toKohya(new Map([['unet.a', perInput]]));
    keys.set('lora_unet_a.dora_scale', tensor([2, 2]));
    expect(() => fromKohya(keys)).toThrow(/DoRA magnitude of \[2, 2\].*expected \[3, 1\].*or \[1, 4\]/);
  });

  it('write rsLoRA to PEFT as use_rslora with the alpha the user set', () => {
    const module = loraModule(tensor([8, 4]), tensor([4, 8]), 16 * Math.sqrt(8));
    const { config, tensors } = toPeft(new Map([['model.layers.0.self_attn.q_proj', module]]), {
      baseModelNameOrPath: 'm',
      rslora: true,
    });
    expect(config).toMatchObject({ r: 8, lora_alpha: 16, use_rslora: true });
    expect(fromPeft(tensors, config).get('model.layers.0.self_attn.q_proj')?.alpha).toBeCloseTo(
      16 * Math.sqrt(8),
      12,
    );
  });
});

describe('LoHa modules', () => {
  const loha = (out: number, inner: number, rank: number): LoraModule => ({
    variant: 'loha',
    tensors: {
      hada_w1_a: tensor([out, rank]),
      hada_w1_b: tensor([rank, inner]),
      hada_w2_a: tensor([out, rank]),
      hada_w2_b: tensor([rank, inner]),
    },
    alpha: 2,
  });

  it("write LyCORIS's hada_w* keys with alpha, read back as LoHa with rank hada_w1_b.shape[0]", () => {
    const adapter = new Map([
      ['unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_q', loha(8, 8, 4)],
      ['unet.down_blocks.0.resnets.0.conv1', loha(8, 72, 2)],
    ]);
    const keys = toKohya(adapter);
    expect([...keys.keys()].filter((k) => k.includes('conv1')).sort()).toEqual(
      ['alpha', 'hada_w1_a', 'hada_w1_b', 'hada_w2_a', 'hada_w2_b'].map(
        (s) => `lora_unet_down_blocks_0_resnets_0_conv1.${s}`,
      ),
    );
    const back = fromKohya(keys);
    expect(plain(back)).toEqual(plain(adapter));
    expect(rankOf(back.get('unet.down_blocks.0.resnets.0.conv1')!)).toBe(2);
  });

  it('refuse the layouts without a LoHa form, and mismatched factors', () => {
    expect(() =>
      toPeft(new Map([['model.layers.0.mlp.up_proj', loha(8, 8, 4)]]), { baseModelNameOrPath: 'm' }),
    ).toThrow(/loha module, which has no peft form \(it has: kohya\)/);
    const keys = toKohya(new Map([['unet.a', loha(8, 8, 4)]]));
    keys.set('lora_unet_a.hada_w2_b', tensor([4, 6]));
    expect(() => fromKohya(keys)).toThrow(/LoHa module "lora_unet_a" has .*hada_w2_b \[4, 6\]/);
  });
});

describe('LoKr modules', () => {
  it('read and write every form LyCORIS saves (each factor full or a pair), with the scale consumers use', () => {
    const forms: Record<string, LoraModule> = {
      'unet.a': {
        variant: 'lokr',
        tensors: { lokr_w1: tensor([2, 2]), lokr_w2_a: tensor([3, 1]), lokr_w2_b: tensor([1, 4]) },
        alpha: 2,
      },
      'unet.b': { variant: 'lokr', tensors: { lokr_w1: tensor([2, 2]), lokr_w2: tensor([3, 4]) }, alpha: 8 },
      'unet.c': {
        variant: 'lokr',
        tensors: {
          lokr_w1_a: tensor([2, 1]),
          lokr_w1_b: tensor([1, 2]),
          lokr_w2_a: tensor([3, 1]),
          lokr_w2_b: tensor([1, 36]),
        },
        alpha: 1,
      },
    };
    const adapter = new Map(Object.entries(forms));
    const keys = toKohya(adapter);
    expect([...keys.keys()].filter((k) => k.startsWith('lora_unet_a.')).sort()).toEqual(
      ['alpha', 'lokr_w1', 'lokr_w2_a', 'lokr_w2_b'].map((s) => `lora_unet_a.${s}`),
    );
    const back = fromKohya(keys, { modulePaths: adapter.keys() });
    expect(plain(back)).toEqual(plain(adapter));
    // alpha / rows of w2b; both factors full: 1 whatever alpha says (A1111, ComfyUI, LyCORIS).
    expect(['unet.a', 'unet.b', 'unet.c'].map((p) => scaleOfModule(back.get(p)!))).toEqual([2, 1, 1]);
  });
});

describe('the variant registry', () => {
  it.each(['kohya', 'diffusers', 'peft'] as const)(
    'gives each %s key suffix one role, and no two variants one form (a file names its variant)',
    (layout) => {
      const roleOf = new Map<string, string>();
      const forms = new Map<string, string>();
      for (const variant of Object.values(VARIANTS)) {
        for (const [role, suffix] of Object.entries(variant.keys[layout] ?? {})) {
          expect(roleOf.get(suffix) ?? role, `${variant.id} ${suffix}`).toBe(role);
          roleOf.set(suffix, role);
        }
        for (const form of formsOf(variant.id as VariantId)) {
          const key = [...form].sort().join('+');
          expect(forms.get(key), `${variant.id} and ${forms.get(key)} share ${key}`).toBeUndefined();
          forms.set(key, variant.id);
        }
      }
    },
  );
});
