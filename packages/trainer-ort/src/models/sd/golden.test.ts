/**
 * The tiny UNet / CLIP / VAE-encoder fixture against the PyTorch reference
 * (tools/golden/sd_reference.py): forward outputs, the ε and v losses for fixed noise and
 * timesteps, and every LoRA gradient, in float32 to a relative error of 1e-4.
 */
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph, gradients, type HostTensor, hostTensor, type Tensor, writeModel } from '@lora/engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session } from '../../session.ts';
import { relativeError } from '../../testing.ts';
import type { MemoryOptions } from '../memory.ts';
import { type OpenedSdCheckpoint, openSdCheckpoint } from './checkpoint.ts';
import { buildClipTextEncoder } from './clip.ts';
import { BATCH, config, FIXTURES, golden, IMAGE, LATENT, TOKENS } from './golden-fixture.ts';
import { buildSdLoss, scaledLinearAlphasCumprod, TEXT_ENCODER_PARAMETER_GROUP } from './loss.ts';
import { buildUnet } from './unet.ts';
import { buildVaeDecoder, buildVaeEncoder } from './vae.ts';

const TOLERANCE = 1e-4;

const f32 = (shape: readonly number[], values: readonly number[]) =>
  hostTensor('float32', shape, Float32Array.from(values));
const i64 = (shape: readonly number[], values: readonly number[]) =>
  hostTensor('int64', shape, BigInt64Array.from(values.map(BigInt)));

let folder: string;
let opened: OpenedSdCheckpoint;
let runs = 0;

beforeAll(async () => {
  // The weights sit in the model's folder, as onnxruntime wants external data.
  folder = await mkdtemp(join(tmpdir(), 'sd-golden-'));
  await copyFile(join(FIXTURES, 'model.safetensors'), join(folder, 'model.safetensors'));
  opened = await openSdCheckpoint(join(folder, 'model.safetensors'), config);
});
afterAll(async () => {
  await opened.close();
  await rm(folder, { recursive: true, force: true });
});

async function run(graph: Graph, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const session = await Session.create(await writeModel(graph, folder, { fileName: `m${runs++}.onnx` }), {
    device: 'cpu',
    threads: 1,
    optimization: 'basic',
  });
  try {
    return await session.run(feeds);
  } finally {
    await session.dispose();
  }
}

const values = (t: HostTensor | undefined) => t!.data as Float32Array;

