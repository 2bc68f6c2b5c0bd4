/**
 * Stable Diffusion LoRA training end to end through `trainSd` on the generated tiny model and
 * shape images: the kohya file and its metadata, resume bit-identical to an uninterrupted run,
 * the latent cache reused by the next run, and the diffusers layout.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type SdConfig, type TrainerEvent, type TrainingResult } from '@lora/config';
import { kohyaHashes, loraFromTensors, readSafetensors } from '@lora/safetensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng, writeShapeImages, writeTinySdModel } from './tiny.ts';
import { type TrainSdOptions, trainSd } from './train.ts';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sd-train-'));
  await writeTinySdModel(join(root, 'models', 'tiny-sd'));
  await writeShapeImages(join(root, 'data'), { count: 6 });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function config(name: string): Promise<SdConfig> {
  const path = join(root, `${name}.yaml`);
  await writeFile(
    path,
    `task: sd
base_model: models/tiny-sd/tiny-sd.safetensors
train_data_dir: data
output_dir: runs/${name}
output_name: shapes
resolution: 64
min_bucket_reso: 64
max_bucket_reso: 128
batch_size: 2
gradient_accumulation_steps: 1
max_steps: 4
learning_rate: 0.003
lora_rank: 4
lora_alpha: 2
target_modules: ["q_proj", "v_proj"]
min_snr_gamma: 5
noise_offset: 0.05
shuffle_caption: true
caption_tag_dropout_rate: 0.2
device: cpu
tensorboard: false
`,
  );
  return (await loadConfig(path)) as SdConfig;
}

interface Trained {
  result: TrainingResult;
  events: TrainerEvent[];
  info: string[];
}

async function train(
  sd: SdConfig,
  { abortAtStep, ...options }: TrainSdOptions & { abortAtStep?: number } = {},
): Promise<Trained> {
  const events: TrainerEvent[] = [];
  const info: string[] = [];
  const controller = new AbortController();
  const result = await trainSd(
    {
      config: sd,
      outputDir: sd.output_dir,
      signal: controller.signal,
      logger: { debug() {}, info: (m) => info.push(m), warn() {} },
      emit: (event) => {
        events.push(event);
        if (event.type === 'step' && event.step === abortAtStep) controller.abort();
      },
    },
    options,
  );
  return { result, events, info };
}

const tensorBytes = async (path: string) => {
  const { tensors } = await readSafetensors(path);
  return new Map(
    [...tensors].map(([name, t]) => [name, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)]),
  );
};

/** kohya's names for to_q and to_v of the tiny UNet: one Transformer2D in down block 0, one in the mid block, two in up block 1. */
const KOHYA_NAMES = [
  'down_blocks_0_attentions_0',
  'mid_block_attentions_0',
  'up_blocks_1_attentions_0',
  'up_blocks_1_attentions_1',
].flatMap((block) =>
  ['attn1', 'attn2'].flatMap((attn) =>
    ['to_q', 'to_v'].map((proj) => `lora_unet_${block}_transformer_blocks_0_${attn}_${proj}`),
  ),
);

