/**
 * The tiny UNet / CLIP / VAE-encoder fixture against the PyTorch reference
 * (tools/golden/sd_reference.py): forward outputs, the ε and v losses for fixed noise and
 * timesteps, and every LoRA gradient, in float32 to a relative error of 1e-4.
 */
import { Graph } from '@lora/engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relativeError } from '../../testing.ts';
import type { MemoryOptions } from '../memory.ts';
import { buildClipTextEncoder } from './clip.ts';
import { BATCH, config, golden, IMAGE, LATENT, TOKENS } from './golden-fixture.ts';
import {
  expectGoldenGradients,
  f32,
  floats,
  GOLDEN_LORA_TARGETS,
  GoldenModel,
  goldenLossFeeds,
  i64,
} from './golden-run.ts';
import { buildSdLoss, scaledLinearAlphasCumprod, TEXT_ENCODER_PARAMETER_GROUP } from './loss.ts';
import { buildUnet } from './unet.ts';
import { buildVaeDecoder, buildVaeEncoder } from './vae.ts';

const TOLERANCE = 1e-4;

let model: GoldenModel;
beforeAll(async () => {
  model = await GoldenModel.open('model.safetensors', config);
});
afterAll(async () => {
  await model?.close();
});

describe('tiny SD models match the PyTorch reference', () => {
  it.each([
    [1, 'text_states'],
    [2, 'text_states_clip_skip_2'],
  ] as const)('CLIP text encoder, clip_skip %i', async (clipSkip, key) => {
    const graph = new Graph('clip');
    const ids = graph.input('input_ids', 'int64', ['batch', TOKENS]);
    const ctx = { checkpoint: model.checkpoint, component: 'text_encoder' } as const;
    graph.output(buildClipTextEncoder(ctx, config.textEncoder, ids, { clipSkip }), 'states');
    const out = await model.run(graph, { input_ids: i64([BATCH, TOKENS], golden.input_ids.flat()) });
    expect(relativeError(floats(out['states']), golden[key])).toBeLessThan(TOLERANCE);
  });

  it('UNet', async () => {
    const graph = new Graph('unet');
    const sample = graph.input('sample', 'float32', LATENT);
    const t = graph.input('timesteps', 'int64', [BATCH]);
    const states = graph.input('states', 'float32', [BATCH, TOKENS, config.unet.crossAttentionDim]);
    const ctx = { checkpoint: model.checkpoint, component: 'unet' } as const;
    graph.output(buildUnet(ctx, config.unet, sample, t, states), 'eps');
    const out = await model.run(graph, {
      sample: f32(LATENT, golden.latents),
      timesteps: i64([BATCH], golden.timesteps),
      states: f32([BATCH, TOKENS, config.unet.crossAttentionDim], golden.text_states),
    });
    expect(relativeError(floats(out['eps']), golden.unet_output)).toBeLessThan(TOLERANCE);
  });

  it('VAE encoder: mean and sampled latents', async () => {
    const graph = new Graph('vae');
    const image = graph.input('image', 'float32', IMAGE);
    const noise = graph.input('noise', 'float32', LATENT);
    const ctx = { checkpoint: model.checkpoint, component: 'vae' } as const;
    graph.output(buildVaeEncoder(ctx, config.vae, image), 'mean');
    graph.output(buildVaeEncoder(ctx, config.vae, image, noise), 'sample');
    const out = await model.run(graph, {
      image: f32(IMAGE, golden.image),
      noise: f32(LATENT, golden.vae_noise),
    });
    expect(relativeError(floats(out['mean']), golden.vae_latents_mean)).toBeLessThan(TOLERANCE);
    expect(relativeError(floats(out['sample']), golden.vae_latents_sample)).toBeLessThan(TOLERANCE);
  });

  it('VAE decoder: the image of the latents', async () => {
    const graph = new Graph('vae_decoder');
    const latents = graph.input('latents', 'float32', LATENT);
    graph.output(
      buildVaeDecoder({ checkpoint: model.checkpoint, component: 'vae' }, config.vae, latents),
      'image',
    );
    const out = await model.run(graph, { latents: f32(LATENT, golden.latents) });
    expect(out['image']!.shape).toEqual(IMAGE);
    expect(relativeError(floats(out['image']), golden.vae_decoded)).toBeLessThan(TOLERANCE);
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
      const built = buildSdLoss(graph, model.checkpoint, {
        memory,
        latentSize: [8, 8],
        text: 'ids',
        tokens: TOKENS,
        prediction,
        lora: { rank: golden.rank, alpha: golden.alpha, ...GOLDEN_LORA_TARGETS },
      });
      expect(graph.checkpoints.length > 0).toBe(memory.checkpointBlocks === true);
      graph.output(built.loss, 'loss');
      graph.output(built.lossSum, 'loss_sum');
      graph.output(built.weight, 'examples');
      const { feeds, factors } = goldenLossFeeds(graph, built, golden, LATENT, check);
      const out = await model.run(graph, feeds);
      const expected = prediction === 'epsilon' ? golden.loss_epsilon : golden.loss_v_prediction;
      expect(Math.abs(floats(out['loss'])[0]! - expected) / expected).toBeLessThan(TOLERANCE);
      expect(floats(out['examples'])[0]).toBe(BATCH);
      expect(floats(out['loss_sum'])[0]).toBeCloseTo(floats(out['loss'])[0]! * BATCH, 5);
      const textEncoderTensors =
        2 * Object.keys(golden.lora).filter((k) => k.startsWith('text_encoder.')).length;
      expect(built.parameters.filter((p) => p.group === TEXT_ENCODER_PARAMETER_GROUP)).toHaveLength(
        textEncoderTensors,
      );
      if (!check) return;
      const worst = expectGoldenGradients(out, factors, TOLERANCE);
      console.log(
        `SD golden: ${factors.length} LoRA gradients, worst relative error ${worst.toExponential(2)}`,
      );
    },
    // Loading the 4k-node backward graph takes onnxruntime a few seconds on a busy 2-core machine.
    60_000,
  );

  it('every UNet, text-encoder and VAE-encoder tensor of the fixture was used; decoder, EMA and buffers were skipped', () => {
    expect(model.checkpoint.unusedKeys(['unet', 'vae'])).toEqual([]);
    // clip_skip 2 and the ids graphs together built every text-encoder layer.
    expect(model.checkpoint.unusedKeys(['text_encoder'])).toEqual([]);
  });
});