describe('tiny SD models match the PyTorch reference', () => {
  it.each([
    [1, 'text_states'],
    [2, 'text_states_clip_skip_2'],
  ] as const)('CLIP text encoder, clip_skip %i', async (clipSkip, key) => {
    const graph = new Graph('clip');
    const ids = graph.input('input_ids', 'int64', ['batch', TOKENS]);
    const ctx = { checkpoint: opened.checkpoint, component: 'text_encoder' } as const;
    graph.output(buildClipTextEncoder(ctx, config.textEncoder, ids, { clipSkip }), 'states');
    const out = await run(graph, { input_ids: i64([BATCH, TOKENS], golden.input_ids.flat()) });
    expect(relativeError(values(out['states']), golden[key])).toBeLessThan(TOLERANCE);
  });

  it('UNet', async () => {
    const graph = new Graph('unet');
    const sample = graph.input('sample', 'float32', LATENT);
    const t = graph.input('timesteps', 'int64', [BATCH]);
    const states = graph.input('states', 'float32', [BATCH, TOKENS, config.unet.crossAttentionDim]);
    const ctx = { checkpoint: opened.checkpoint, component: 'unet' } as const;
    graph.output(buildUnet(ctx, config.unet, sample, t, states), 'eps');
    const out = await run(graph, {
      sample: f32(LATENT, golden.latents),
      timesteps: i64([BATCH], golden.timesteps),
      states: f32([BATCH, TOKENS, config.unet.crossAttentionDim], golden.text_states),
    });
    expect(relativeError(values(out['eps']), golden.unet_output)).toBeLessThan(TOLERANCE);
  });

  it('VAE encoder: mean and sampled latents', async () => {
    const graph = new Graph('vae');
    const image = graph.input('image', 'float32', IMAGE);
    const noise = graph.input('noise', 'float32', LATENT);
    const ctx = { checkpoint: opened.checkpoint, component: 'vae' } as const;
    graph.output(buildVaeEncoder(ctx, config.vae, image), 'mean');
    graph.output(buildVaeEncoder(ctx, config.vae, image, noise), 'sample');
    const out = await run(graph, { image: f32(IMAGE, golden.image), noise: f32(LATENT, golden.vae_noise) });
    expect(relativeError(values(out['mean']), golden.vae_latents_mean)).toBeLessThan(TOLERANCE);
    expect(relativeError(values(out['sample']), golden.vae_latents_sample)).toBeLessThan(TOLERANCE);
  });

  it('VAE decoder: the image of the latents', async () => {
    const graph = new Graph('vae_decoder');
    const latents = graph.input('latents', 'float32', LATENT);
    graph.output(
      buildVaeDecoder({ checkpoint: opened.checkpoint, component: 'vae' }, config.vae, latents),
      'image',
    );
    const out = await run(graph, { latents: f32(LATENT, golden.latents) });
    expect(out['image']!.shape).toEqual(IMAGE);
    expect(relativeError(values(out['image']), golden.vae_decoded)).toBeLessThan(TOLERANCE);
  });

  it('the scaled-linear schedule matches diffusers', () => {
    expect(relativeError(scaledLinearAlphasCumprod(), golden.alphas_cumprod)).toBeLessThan(1e-6);
  });

  // The third case recomputes every block and attends in blocks of 16 queries (4 at the 8×8 level):
  // the same values as the reference, through the recomputed backward pass.
  it.each([
    ['epsilon', true, {}],
    ['v_prediction', false, {}],
    ['epsilon', true, { checkpointBlocks: true, attentionQueryChunk: 16 }],
  ] as const)(
    '%s loss with LoRA on the UNet and text encoder (B ≠ 0); every LoRA gradient: %s; memory options %o',
    async (prediction, check, memory: MemoryOptions) => {
      const graph = new Graph('sd_loss');
      const built = buildSdLoss(graph, opened.checkpoint, {
        memory,
        latentSize: [8, 8],
        text: 'ids',
        tokens: TOKENS,
        prediction,
        lora: {
          rank: golden.rank,
          alpha: golden.alpha,
          unet: ['to_q', 'to_k', 'to_v', 'to_out', 'proj_in', 'proj_out', 'ff'],
          textEncoder: ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'],
        },
      });
      expect(graph.checkpoints.length > 0).toBe(memory.checkpointBlocks === true);
      graph.output(built.loss, 'loss');
      graph.output(built.lossSum, 'loss_sum');
      graph.output(built.weight, 'examples');
      const modules = built.lora.map((m) => `${m.component}.${m.path}`);
      expect(modules.toSorted()).toEqual(Object.keys(golden.lora).toSorted());
      const params: [Tensor, number[], number[]][] = built.lora.flatMap((m) => {
        const g = golden.lora[`${m.component}.${m.path}`]!;
        const [down, up] = m.layer.parameters;
        return [
          [down!.tensor, g.A, g.A_grad],
          [up!.tensor, g.B, g.B_grad],
        ];
      });
      if (check) {
        gradients(
          built.loss,
          params.map(([t]) => t),
        ).forEach((g, i) => {
          graph.output(g, `grad.${params[i]![0].name}`);
        });
      }
      const feeds: Record<string, HostTensor> = {
        latents: f32(LATENT, golden.latents),
        noise: f32(LATENT, golden.noise),
        timesteps: i64([BATCH], golden.timesteps),
        input_ids: i64([BATCH, TOKENS], golden.input_ids.flat()),
        loss_weights: f32([BATCH], golden.loss_weights),
      };
      for (const [t, value] of params) feeds[t.name] = f32(t.shape as number[], value);
      const out = await run(graph, feeds);
      const expected = prediction === 'epsilon' ? golden.loss_epsilon : golden.loss_v_prediction;
      expect(Math.abs(values(out['loss'])[0]! - expected) / expected).toBeLessThan(TOLERANCE);
      expect(values(out['examples'])[0]).toBe(BATCH);
      expect(values(out['loss_sum'])[0]).toBeCloseTo(values(out['loss'])[0]! * BATCH, 5);
      const textEncoderTensors =
        2 * Object.keys(golden.lora).filter((k) => k.startsWith('text_encoder.')).length;
      expect(built.parameters.filter((p) => p.group === TEXT_ENCODER_PARAMETER_GROUP)).toHaveLength(
        textEncoderTensors,
      );
      if (!check) return;
      let worst = 0;
      for (const [t, , grad] of params) {
        const error = relativeError(values(out[`grad.${t.name}`]), grad);
        worst = Math.max(worst, error);
        expect(error, t.name).toBeLessThan(TOLERANCE);
      }
      console.log(
        `SD golden: ${params.length} LoRA gradients, worst relative error ${worst.toExponential(2)}`,
      );
    },
    // Loading the 4k-node backward graph takes onnxruntime a few seconds on a busy 2-core machine.
    60_000,
  );

  it('every UNet, text-encoder and VAE-encoder tensor of the fixture was used; decoder, EMA and buffers were skipped', () => {
    expect(opened.checkpoint.unusedKeys(['unet', 'vae'])).toEqual([]);
    // clip_skip 2 and the ids graphs together built every text-encoder layer.
    expect(opened.checkpoint.unusedKeys(['text_encoder'])).toEqual([]);
  });
});
