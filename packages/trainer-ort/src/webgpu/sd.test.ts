/**
 * The tiny SD fixture (the golden test's UNet + CLIP text encoder + VAE encoder) on onnxruntime's
 * WebGPU provider against the CPU provider: the training step's gradients graph (UNet and text
 * encoder LoRA), the VAE encoder (latents) and the CLIP text encoder (text states).
 *
 * fp32 only: the SD loss graph computes in float32 whatever the loop's compute type (loss.ts). The
 * ops it would need in fp16 (Conv, GroupNormalization, Resize and their gradients) do run in
 * float16 on the WebGPU provider (checked by hand with onnxruntime-node 1.30).
 */
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Graph } from '../graph/graph.ts';
import { type OpenedSdCheckpoint, openSdCheckpoint } from '../models/sd/checkpoint.ts';
import { buildClipTextEncoder } from '../models/sd/clip.ts';
import {
  parseClipTextConfig,
  parseUnetConfig,
  parseVaeConfig,
  type SdModelConfig,
} from '../models/sd/config.ts';
import { SdTrainableModel } from '../models/sd/trainable.ts';
import { buildVaeEncoder } from '../models/sd/vae.ts';
import { type HostTensor, hostTensor } from '../session.ts';
import { gradName } from '../train/optimizer.ts';
import { buildGradientsGraph, LOSS_SCALE, LOSS_SUM } from '../train/step-graphs.ts';
import { compareOnDevices, describeOnWebGpu, HOOK_TIMEOUT, report } from './testing.ts';

interface Golden {
  unet_config: unknown;
  text_encoder_config: unknown;
  vae_config: unknown;
  rank: number;
  alpha: number;
  input_ids: number[][];
  timesteps: number[];
  loss_weights: number[];
  latents: number[];
  noise: number[];
  image: number[];
  vae_noise: number[];
  lora: Record<string, { A: number[]; B: number[] }>;
}

const FIXTURES = join(import.meta.dirname, '..', 'models', 'sd', '__fixtures__');
const golden = JSON.parse(await readFile(join(FIXTURES, 'golden.json'), 'utf8')) as Golden;
const config: SdModelConfig = {
  unet: parseUnetConfig(golden.unet_config),
  textEncoder: parseClipTextConfig(golden.text_encoder_config),
  vae: parseVaeConfig(golden.vae_config),
};
const BATCH = golden.timesteps.length;
const TOKENS = golden.input_ids[0]!.length;
const LATENT = [BATCH, config.unet.inChannels, 8, 8];
const IMAGE = [BATCH, config.vae.inChannels, 16, 16];

const f32 = (shape: readonly number[], values: readonly number[]) =>
  hostTensor('float32', shape, Float32Array.from(values));
const i64 = (shape: readonly number[], values: readonly number[]) =>
  hostTensor('int64', shape, BigInt64Array.from(values.map(BigInt)));

let folder: string;
let opened: OpenedSdCheckpoint;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'webgpu-sd-'));
  await copyFile(join(FIXTURES, 'model.safetensors'), join(folder, 'model.safetensors'));
  opened = await openSdCheckpoint(join(folder, 'model.safetensors'), config);
}, HOOK_TIMEOUT);
afterAll(async () => {
  await opened?.close();
  await rm(folder, { recursive: true, force: true });
}, HOOK_TIMEOUT);

