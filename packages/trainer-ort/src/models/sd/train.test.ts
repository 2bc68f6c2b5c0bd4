/**
 * Stable Diffusion LoRA training end to end through `trainSd` on the generated tiny model and
 * shape images: the kohya file and its metadata, resume bit-identical to an uninterrupted run,
 * the latent cache reused by the next run, the diffusers layout, aspect buckets trained through
 * one graph each, and the kohya options flip_aug, random_crop and clip_skip.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kohyaHashes, loraFromTensors } from '@lora/adapters';
import { loadConfig, type SdConfig, type TrainerEvent, type TrainingResult } from '@lora/config';
import { checkDataset, ImageDataset } from '@lora/dataset';
import { convertDtype, readSafetensors, toFloat32, writeSafetensors } from '@lora/safetensors';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LDM_PREFIXES } from './keys.ts';
import { ClipTokenizer } from './model-files.ts';
import { encodePng } from './png.ts';
import { sampleImage } from './sample-image.ts';
import { writeShapeImages, writeTinySdModel } from './tiny.ts';
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
  /** The step graphs as they were when the run ended (the run removes them afterwards), by file name. */
  graphs: Map<string, string>;
}

async function train(
  sd: SdConfig,
  { abortAtStep, ...options }: TrainSdOptions & { abortAtStep?: number } = {},
): Promise<Trained> {
  const events: TrainerEvent[] = [];
  const info: string[] = [];
  const graphs = new Map<string, string>();
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
        if (event.type === 'done') {
          const folder = join(sd.output_dir, 'graphs');
          for (const name of readdirSync(folder).filter((f) => f.endsWith('.onnx'))) {
            graphs.set(name, readFileSync(join(folder, name), 'latin1'));
          }
        }
      },
    },
    options,
  );
  return { result, events, info, graphs };
}

const tensorBytes = async (path: string) => {
  const { tensors } = await readSafetensors(path);
  return new Map(
    [...tensors].map(([name, t]) => [name, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)]),
  );
};

/** kohya's names for to_q and to_v of the tiny UNet: one Transformer2D in down block 0, one in the mid block, two in up block 1. */
/** The diffusers path of KOHYA_NAMES[0]. */
const KOHYA_PATH = 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q';
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
      expect(module.tensors.down?.shape[0]).toBe(4);
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
    ['ss_clip_skip', '1'],
    ['ss_flip_aug', 'False'],
    ['ss_random_crop', 'False'],
    ['ss_enable_bucket', 'True'],
    ['ss_bucket_info', '{"buckets": {"0": {"resolution": [64, 64], "count": 6}}, "mean_img_ar_error": 0}'],
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
    expect(stopped.info.join('\n')).toMatch(/latents: 0 encoded, 6 read from the cache/);
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

  it('trains DoRA: dora_scale per input column, LyCORIS metadata, and its own file as init_adapter', async () => {
    const sd = { ...(await config('dora')), network: 'dora' as const, use_rslora: true };
    const { result, events } = await train({ ...sd, max_steps: 2 });
    const losses = events.flatMap((e) => (e.type === 'step' ? [e.loss] : []));
    expect(losses.every(Number.isFinite)).toBe(true);
    const { tensors, metadata } = await readSafetensors(result.adapter);
    const name = KOHYA_NAMES[0]!;
    expect(tensors.get(`${name}.dora_scale`)?.shape).toEqual([1, 32]);
    // rsLoRA: alpha 2 over √4 is stored as 2 · √4 = 4, so A1111's alpha / rank is the trained scale.
    expect(loraFromTensors(tensors).get(`unet.${KOHYA_PATH}`)?.alpha).toBe(4);
    expect(metadata).toMatchObject({
      ss_network_module: 'lycoris.kohya',
      ss_network_args: '{"algo": "lora", "dora_wd": "True", "wd_on_output": "False", "dropout": null}',
      ss_network_alpha: '4.0',
    });
    const adapter = loraFromTensors(tensors);
    expect([...adapter.values()].every((m) => m.variant === 'dora')).toBe(true);
    const again = await train({
      ...sd,
      output_dir: join(root, 'runs', 'dora-again'),
      max_steps: 1,
      init_adapter: result.adapter,
    });
    expect(again.result.stopped).toBe('completed');
    await expect(
      train({
        ...sd,
        network: 'lora',
        output_dir: join(root, 'runs', 'dora-as-lora'),
        max_steps: 1,
        init_adapter: result.adapter,
      }),
    ).rejects.toThrow(/is a dora module; set network: dora/);
  });
});

