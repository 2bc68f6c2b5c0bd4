/**
 * An SDXL LoRA trained end to end through `trainSd` on the tiny SDXL model (sgm's single-file
 * layout, two text encoders, size conditioning): the family is read from the keys, both text
 * encoders train at their own rates, the size ids follow kohya's rules, the kohya file names
 * the UNet's modules by their LDM paths with kohya's SDXL metadata, and sample_prompts draw images.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { mergeLora } from '@lora/adapters';
import { loadConfig, type SdConfig, type TrainerEvent } from '@lora/config';
import { readSafetensors } from '@lora/safetensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdxlTimeIds } from './batches.ts';
import { ClipTokenizer, sdModelFamily } from './model-files.ts';
import { sampleImage } from './sample-image.ts';
import { writeShapeImages, writeTinySdModel } from './tiny.ts';
import { trainSd } from './train.ts';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sdxl-train-'));
  await writeTinySdModel(join(root, 'models', 'tiny-sdxl'), 'tiny-sdxl', 0, 'sdxl');
  await writeShapeImages(join(root, 'data'), { count: 4 });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function run(name: string, extra = '') {
  const path = join(root, `${name}.yaml`);
  await writeFile(
    path,
    `task: sd
base_model: models/tiny-sdxl/tiny-sdxl.safetensors
train_data_dir: data
output_dir: runs/${name}
output_name: shapes
resolution: 64
min_bucket_reso: 64
batch_size: 2
max_steps: 2
learning_rate: 0.003
lora_rank: 4
device: cpu
tensorboard: false
${extra}`,
  );
  const config = (await loadConfig(path)) as SdConfig;
  const events: TrainerEvent[] = [];
  const info: string[] = [];
  const result = await trainSd({
    config,
    outputDir: config.output_dir,
    signal: new AbortController().signal,
    logger: { debug() {}, info: (m) => info.push(m), warn() {} },
    emit: (event) => events.push(event),
  });
  return { result, events, info };
}

describe("SDXL's size and crop condition (kohya's get_crop_ltrb)", () => {
  it.each([
    // [width, height] of the image, [width, height] of the bucket, flipped → ids
    [[1200, 800], [1024, 1024], false, [800, 1200, 170, 0, 1024, 1024]],
    [[800, 1200], [1024, 1024], false, [1200, 800, 0, 170, 1024, 1024]],
    // Flipped: left = bucket width − right (170 + 682.67 → 171 after int()).
    [[800, 1200], [1024, 1024], true, [1200, 800, 0, 171, 1024, 1024]],
    [[1024, 1024], [1024, 1024], true, [1024, 1024, 0, 0, 1024, 1024]],
    [[640, 480], [1152, 896], false, [480, 640, 16, 0, 896, 1152]],
  ] as const)('%j in %j (flipped %s) → %j', (image, bucket, flipped, ids) => {
    expect(sdxlTimeIds(image, bucket, flipped)).toEqual(ids);
  });
});

describe('trainSd on the tiny SDXL model', () => {
  it('the single file names its family', async () => {
    expect(await sdModelFamily(join(root, 'models', 'tiny-sdxl', 'tiny-sdxl.safetensors'))).toBe('sdxl');
  });

  it('trains the UNet and both text encoders and writes kohya SDXL names and metadata', async () => {
    const { result, events, info } = await run(
      'both',
      'train_text_encoder: true\ntarget_modules: [to_q, to_v, proj_in, q_proj, v_proj]\ntext_encoder_lr: 0.001\ntext_encoder_2_lr: 0.0005\n',
    );
    expect(info).toContainEqual(
      expect.stringMatching(
        /^sd: Stable Diffusion XL \(text-encoder keys conditioner\.embedders\.1\.model\.…\)/,
      ),
    );
    const steps = events.filter((e) => e.type === 'step');
    expect(steps).toHaveLength(2);
    for (const step of steps) expect(Number.isFinite(step.loss)).toBe(true);
    const { tensors, metadata } = await readSafetensors(result.adapter);
    expect(metadata).toMatchObject({
      ss_base_model_version: 'sdxl_base_v1-0',
      ss_v2: 'False',
      ss_clip_skip: 'None',
      ss_text_encoder_lr: '[0.001, 0.0005]',
    });
    const modules = new Set([...tensors.keys()].map((k) => k.slice(0, k.indexOf('.'))));
    // The UNet by its LDM paths (1 ResNet per level in the tiny model: input block 3 is level 1's).
    expect(modules).toContain('lora_unet_input_blocks_3_1_transformer_blocks_1_attn1_to_q');
    expect(modules).toContain('lora_unet_middle_block_1_proj_in');
    expect([...modules].some((m) => m.includes('down_blocks'))).toBe(false);
    // CLIP ViT-L's layers that run (2 of 3) and every bigG layer, the partial attention warned about.
    expect([...modules].filter((m) => m.startsWith('lora_te1_'))).toHaveLength(2 * 2);
    expect([...modules].filter((m) => m.startsWith('lora_te2_'))).toHaveLength(2 * 2);
    expect(events.filter((e) => e.type === 'warning').map((e) => e.code)).toContain('partial_attention');

    // Merged into the SDXL single file by the names alone: the UNet by LDM path, CLIP ViT-L under
    // embedder 0, bigG's q and v as thirds 0 and 2 of its fused in_proj (k untouched).
    const base = join(root, 'models', 'tiny-sdxl', 'tiny-sdxl.safetensors');
    const report = await mergeLora(base, result.adapter, { output: join(root, 'merged.safetensors') });
    expect(report.size).toBe(modules.size);
    expect(report.get('model.diffusion_model.input_blocks.3.1.transformer_blocks.1.attn1.to_q.weight')).toBe(
      'unet.input_blocks.3.1.transformer_blocks.1.attn1.to_q',
    );
    expect(
      report.get('conditioner.embedders.0.transformer.text_model.encoder.layers.1.self_attn.q_proj.weight'),
    ).toBe('text_encoder.text_model.encoder.layers.1.self_attn.q_proj');
    const fused = 'conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_weight';
    expect(report.get(`${fused}[0/3]`)).toBe('text_encoder_2.text_model.encoder.layers.1.self_attn.q_proj');
    expect(report.get(`${fused}[2/3]`)).toBe('text_encoder_2.text_model.encoder.layers.1.self_attn.v_proj');
    expect(report.has(`${fused}[1/3]`)).toBe(false);
  }, 180_000);

  it('with frozen text encoders and fixed captions, caches both encoders’ outputs: the losses of running them every step', async () => {
    const cached = await run('unet-only');
    expect(cached.info.join('\n')).toMatch(
      /text encoders: not trained, so their outputs are computed once per caption .*\(4 encoded, 0 read/,
    );
    // Shuffling with every tag kept in place gives the same captions, run through both encoders in the graph.
    const inGraph = await run('unet-only-in-graph', 'shuffle_caption: true\nkeep_tokens: 100\n');
    expect(inGraph.info.join('\n')).toMatch(/text encoders: run every step/);
    const losses = (events: TrainerEvent[]) => events.flatMap((e) => (e.type === 'step' ? [e.loss] : []));
    const expected = losses(inGraph.events);
    expect(losses(cached.events)).toHaveLength(2);
    losses(cached.events).forEach((loss, i) => {
      expect(Math.abs(loss - expected[i]!) / expected[i]!).toBeLessThan(1e-5);
    });
  }, 180_000);

  it('samples the prompt lines while training: step 0 draws the base image, the trained LoRA other pixels', async () => {
    const { events, result } = await run(
      'samples',
      'train_text_encoder: true\ntarget_modules: [to_q, to_v, q_proj, k_proj, v_proj, out_proj]\nsample_prompts: ["**a red circle** --n blue --s 2 --l 4 --d 5", "a blue square --s 1 --w 128"]\nsample_every_n_steps: 1\n',
    );
    const sampled = events.flatMap((e) => (e.type === 'sample' ? [e] : []));
    expect(sampled.map((e) => e.step)).toEqual([0, 1, 2]);
    expect(sampled[0]!.files).toEqual(
      ['0', '1', 'grid'].map((i) => join(dirname(result.adapter), 'samples', `step-000000-${i}.png`)),
    );
    const png = await readFile(sampled[0]!.files[0]!);
    const text = png.subarray(png.indexOf('tEXt') + 4, png.indexOf('IDAT') - 8).toString('latin1');
    expect(text).toMatch(
      /^parameters\0\*\*a red circle\*\*\nNegative prompt: blue\nSteps: 2, Sampler: Euler a, CFG scale: 4, Seed: 5, Size: 64x64, Model hash: [0-9a-f]{10}, Model: tiny-sdxl, Lora hashes: "step-000000\.lora: [0-9a-f]{12}"$/,
    );
    const wide = await readFile(sampled[0]!.files[1]!);
    expect([wide.readUInt32BE(16), wide.readUInt32BE(20)]).toEqual([128, 64]);
    // Before the first step the LoRA (UNet and both text encoders) adds nothing: the base pixels.
    const base = join(root, 'models', 'tiny-sdxl', 'tiny-sdxl.safetensors');
    const tokenizer = await ClipTokenizer.forModel(base, 77, undefined, 'sdxl');
    const plain = await sampleImage(base, tokenizer, {
      prompt: '**a red circle**',
      negativePrompt: 'blue',
      sampler: 'euler_a',
      steps: 2,
      cfgScale: 4,
      seed: 5,
      width: 64,
      height: 64,
    });
    const idat = (bytes: Uint8Array) => {
      const buffer = Buffer.from(bytes);
      const at = buffer.indexOf('IDAT');
      return buffer.subarray(at, at + 4 + buffer.readUInt32BE(at - 4));
    };
    expect(idat(png).equals(idat(plain.png))).toBe(true);
    expect(idat(await readFile(sampled[2]!.files[0]!)).equals(idat(plain.png))).toBe(false);
  }, 180_000);
});
