/**
 * The tiny SD fixture (the golden test's UNet + CLIP text encoder + VAE encoder) on onnxruntime's
 * WebGPU provider against the CPU provider: the training step's gradients graph (UNet and text
 * encoder LoRA), the VAE encoder (latents) and the CLIP text encoder (text states).
 *
 * The gradients graph in fp32 on both, and in fp16 on WebGPU (mixed precision: the text encoder
 * and the UNet in float16, LoRA weights, gradients and the loss in float32) against fp32 on the CPU.
 */
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph, type HostTensor, hostTensor } from '@lora/engine';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type OpenedSdCheckpoint, openSdCheckpoint } from '../models/sd/checkpoint.ts';
import { buildClipTextEncoder } from '../models/sd/clip.ts';
import { BATCH, config, FIXTURES, golden, IMAGE, LATENT, TOKENS } from '../models/sd/golden-fixture.ts';
import { SdTrainableModel } from '../models/sd/trainable.ts';
import { buildVaeEncoder } from '../models/sd/vae.ts';
import { gradName } from '../train/optimizer.ts';
import { buildGradientsGraph, LOSS_SCALE, LOSS_SUM } from '../train/step-graphs.ts';
import { adapter, compareOnDevices, describeOnWebGpu, HOOK_TIMEOUT, report } from './testing.ts';

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

/** q and v only: the backward pass still runs through every layer after the first LoRA
 * (attention, GEGLU, GroupNorm, convs, Resize); all 13 module kinds nearly double the first WebGPU
 * run on a cold Mesa shader cache (26 s vs 15 s on lavapipe) for LoRA matmuls alone. */
const sdModel = () =>
  new SdTrainableModel(opened.checkpoint, {
    tokens: TOKENS,
    prediction: 'epsilon',
    lora: {
      rank: golden.rank,
      alpha: golden.alpha,
      unet: ['to_q', 'to_v'],
      textEncoder: ['q_proj', 'v_proj'],
    },
  });

/** The golden micro-batch and the reference's LoRA values (B ≠ 0, so the A gradients are not zero). */
function gradientFeeds(model: SdTrainableModel, scale: number): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {
    latents: f32(LATENT, golden.latents),
    noise: f32(LATENT, golden.noise),
    timesteps: i64([BATCH], golden.timesteps),
    input_ids: i64([BATCH, TOKENS], golden.input_ids.flat()),
    loss_weights: f32([BATCH], golden.loss_weights),
    [LOSS_SCALE]: f32([], [scale]),
  };
  for (const m of model.modules) {
    const values = golden.lora[`${m.component}.${m.path}`]!;
    const [down, up] = m.layer.parameters;
    feeds[down!.name] = f32(down!.shape, values.A);
    feeds[up!.name] = f32(up!.shape, values.B);
  }
  return feeds;
}

describeOnWebGpu('tiny SD on WebGPU vs the CPU provider', () => {
  it('fp32 gradients graph (UNet + text-encoder LoRA): loss and every LoRA gradient within 1e-4', async () => {
    const model = sdModel();
    const { graph, parameters } = buildGradientsGraph(model, 'fp32', '8x8');
    const feeds = gradientFeeds(model, 1);
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

  it.skipIf(adapter?.fp16 !== true)(
    'fp16 gradients graph on WebGPU vs fp32 on the CPU: float32 gradients, off by half precision only',
    async () => {
      const fp16Model = sdModel();
      const fp16 = buildGradientsGraph(fp16Model, 'fp16', '8x8');
      const fp32 = buildGradientsGraph(sdModel(), 'fp32', '8x8');
      // The loop's loss scale, so that no float16 gradient underflows; both graphs see the same one.
      const scale = 2 ** 8;
      const run = await compareOnDevices(fp16.graph, gradientFeeds(fp16Model, scale), {
        cpuGraph: fp32.graph,
      });
      const gradErrors = fp16.parameters.map((p) => run.errors.get(gradName(p.name))!);
      report(
        'SD gradients fp16 (WebGPU) vs fp32 (CPU)',
        run.worst.error,
        `loss ${run.errors.get(LOSS_SUM)!.toExponential(2)}, gradients ${Math.min(...gradErrors).toExponential(2)}–${Math.max(...gradErrors).toExponential(2)}; first WebGPU run ${run.seconds.webgpuFirst.toFixed(1)} s`,
      );
      const castNodes = fp16.graph.nodes.filter((n) => n.opType === 'Cast').length;
      expect(castNodes).toBeGreaterThan(0);
      for (const p of fp16.parameters) expect(run.webgpu[gradName(p.name)]!.dtype).toBe('float32');
      // Half precision (ε ≈ 1e-3) through the text encoder and the UNet, forward and back, with
      // onnxruntime's WebGPU MatMul accumulating in float16: measured loss 1.6e-4, gradients
      // 3.4e-3–1.6e-1, median ~2e-2 (the worst are attention q gradients, whose values are small
      // next to their largest: softmax derivatives). A float16 loss or a broken kernel (≥ 1, NaN)
      // fails the upper bounds; a graph that ignored the compute type (fp32 noise, 1e-5) the lower one.
      expect(run.errors.get(LOSS_SUM)!).toBeLessThan(1e-3);
      const sorted = [...gradErrors].sort((a, b) => a - b);
      expect(sorted[Math.floor(sorted.length / 2)]!).toBeLessThan(5e-2);
      for (const [i, p] of fp16.parameters.entries()) {
        expect(gradErrors[i]!, p.name).toBeLessThan(0.3);
        expect(gradErrors[i]!, p.name).toBeGreaterThan(1e-4);
      }
    },
  );

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