describe('trainSd on the tiny model', () => {
  let first: Trained;
  beforeAll(async () => {
    first = await train(await config('first'));
  });

  it('completes the steps with finite losses and reports done with the run files', () => {
    const steps = first.events.filter((e) => e.type === 'step');
    expect(steps.map((e) => e.step)).toEqual([1, 2, 3, 4]);
    for (const step of steps) expect(Number.isFinite(step.loss) && step.loss > 0).toBe(true);
    expect(first.result).toMatchObject({ stopped: 'completed', step: 4, epoch: 2 });
    expect(first.result.adapter).toBe(join(root, 'runs', 'first', 'shapes.safetensors'));
    expect(first.events.at(-1)).toEqual({ type: 'done', ...first.result });
  });

  it('says that q_proj / v_proj mean the UNet to_q / to_v', () => {
    const warning = first.events.find((e) => e.type === 'warning' && e.code === 'module_mapping');
    expect(warning).toBeDefined();
    expect(warning && 'message' in warning ? warning.message : '').toMatch(/to_q, to_v/);
  });

  it('writes exactly kohya names for the trained modules, loadable as a LoRA', async () => {
    const { tensors } = await readSafetensors(first.result.adapter);
    const expected = KOHYA_NAMES.flatMap((n) => [
      `${n}.alpha`,
      `${n}.lora_down.weight`,
      `${n}.lora_up.weight`,
    ]);
    expect([...tensors.keys()].sort()).toEqual(expected.sort());
    const adapter = loraFromTensors(tensors);
    expect(adapter.size).toBe(KOHYA_NAMES.length);
    for (const module of adapter.values()) {
      expect(module.alpha).toBe(2);
      expect(module.down.shape[0]).toBe(4);
    }
    // B starts at zero; a trained B is not.
    const up = tensors.get(`${KOHYA_NAMES[0]}.lora_up.weight`)!.data as Float32Array;
    expect(up.some((v) => v !== 0)).toBe(true);
  });

  it.each([
    ['ss_output_name', 'shapes'],
    ['ss_network_module', 'networks.lora'],
    ['ss_network_dim', '4'],
    ['ss_network_alpha', '2.0'],
    ['ss_base_model_version', 'sd_v1'],
    ['ss_v2', 'False'],
    ['ss_resolution', '(64, 64)'],
    ['ss_num_train_images', '6'],
    ['ss_seed', '42'],
    ['ss_learning_rate', '0.003'],
    ['ss_unet_lr', '0.003'],
    ['ss_text_encoder_lr', 'None'],
    ['ss_steps', '4'],
    ['ss_epoch', '2'],
    ['ss_max_train_steps', '4'],
    ['ss_num_epochs', '2'],
    ['ss_num_batches_per_epoch', '3'],
    ['ss_clip_skip', 'None'],
    ['ss_noise_offset', '0.05'],
    ['ss_min_snr_gamma', '5.0'],
    ['ss_mixed_precision', 'no'],
    ['ss_cache_latents', 'True'],
    ['ss_shuffle_caption', 'True'],
    ['ss_sd_model_name', 'tiny-sd.safetensors'],
    ['ss_dataset_dirs', '{"data": {"n_repeats": 1, "img_count": 6}}'],
  ])('metadata %s = %s', async (key, value) => {
    const { metadata } = await readSafetensors(first.result.adapter);
    expect(metadata[key]).toBe(value);
  });

  it('records tag frequency per folder without markup, and kohya hashes of the ss_* file', async () => {
    const { tensors, metadata } = await readSafetensors(first.result.adapter);
    const frequency = JSON.parse(metadata['ss_tag_frequency']!) as Record<string, Record<string, number>>;
    expect(Object.keys(frequency)).toEqual(['data']);
    expect(frequency['data']!['flat shape style']).toBe(6);
    expect(frequency['data']!['simple']).toBe(6);
    expect(JSON.stringify(frequency)).not.toMatch(/\*/);
    expect(Number(metadata['ss_training_started_at'])).toBeGreaterThan(1.7e9);
    expect(Object.values(metadata).every((v) => typeof v === 'string')).toBe(true);
    expect({
      sshs_model_hash: metadata['sshs_model_hash'],
      sshs_legacy_hash: metadata['sshs_legacy_hash'],
    }).toEqual(kohyaHashes(tensors, metadata));
  });

  it('resumes an interrupted run bit-identically, reusing the cached latents', async () => {
    const sd = await config('resumed');
    const stopped = await train(sd, { abortAtStep: 2 });
    expect(stopped.result).toMatchObject({ stopped: 'aborted', step: 2 });
    expect(stopped.info.join('\n')).toMatch(/0 image\(s\) encoded, 6 read from the cache/);
    const resumed = await train({ ...sd, resume: 'auto' });
    expect(resumed.result).toMatchObject({ stopped: 'completed', step: 4 });
    expect(resumed.events.filter((e) => e.type === 'step').map((e) => e.step)).toEqual([3, 4]);
    const [a, b] = await Promise.all([
      tensorBytes(first.result.adapter),
      tensorBytes(resumed.result.adapter),
    ]);
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [name, bytes] of a) expect(b.get(name)!.equals(bytes), name).toBe(true);
  });

  it('writes the diffusers layout on request, holding the same modules', async () => {
    const sd = await config('diffusers');
    const { result } = await train({ ...sd, max_steps: 1 }, { layout: 'diffusers' });
    expect(result.adapter).toBe(join(sd.output_dir, 'pytorch_lora_weights.safetensors'));
    const { tensors, metadata } = await readSafetensors(result.adapter);
    expect(metadata).toEqual({ format: 'pt' });
    const names = [...tensors.keys()];
    expect(names).toContain(
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight',
    );
    expect(names.some((n) => n.startsWith('lora_'))).toBe(false);
    expect(loraFromTensors(tensors).size).toBe(KOHYA_NAMES.length);
  });
});

