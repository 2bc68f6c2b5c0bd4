/**
 * The tiny SD 2.x fixture against its PyTorch reference (tools/golden/sd2_reference.py, OpenCLIP's
 * own formulation with the fused q/k/v in_proj): the text states (penultimate layer + ln_final, and
 * kohya's clip_skip 2 on top), the UNet with linear projections and 4-channel heads, the ε and v
 * losses and every LoRA gradient, text-encoder q/k/v included, in float32 against float64 values.
 */
import { Graph } from '@lora/engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relativeError } from '../../testing.ts';
import { buildClipTextEncoder } from './clip.ts';
import { type GoldenCore, readGolden } from './golden-fixture.ts';
import {
  expectGoldenGradients,
  f32,
  floats,
  GOLDEN_LORA_TARGETS,
  GoldenModel,
  goldenLossFeeds,
  i64,
} from './golden-run.ts';
import { buildSdLoss } from './loss.ts';
import { buildUnet } from './unet.ts';

/** float32 against the float64 reference (worst seen: 7.4e-6, a LoRA gradient). */
const TOLERANCE = 1e-5;

const { golden, config } = await readGolden<GoldenCore>('sd2-golden.json');
const BATCH = golden.timesteps.length;
const TOKENS = golden.input_ids[0]!.length;
const LATENT = [BATCH, config.unet.inChannels, 8, 8];

let model: GoldenModel;
beforeAll(async () => {
  model = await GoldenModel.open('sd2-model.safetensors', config);
});
afterAll(async () => {
  await model?.close();
});

describe('tiny SD 2.x models match the PyTorch reference', () => {
  it('is read as SD 2.x with the configs of the reference', () => {
    expect(model.checkpoint.family).toBe('sd2');
    expect(config.unet.linearProjection).toBe(true);
    expect(config.unet.attentionHeads).toEqual([2, 4]);
    expect(config.textEncoder.hiddenAct).toBe('gelu');
  });

  it.each([
    [1, 'text_states'],
    [2, 'text_states_clip_skip_2'],
  ] as const)('OpenCLIP text tower, clip_skip %i', async (clipSkip, key) => {
    const graph = new Graph('clip');
    const ids = graph.input('input_ids', 'int64', ['batch', TOKENS]);
    const ctx = { checkpoint: model.checkpoint, component: 'text_encoder' } as const;
    graph.output(buildClipTextEncoder(ctx, config.textEncoder, ids, { clipSkip }), 'states');
    const out = await model.run(graph, { input_ids: i64([BATCH, TOKENS], golden.input_ids.flat()) });
    expect(relativeError(floats(out['states']), golden[key])).toBeLessThan(TOLERANCE);
  });

  it('UNet with linear projections', async () => {
    const graph = new Graph('unet');
    const sample = graph.input('sample', 'float32', LATENT);
    const t = graph.input('timesteps', 'int64', [BATCH]);
    const states = graph.input('states', 'float32', [BATCH, TOKENS, config.unet.crossAttentionDim]);
    const ctx = { checkpoint: model.checkpoint, component: 'unet' } as const;
    graph.output(buildUnet(ctx, config.unet, sample, t, states), 'prediction');
    const out = await model.run(graph, {
      sample: f32(LATENT, golden.latents),
      timesteps: i64([BATCH], golden.timesteps),
      states: f32([BATCH, TOKENS, config.unet.crossAttentionDim], golden.text_states),
    });
    expect(relativeError(floats(out['prediction']), golden.unet_output)).toBeLessThan(TOLERANCE);
  });

  it.each(['epsilon', 'v_prediction'] as const)(
    '%s loss and every LoRA gradient (UNet and text encoder, B ≠ 0)',
    async (prediction) => {
      const graph = new Graph('sd2_loss');
      const built = buildSdLoss(graph, model.checkpoint, {
        latentSize: [8, 8],
        text: 'ids',
        tokens: TOKENS,
        prediction,
        lora: { rank: golden.rank, alpha: golden.alpha, ...GOLDEN_LORA_TARGETS },
      });
      graph.output(built.loss, 'loss');
      // The reference's gradients are of the ε loss.
      const check = prediction === 'epsilon';
      const { feeds, factors } = goldenLossFeeds(graph, built, golden, LATENT, check);
      const out = await model.run(graph, feeds);
      const expected = prediction === 'epsilon' ? golden.loss_epsilon : golden.loss_v_prediction;
      expect(Math.abs(floats(out['loss'])[0]! - expected) / expected).toBeLessThan(TOLERANCE);
      if (!check) return;
      const worst = expectGoldenGradients(out, factors, TOLERANCE);
      console.log(
        `SD 2.x golden: ${factors.length} LoRA gradients, worst relative error ${worst.toExponential(2)}`,
      );
    },
    60_000,
  );

  it('every UNet and text-encoder tensor SD 2.x runs was used', () => {
    expect(model.checkpoint.unusedKeys(['unet', 'text_encoder'])).toEqual([]);
  });
});