describeOnWebGpu('tiny SD on WebGPU vs the CPU provider', () => {
  it('fp32 gradients graph (UNet + text-encoder LoRA): loss and every LoRA gradient within 1e-4', async () => {
    const model = new SdTrainableModel(opened.checkpoint, {
      tokens: TOKENS,
      prediction: 'epsilon',
      // q and v only: the backward pass still runs through every layer after the first LoRA
      // (attention, GEGLU, GroupNorm, convs, Resize); all 13 module kinds nearly double the first
      // WebGPU run on a cold Mesa shader cache (26 s vs 15 s on lavapipe) for LoRA matmuls alone.
      lora: {
        rank: golden.rank,
        alpha: golden.alpha,
        unet: ['to_q', 'to_v'],
        textEncoder: ['q_proj', 'v_proj'],
      },
    });
    const { graph, parameters } = buildGradientsGraph(model, 'fp32', '8x8');
    const feeds: Record<string, HostTensor> = {
      latents: f32(LATENT, golden.latents),
      noise: f32(LATENT, golden.noise),
      timesteps: i64([BATCH], golden.timesteps),
      input_ids: i64([BATCH, TOKENS], golden.input_ids.flat()),
      loss_weights: f32([BATCH], golden.loss_weights),
      [LOSS_SCALE]: f32([], [1]),
    };
    // The reference's LoRA values: B ≠ 0, so the A gradients are not zero.
    for (const m of model.modules) {
      const values = golden.lora[`${m.component}.${m.path}`]!;
      feeds[m.layer.down.name] = f32(m.layer.down.shape, values.A);
      feeds[m.layer.up.name] = f32(m.layer.up.shape, values.B);
    }
    expect(Object.keys(feeds)).toHaveLength(6 + parameters.length);
    const run = await compareOnDevices(graph, feeds);
    report(
      'SD gradients fp32',
      run.worst.error,
      `${graph.nodes.length} nodes, ${parameters.length} LoRA gradients + loss (${run.errors.get(LOSS_SUM)!.toExponential(2)}); worst ${run.worst.name}; first WebGPU run ${run.seconds.webgpuFirst.toFixed(1)} s, CPU ${run.seconds.cpu.toFixed(1)} s`,
    );
    // fp32 on both: summation order only (measured gradients 7.4e-6; the SD quick-start's 6.3e-6).
    // A wrong kernel (conv, GroupNorm, attention, Resize or their gradients) is off by far more.
    expect(run.errors.get(LOSS_SUM)!).toBeLessThan(1e-5);
    for (const p of parameters) expect(run.errors.get(gradName(p.name))!, p.name).toBeLessThan(1e-4);
  });

  it('VAE encoder: mean and sampled latents within 1e-4', async () => {
    const graph = new Graph('vae');
    const image = graph.input('image', 'float32', IMAGE);
    const noise = graph.input('noise', 'float32', LATENT);
    const ctx = { checkpoint: opened.checkpoint, component: 'vae' } as const;
    graph.output(buildVaeEncoder(ctx, config.vae, image), 'mean');
    graph.output(buildVaeEncoder(ctx, config.vae, image, noise), 'sample');
    const run = await compareOnDevices(graph, {
      image: f32(IMAGE, golden.image),
      noise: f32(LATENT, golden.vae_noise),
    });
    report(
      'SD VAE encoder',
      run.worst.error,
      `worst ${run.worst.name}; first WebGPU run ${run.seconds.webgpuFirst.toFixed(1)} s`,
    );
    // Convolutions, GroupNorm and attention in fp32: summation order only (measured 6.7e-7).
    expect(run.errors.get('mean')!).toBeLessThan(1e-4);
    expect(run.errors.get('sample')!).toBeLessThan(1e-4);
  });

  it.each([1, 2])('CLIP text encoder, clip_skip %i: text states within 1e-4', async (clipSkip) => {
    const graph = new Graph('clip');
    const ids = graph.input('input_ids', 'int64', ['batch', TOKENS]);
    const ctx = { checkpoint: opened.checkpoint, component: 'text_encoder' } as const;
    graph.output(buildClipTextEncoder(ctx, config.textEncoder, ids, { clipSkip }), 'states');
    const run = await compareOnDevices(graph, { input_ids: i64([BATCH, TOKENS], golden.input_ids.flat()) });
    report(
      `SD CLIP text encoder (clip_skip ${clipSkip})`,
      run.worst.error,
      `first WebGPU run ${run.seconds.webgpuFirst.toFixed(1)} s`,
    );
    // Layer norms, causal attention, QuickGELU in fp32: summation order only (measured 4.5e-7).
    expect(run.errors.get('states')!).toBeLessThan(1e-4);
  });
});