describe('trainSd inputs', () => {
  it('trains the text encoder with its own learning rate, encoding latents per batch without the cache', async () => {
    const sd = await config('text-encoder');
    const { result, info } = await train({
      ...sd,
      max_steps: 1,
      train_text_encoder: true,
      text_encoder_lr: 0.0005,
      target_modules: ['to_k', 'q_proj'],
      cache_latents: false,
    });
    expect(info.join('\n')).not.toMatch(/latents: /);
    const { tensors, metadata } = await readSafetensors(result.adapter);
    const modules = [...loraFromTensors(tensors).keys()];
    expect(modules.filter((m) => m.startsWith('text_encoder.'))).toEqual([
      'text_encoder.text_model.encoder.layers.0.self_attn.q_proj',
      'text_encoder.text_model.encoder.layers.1.self_attn.q_proj',
    ]);
    expect(modules.filter((m) => m.startsWith('unet.') && /to_[kq]$/.test(m))).toHaveLength(16);
    expect(metadata['ss_text_encoder_lr']).toBe('0.0005');
    const te = tensors.get('lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight')!;
    expect((te.data as Float32Array).some((v) => v !== 0)).toBe(true);
  });

  it('trains one bucket size: mixed aspect ratios are centre-cropped, with a warning', async () => {
    const folder = join(root, 'mixed');
    await writeShapeImages(folder, { count: 2 });
    await writeFile(join(folder, 'wide.png'), encodePng(128, 64, new Uint8Array(128 * 64 * 3).fill(200)));
    const sd = await config('mixed');
    const { events, result, info } = await train({
      ...sd,
      max_steps: 1,
      train_data_dir: folder,
      resolution: [128, 128],
    });
    const warning = events.find((e) => e.type === 'warning' && e.code === 'single_bucket');
    expect(warning && 'message' in warning ? warning.message : '').toMatch(
      /2 aspect buckets \(128x64, 128x128\)/,
    );
    expect(info.join('\n')).toMatch(/bucket 128x128 → latents 4×16×16/);
    expect(result.stopped).toBe('completed');
  });

  it('says where to put CLIP tokenizer.json when the checkpoint has none beside it', async () => {
    const model = join(root, 'models', 'no-tokenizer');
    await writeTinySdModel(model);
    await rm(join(model, 'tokenizer'), { recursive: true });
    const sd = await config('no-tokenizer');
    await expect(train({ ...sd, base_model: join(model, 'tiny-sd.safetensors') })).rejects.toThrow(
      /no CLIP tokenizer at .*no-tokenizer\/tokenizer\/tokenizer\.json.*openai\/clip-vit-large-patch14/,
    );
    expect(await readdir(model)).not.toContain('tokenizer');
  });
});