describe('trainSd with LoHa', () => {
  it("writes LyCORIS's hada_w* keys and metadata, and refuses the diffusers layout, which has no LoHa form", async () => {
    const sd = { ...(await config('loha')), network: 'loha' as const };
    const { result, events } = await train({ ...sd, max_steps: 2 });
    const losses = events.flatMap((e) => (e.type === 'step' ? [e.loss] : []));
    expect(losses).toHaveLength(2);
    expect(losses.every(Number.isFinite)).toBe(true);
    const { tensors, metadata } = await readSafetensors(result.adapter);
    expect(tensors.get(`${KOHYA_NAMES[0]}.hada_w1_b`)?.shape).toEqual([4, 32]);
    expect(metadata).toMatchObject({ ss_network_module: 'lycoris.kohya' });
    expect(JSON.parse(metadata['ss_network_args']!)).toEqual({ algo: 'loha', dropout: null });
    // w2a starts at zero and has moved: the product learned something.
    const w2a = loraFromTensors(tensors).get(`unet.${KOHYA_PATH}`)!.tensors['hada_w2_a']!;
    expect([...toFloat32(w2a.data as Uint8Array, 'F32')].some((v) => v !== 0)).toBe(true);
    await expect(
      train(
        { ...sd, output_dir: join(root, 'runs', 'loha-diffusers'), max_steps: 1 },
        { layout: 'diffusers' },
      ),
    ).rejects.toThrow(/network: loha has no diffusers form \(LoHa files are kohya\)/);
  });
});

describe('trainSd with LoKr', () => {
  it("writes LyCORIS's lokr_w* keys: w1 full, w2 a low-rank pair at this rank, and loads back as LoKr", async () => {
    const sd = { ...(await config('lokr')), network: 'lokr' as const, lora_rank: 2 };
    const { result, events } = await train({ ...sd, max_steps: 2 });
    expect(events.flatMap((e) => (e.type === 'step' ? [e.loss] : [])).every(Number.isFinite)).toBe(true);
    const { tensors, metadata } = await readSafetensors(result.adapter);
    // to_q of the 32-wide tiny UNet: 32 = 4 · 8 both ways, so w1 [4, 4] and w2 = [8, 2] @ [2, 8].
    expect(
      ['lokr_w1', 'lokr_w2_a', 'lokr_w2_b'].map((k) => tensors.get(`${KOHYA_NAMES[0]}.${k}`)?.shape),
    ).toEqual([
      [4, 4],
      [8, 2],
      [2, 8],
    ]);
    expect(JSON.parse(metadata['ss_network_args']!)).toEqual({ algo: 'lokr', dropout: null });
    const module = loraFromTensors(tensors).get(`unet.${KOHYA_PATH}`)!;
    expect(module.variant).toBe('lokr');
  });
});

