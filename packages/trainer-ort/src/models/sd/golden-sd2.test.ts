/**
 * The tiny SD 2.x fixture against its PyTorch reference (tools/golden/sd2_reference.py, OpenCLIP's
 * own formulation with the fused q/k/v in_proj): the text states (penultimate layer + ln_final, and
 * kohya's clip_skip 2 on top), the UNet with linear projections and 4-channel heads, the ε and v
 * losses and every LoRA gradient, text-encoder q/k/v included, in float32 against float64 values.
 */
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph, gradients, type HostTensor, hostTensor, type Tensor, writeModel } from '@lora/engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session } from '../../session.ts';
import { relativeError } from '../../testing.ts';
import { type OpenedSdCheckpoint, openSdCheckpoint } from './checkpoint.ts';
import { buildClipTextEncoder } from './clip.ts';
import { FIXTURES, type GoldenCore, readGolden } from './golden-fixture.ts';
import { buildSdLoss } from './loss.ts';
import { buildUnet } from './unet.ts';

/** float32 against the float64 reference (worst seen: 7.4e-6, a LoRA gradient). */
const TOLERANCE = 1e-5;

const { golden, config } = await readGolden<GoldenCore>('sd2-golden.json');
const BATCH = golden.timesteps.length;
const TOKENS = golden.input_ids[0]!.length;
const LATENT = [BATCH, config.unet.inChannels, 8, 8];

const f32 = (shape: readonly number[], values: readonly number[]) =>
  hostTensor('float32', shape, Float32Array.from(values));
const i64 = (shape: readonly number[], values: readonly number[]) =>
  hostTensor('int64', shape, BigInt64Array.from(values.map(BigInt)));
const values = (t: HostTensor | undefined) => t!.data as Float32Array;

let folder: string;
let opened: OpenedSdCheckpoint;
let runs = 0;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'sd2-golden-'));
  await copyFile(join(FIXTURES, 'sd2-model.safetensors'), join(folder, 'model.safetensors'));
  opened = await openSdCheckpoint(join(folder, 'model.safetensors'), config);
});
afterAll(async () => {
  await opened?.close();
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

describe('tiny SD 2.x models match the PyTorch reference', () => {
  it('is read as SD 2.x with the configs of the reference', () => {
    expect(opened.checkpoint.family).toBe('sd2');
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
    const ctx = { checkpoint: opened.checkpoint, component: 'text_encoder' } as const;
    graph.output(buildClipTextEncoder(ctx, config.textEncoder, ids, { clipSkip }), 'states');
    const out = await run(graph, { input_ids: i64([BATCH, TOKENS], golden.input_ids.flat()) });
    expect(relativeError(values(out['states']), golden[key])).toBeLessThan(TOLERANCE);
  });

  it('UNet with linear projections', async () => {
    const graph = new Graph('unet');
    const sample = graph.input('sample', 'float32', LATENT);
    const t = graph.input('timesteps', 'int64', [BATCH]);
    const states = graph.input('states', 'float32', [BATCH, TOKENS, config.unet.crossAttentionDim]);
    const ctx = { checkpoint: opened.checkpoint, component: 'unet' } as const;
    graph.output(buildUnet(ctx, config.unet, sample, t, states), 'prediction');
    const out = await run(graph, {
      sample: f32(LATENT, golden.latents),
      timesteps: i64([BATCH], golden.timesteps),
      states: f32([BATCH, TOKENS, config.unet.crossAttentionDim], golden.text_states),
    });
    expect(relativeError(values(out['prediction']), golden.unet_output)).toBeLessThan(TOLERANCE);
  });

  it.each(['epsilon', 'v_prediction'] as const)(
    '%s loss and every LoRA gradient (UNet and text encoder, B ≠ 0)',
    async (prediction) => {
      const graph = new Graph('sd2_loss');
      const built = buildSdLoss(graph, opened.checkpoint, {
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
      graph.output(built.loss, 'loss');
      expect(built.lora.map((m) => `${m.component}.${m.path}`).toSorted()).toEqual(
        Object.keys(golden.lora).toSorted(),
      );
      const params: [Tensor, number[], number[]][] = built.lora.flatMap((m) => {
        const g = golden.lora[`${m.component}.${m.path}`]!;
        const [down, up] = m.layer.parameters;
        expect(down!.shape).toEqual(g.A_shape);
        return [
          [down!.tensor, g.A, g.A_grad],
          [up!.tensor, g.B, g.B_grad],
        ];
      });
      // The reference's gradients are of the ε loss.
      const check = prediction === 'epsilon';
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
      if (!check) return;
      let worst = 0;
      for (const [t, , grad] of params) {
        const error = relativeError(values(out[`grad.${t.name}`]), grad);
        worst = Math.max(worst, error);
        expect(error, t.name).toBeLessThan(TOLERANCE);
      }
      console.log(
        `SD 2.x golden: ${params.length} LoRA gradients, worst relative error ${worst.toExponential(2)}`,
      );
    },
    60_000,
  );

  it('every UNet and text-encoder tensor SD 2.x runs was used', () => {
    expect(opened.checkpoint.unusedKeys(['unet', 'text_encoder'])).toEqual([]);
  });
});