describe('trainSd with conv_rank (LoCon)', () => {
  it("trains the ResNet blocks too: 3×3 convolutions at conv_rank as kohya's conv_dim, time_emb_proj and conv_shortcut at lora_rank", async () => {
    const sd = { ...(await config('locon')), conv_rank: 2, conv_alpha: 1 };
    const { result } = await train({ ...sd, max_steps: 1 });
    const { tensors, metadata } = await readSafetensors(result.adapter);
    const adapter = loraFromTensors(tensors);
    const conv1 = adapter.get('unet.down_blocks.0.resnets.0.conv1')!;
    expect(conv1.tensors['down']?.shape).toEqual([2, 32, 3, 3]);
    expect(conv1.tensors['up']?.shape).toEqual([32, 2, 1, 1]);
    expect(conv1.alpha).toBe(1);
    expect(adapter.get('unet.down_blocks.0.resnets.0.time_emb_proj')?.tensors['down']?.shape[0]).toBe(4);
    expect(adapter.get('unet.down_blocks.0.downsamplers.0.conv')?.tensors['down']?.shape).toEqual([
      2, 32, 3, 3,
    ]);
    expect(adapter.get(`unet.${KOHYA_PATH}`)?.alpha).toBe(2);
    expect(JSON.parse(metadata['ss_network_args']!)).toEqual({
      conv_dim: '2',
      conv_alpha: '1',
      dropout: null,
    });
    // Its own file starts a run with the same settings, and names conv_rank when they differ.
    const again = {
      ...sd,
      output_dir: join(root, 'runs', 'locon-again'),
      max_steps: 1,
      init_adapter: result.adapter,
    };
    expect((await train(again)).result.stopped).toBe('completed');
    await expect(
      train({ ...again, output_dir: join(root, 'runs', 'locon-other'), conv_rank: 4 }),
    ).rejects.toThrow(/conv1 has rank 2; set conv_rank: 2/);
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

  it.each([
    ['random_crop with cached latents', { random_crop: true }, /random_crop .*set cache_latents: false/],
    ['a clip_skip past the text encoder', { clip_skip: 3 }, /clip_skip 3 skips more than the 2 layers/],
  ])('refuses %s', async (_, change, message) => {
    const sd = await config('refused');
    await expect(train({ ...sd, ...change })).rejects.toMatchObject({ code: 'E_MODEL_CONFIG', message });
  });

  it('says once how many captions are longer than the text encoder window, and the longest', async () => {
    const data = join(root, 'long-captions');
    await writeShapeImages(data, { count: 3 });
    const metadata = join(data, 'metadata.csv');
    const rows = (await readFile(metadata, 'utf8')).trim().split('\n');
    const [file] = rows[1]!.split(',');
    rows[1] = `${file},"${Array.from({ length: 120 }, (_, i) => `tag${i}`).join(', ')}"`;
    await writeFile(metadata, `${rows.join('\n')}\n`);
    const sd = { ...(await config('long-captions')), train_data_dir: data, max_steps: 1 };
    const { events } = await train(sd);
    const long = events.filter((e) => e.type === 'warning' && e.code === 'long_captions');
    expect(long).toEqual([
      expect.objectContaining({
        message: expect.stringMatching(
          new RegExp(
            `^1 of 3 caption\\(s\\) are longer than the text encoder's 75 tokens .*the longest, .*${file!.replace('.', '\\.')}, has \\d{3}\\)`,
          ),
        ),
      }),
    ]);
  });

  it('says where to put CLIP tokenizer.json when the checkpoint has none beside it', async () => {
    const model = join(root, 'models', 'no-tokenizer');
    await writeTinySdModel(model);
    await rm(join(model, 'tokenizer'), { recursive: true });
    const sd = await config('no-tokenizer');
    // A home of its own: the real one may hold a Hugging Face cache with CLIP in it.
    vi.stubEnv('HOME', join(root, 'empty-home'));
    for (const name of ['HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_HOME', 'XDG_CACHE_HOME'])
      vi.stubEnv(name, '');
    await expect(train({ ...sd, base_model: join(model, 'tiny-sd.safetensors') })).rejects.toThrow(
      /no CLIP tokenizer \(tokenizer\.json, or vocab\.json and merges\.txt\) found; looked in .*no-tokenizer\/tokenizer \(beside the model\).*openai\/clip-vit-large-patch14/,
    );
    vi.unstubAllEnvs();
    expect(await readdir(model)).not.toContain('tokenizer');
  });
});

describe('trainSd with images of two aspect ratios', () => {
  // resolution [128, 64] makes the buckets 64x64, 64x128 and 128x64: the 4 squares train in
  // 64x64 (8×8 latents) and the 2 wide images in 128x64 (8×16 latents); batches of 2 make 3
  // micro-batches per epoch, one step each.
  let sd: SdConfig;
  let whole: Trained;
  beforeAll(async () => {
    const folder = join(root, 'mixed');
    await writeShapeImages(folder, { count: 4 });
    for (const [name, value] of [
      ['wide_a', 200],
      ['wide_b', 60],
    ] as const) {
      await writeFile(
        join(folder, `${name}.png`),
        encodePng(128, 64, new Uint8Array(128 * 64 * 3).fill(value)),
      );
    }
    sd = { ...(await config('mixed')), train_data_dir: folder, resolution: [128, 64], max_steps: 6 };
    whole = await train(sd);
  });

  it('trains every bucket size through its own gradients graph', async () => {
    expect(whole.result).toMatchObject({ stopped: 'completed', step: 6, epoch: 2 });
    expect(whole.info.join('\n')).toMatch(
      /6 image\(s\) in 2 bucket\(s\): 64x64 \(4 sample\(s\), latents 4×8×8\), 128x64 \(2 sample\(s\), latents 4×8×16\); 3 micro-batch/,
    );
    // The UNet's sizes are static, so a batch of one bucket fed to the other's graph would fail.
    expect([...whole.graphs.keys()].filter((f) => /^(gradients|vae_encoder)/.test(f)).sort()).toEqual([
      'gradients-8x16.onnx',
      'gradients-8x8.onnx',
      'vae_encoder_128x64.onnx',
      'vae_encoder_64x64.onnx',
    ]);
    const { metadata } = await readSafetensors(whole.result.adapter);
    expect(metadata['ss_resolution']).toBe('(128, 64)');
    expect(JSON.parse(metadata['ss_bucket_info']!)).toEqual({
      buckets: { 0: { resolution: [64, 64], count: 4 }, 1: { resolution: [128, 64], count: 2 } },
      mean_img_ar_error: 0,
    });
  });

  it('resumes at a micro-batch of another bucket bit-identically', async () => {
    const report = await checkDataset({ dirs: [sd.train_data_dir], resolution: sd.resolution });
    const plan = new ImageDataset(report.images, {
      resolution: sd.resolution,
      minBucketReso: sd.min_bucket_reso,
      maxBucketReso: sd.max_bucket_reso,
      batchSize: sd.batch_size,
      seed: sd.seed,
    }).epochPlan(0);
    // Stop after step s so that the resumed run starts in the bucket a fresh run does not start in.
    const s = plan.findIndex((b, i) => i > 0 && b.bucket.join() !== plan[0]!.bucket.join());
    const resumedSd = { ...sd, output_dir: join(root, 'runs', 'mixed-resumed') };
    const stopped = await train(resumedSd, { abortAtStep: s });
    expect(stopped.result).toMatchObject({ stopped: 'aborted', step: s });
    // The run removed its graphs (they hard-link the base weights): the resumed run builds them anew.
    expect(existsSync(join(resumedSd.output_dir, 'graphs'))).toBe(false);
    const resumed = await train({ ...resumedSd, resume: 'auto' });
    expect(resumed.events.filter((e) => e.type === 'step').map((e) => e.step)).toEqual(
      [1, 2, 3, 4, 5, 6].slice(s),
    );
    const [a, b] = await Promise.all([
      tensorBytes(whole.result.adapter),
      tensorBytes(resumed.result.adapter),
    ]);
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [name, bytes] of a) expect(b.get(name)!.equals(bytes), name).toBe(true);
  });
});

describe('trainSd kohya options', () => {
  it('flip_aug caches each image and its mirror image; clip_skip 2 builds the text encoder without its last layer', async () => {
    const folder = join(root, 'flip');
    await writeShapeImages(folder, { count: 2 });
    const sd = await config('flip');
    const { result, info, graphs } = await train({
      ...sd,
      train_data_dir: folder,
      max_steps: 1,
      flip_aug: true,
      clip_skip: 2,
    });
    expect(info.join('\n')).toMatch(/latents: 4 encoded, 0 read from the cache/);
    expect(info.join('\n')).toMatch(/memory for a step at latent size \d+x\d+: about \d+\.\d\d GiB/);
    const { metadata } = await readSafetensors(result.adapter);
    expect([metadata['ss_flip_aug'], metadata['ss_clip_skip']]).toEqual(['True', '2']);
    const graph = graphs.get('gradients-8x8.onnx')!;
    expect(graph).toContain('text_model.encoder.layers.0.');
    expect(graph).not.toContain('text_model.encoder.layers.1.');
  });

  it('samples the prompt lines with their kohya options before the first step and on schedule; step 0 draws the base image', async () => {
    const folder = join(root, 'sampling');
    await writeShapeImages(folder, { count: 2 });
    const sd = await config('sampling');
    const run = await train({
      ...sd,
      train_data_dir: folder,
      max_steps: 2,
      sample_prompts: ['**a red circle** --n blue --s 2 --l 4 --d 5', 'a blue square --s 1 --w 128'],
      sample_every_n_steps: 1,
    });
    const sampled = run.events.flatMap((e) => (e.type === 'sample' ? [e] : []));
    expect(sampled.map((e) => e.step)).toEqual([0, 1, 2]);
    const [first, , grid] = sampled[0]!.files;
    expect(sampled[0]!.files).toEqual(
      ['0', '1', 'grid'].map((i) => join(sd.output_dir, 'samples', `step-000000-${i}.png`)),
    );
    // The grid: one row (round(√2)), two cells of the larger image's size, 128×64.
    const header = (await readFile(grid!)).subarray(16, 24);
    expect([header.readUInt32BE(0), header.readUInt32BE(4)]).toEqual([256, 64]);
    const png = await readFile(first!);
    const text = png.subarray(png.indexOf('tEXt') + 4, png.indexOf('IDAT') - 8).toString('latin1');
    expect(text).toMatch(
      /^parameters\0\*\*a red circle\*\*\nNegative prompt: blue\nSteps: 2, Sampler: Euler a, CFG scale: 4, Seed: 5, Size: 64x64, /,
    );
    // Before the first step the LoRA changes nothing: the base model's pixels.
    const tokenizer = await ClipTokenizer.forModel(sd.base_model, 77);
    const base = await sampleImage(sd.base_model, tokenizer, {
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
    expect(idat(png).equals(idat(base.png))).toBe(true);
    expect(idat(await readFile(sampled[2]!.files[0]!)).equals(idat(base.png))).toBe(false);
  });

  it('computes the text encoders’ outputs once when they are not trained and the captions never change: the losses of running them every step', async () => {
    const sd = await config('text-cached');
    const fixed = { ...sd, shuffle_caption: false, caption_tag_dropout_rate: 0 };
    const cached = await train(fixed);
    expect(cached.info.join('\n')).toMatch(
      /text encoders: not trained, so their outputs are computed once per caption and the training graph leaves them out \(6 encoded, 0 read from .*cache[/\\]text\)/,
    );
    // The training graph takes the states: no text-encoder weight is in it.
    const graph = cached.graphs.get('gradients-8x8.onnx')!;
    expect(graph).not.toContain('text_model.encoder.layers.0.');
    // Shuffling with every tag kept in place gives the same captions, but they could change, so
    // the encoders run inside the training graph: the same losses, up to float rounding.
    const inGraph = await train({
      ...fixed,
      output_dir: join(root, 'runs', 'text-in-graph'),
      shuffle_caption: true,
      keep_tokens: 100,
    });
    expect(inGraph.info.join('\n')).toMatch(/text encoders: run every step, as the captions change/);
    expect(inGraph.graphs.get('gradients-8x8.onnx')).toContain('text_model.encoder.layers.0.');
    const losses = (run: Trained) => run.events.flatMap((e) => (e.type === 'step' ? [e.loss] : []));
    const expected = losses(inGraph);
    expect(losses(cached)).toHaveLength(4);
    losses(cached).forEach((loss, i) => {
      expect(Math.abs(loss - expected[i]!) / expected[i]!).toBeLessThan(1e-5);
    });
    // The next run reads the cache.
    const again = await train({ ...fixed, max_steps: 1 });
    expect(again.info.join('\n')).toMatch(/\(0 encoded, 6 read from /);
  });

  it('evaluates the validation loss of held-out images at fixed timesteps and noise, comparable between runs', async () => {
    const sd = await config('validated');
    const evaluate = async (name: string, learningRate: number) => {
      const run = await train({
        ...sd,
        output_dir: join(root, 'runs', name),
        learning_rate: learningRate,
        validation_split: 0.34,
        validation_every_n_steps: 2,
      });
      return { run, losses: run.events.flatMap((e) => (e.type === 'validation' ? [e] : [])) };
    };
    const { run, losses } = await evaluate('validated', 0.003);
    expect(run.info.join('\n')).toMatch(/sd: 4 image\(s\) in/);
    expect(run.info).toContainEqual(
      'validation loss on 2 held-out image(s) × 5 timesteps (100, 300, 500, 700, 900) with fixed noise, every 2 steps, before the first step and after the last',
    );
    expect(losses.map((e) => e.step)).toEqual([0, 2, 4]);
    for (const e of losses) expect(Number.isFinite(e.loss) && e.loss > 0).toBe(true);
    // Another learning rate: the same loss before training (same images, timesteps and noise), other values after.
    const other = await evaluate('validated-slow', 0.0003);
    expect(other.losses[0]!.loss).toBe(losses[0]!.loss);
    expect(other.losses[2]!.loss).not.toBe(losses[2]!.loss);
    // Training on these shapes lowers the loss of the held-out ones: the last step is the best, and
    // its adapter (with that step's metadata) is in best/, the same as the run's adapter.
    expect(losses[2]!.loss).toBeLessThan(losses[0]!.loss);
    const best = losses.at(-1)!.best;
    expect(best).toEqual({
      step: 4,
      loss: losses[2]!.loss,
      adapter: join(root, 'runs', 'validated', 'best', 'shapes.safetensors'),
    });
    expect((await readSafetensors(best.adapter!)).metadata['ss_steps']).toBe('4');
    expect(await tensorBytes(best.adapter!)).toEqual(await tensorBytes(run.result.adapter));
  });

  it('validation_data: the validation loss of another folder of images, each counted once', async () => {
    const folder = join(root, 'held-out', '3_shapes');
    await writeShapeImages(folder, { count: 2 });
    const sd = await config('validation-folder');
    const run = await train({ ...sd, max_steps: 1, validation_data: [join(root, 'held-out')] });
    expect(run.info.join('\n')).toMatch(/sd: 6 image\(s\) in/);
    expect(run.info.join('\n')).toMatch(
      /validation loss on 2 image\(s\) × 5 timesteps .* at the end of every epoch/,
    );
    expect(run.events.flatMap((e) => (e.type === 'validation' ? [e.step] : []))).toEqual([0, 1]);
  });

  it('base_precision: fp16 trains an F32 file as it trains the same file with the UNet and text encoder stored in F16 (DoRA magnitudes included)', async () => {
    const model = join(root, 'models', 'tiny-sd');
    const { tensors } = await readSafetensors(join(model, 'tiny-sd.safetensors'));
    // The VAE only encodes the latents, once, and keeps the file's type (so a latent cache stays valid).
    const trained = [LDM_PREFIXES.unet, LDM_PREFIXES.text_encoder];
    const half = new Map(
      [...tensors].map(([name, t]) => {
        if (!trained.some((prefix) => name.startsWith(prefix))) return [name, t];
        const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
        return [name, { ...t, dtype: 'F16' as const, data: convertDtype(bytes, 'F32', 'F16') }];
      }),
    );
    await writeSafetensors(join(model, 'tiny-sd-half.safetensors'), half);
    const folder = join(root, 'precision');
    await writeShapeImages(folder, { count: 2 });
    const steps = async (name: string, memory: Partial<SdConfig>) => {
      const run = await train({
        ...(await config(name)),
        train_data_dir: folder,
        max_steps: 2,
        train_text_encoder: true,
        // DoRA starts its magnitudes from the frozen weights' norms: those of the rounded weights.
        network: 'dora',
        ...memory,
      });
      return run.events.flatMap((e) => (e.type === 'step' ? [e.loss] : []));
    };
    const converted = await steps('converted', { base_precision: 'fp16' });
    const stored = await steps('stored-half', { base_model: join(model, 'tiny-sd-half.safetensors') });
    const full = await steps('full', {});
    expect(converted).toHaveLength(2);
    expect(converted).toEqual(stored);
    // The rounding is real: float32 weights train a (slightly) different step.
    expect(converted).not.toEqual(full);
  });

  it('gradient_checkpointing and memory_efficient_attention recompute in the backward pass and train the same steps', async () => {
    const folder = join(root, 'recompute');
    await writeShapeImages(folder, { count: 2 });
    const losses = async (name: string, memory: Partial<SdConfig>) => {
      const sd = await config(name);
      const run = await train({
        ...sd,
        train_data_dir: folder,
        max_steps: 2,
        train_text_encoder: true,
        ...memory,
      });
      const steps = run.events.flatMap((e) => (e.type === 'step' ? [e.loss] : []));
      return { steps, run };
    };
    const kept = await losses('kept', {});
    const recomputed = await losses('recomputed', {
      gradient_checkpointing: true,
      memory_efficient_attention: true,
    });
    expect(recomputed.steps).toHaveLength(2);
    recomputed.steps.forEach((loss, i) => {
      expect(Math.abs(loss - kept.steps[i]!) / kept.steps[i]!).toBeLessThan(1e-5);
    });
    expect(recomputed.run.info.join('\n')).toMatch(/activations up to .* with gradient checkpointing/);
    // The backward pass's recomputation is in the graph the run loaded.
    expect(recomputed.run.graphs.get('gradients-8x8.onnx')).toContain('recompute');
    expect(kept.run.graphs.get('gradients-8x8.onnx')).not.toContain('recompute');
    // kohya's metadata says how the LoRA was trained.
    const checkpointing = async (run: typeof kept.run) =>
      (await readSafetensors(run.result.adapter)).metadata['ss_gradient_checkpointing'];
    expect([await checkpointing(kept.run), await checkpointing(recomputed.run)]).toEqual(['False', 'True']);
  });
});
