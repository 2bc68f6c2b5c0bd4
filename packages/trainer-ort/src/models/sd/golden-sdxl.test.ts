/**
 * The tiny SDXL fixture against its PyTorch reference (tools/golden/sdxl_reference.py, sgm's
 * conditioner and UNet): the cross-attention states (CLIP ViT-L's and OpenCLIP's penultimate layers,
 * raw, side by side), the pooled output (OpenCLIP's ln_final at the EOS through text_projection),
 * the UNet with its `label_emb` size conditioning and several transformer blocks per level, the ε
 * and v losses and every LoRA gradient of the UNet and both text encoders, in float32 against
 * float64 values; then the same weights as a diffusers folder.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openClipKeyToClip, SDXL_OPENCLIP_PREFIX, unetKeyToDiffusers } from '@lora/adapters';
import { concat, Graph, type HostTensor } from '@lora/engine';
import { readSafetensors, type TensorData, writeSafetensors } from '@lora/safetensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relativeError } from '../../testing.ts';
import { type OpenedSdCheckpoint, openSdCheckpoint } from './checkpoint.ts';
import { buildClipTextEncoder, buildPooledClipTextEncoder } from './clip.ts';
import { FIXTURES, type GoldenCore, readGolden } from './golden-fixture.ts';
import {
  expectGoldenGradients,
  f32,
  floats,
  GOLDEN_LORA_TARGETS,
  GoldenModel,
  goldenLossFeeds,
  i64,
} from './golden-run.ts';
import { vaeKeyToDiffusers } from './keys.ts';
import { buildSdLoss, SD_LOSS_INPUTS } from './loss.ts';
import { buildUnet } from './unet.ts';
import { buildVaeEncoder } from './vae.ts';

/** float32 against the float64 reference. */
const TOLERANCE = 1e-5;

interface SdxlGolden extends Omit<GoldenCore, 'text_states_clip_skip_2'> {
  text_encoder_2_config: unknown;
  input_ids_2: number[][];
  time_ids: number[][];
  pooled: number[];
  vector: number[];
  image: number[];
  vae_latents_mean: number[];
}

const { golden, config } = await readGolden<SdxlGolden & GoldenCore>('sdxl-golden.json');
const BATCH = golden.timesteps.length;
const TOKENS = golden.input_ids[0]!.length;
const LATENT = [BATCH, config.unet.inChannels, 8, 8];

let model: GoldenModel;
beforeAll(async () => {
  // Heads of 4 channels (SDXL: 64) cannot be read off shapes: the sizes come from the reference.
  model = await GoldenModel.open('sdxl-model.safetensors', config);
});
afterAll(async () => {
  await model?.close();
});

const textFeeds = (): Record<string, HostTensor> => ({
  [SD_LOSS_INPUTS.inputIds]: i64([BATCH, TOKENS], golden.input_ids.flat()),
  [SD_LOSS_INPUTS.inputIds2]: i64([BATCH, TOKENS], golden.input_ids_2.flat()),
  [SD_LOSS_INPUTS.timeIds]: i64([BATCH, 6], golden.time_ids.flat()),
});

/**
 * The loss graph with LoRA on every UNet and text-encoder target, and its feeds at the golden
 * start values; with `withGradients`, an output per LoRA factor.
 */
function lossGraph(
  checkpoint: OpenedSdCheckpoint['checkpoint'],
  prediction: 'epsilon' | 'v_prediction',
  withGradients: boolean,
) {
  const graph = new Graph('sdxl_loss');
  const built = buildSdLoss(graph, checkpoint, {
    latentSize: [8, 8],
    text: 'ids',
    tokens: TOKENS,
    prediction,
    lora: {
      rank: golden.rank,
      alpha: golden.alpha,
      ...GOLDEN_LORA_TARGETS,
      textEncoder2: GOLDEN_LORA_TARGETS.textEncoder,
    },
  });
  graph.output(built.loss, 'loss');
  const { feeds, factors } = goldenLossFeeds(graph, built, golden, LATENT, withGradients);
  return { graph, factors, feeds: { ...feeds, ...textFeeds() } };
}

describe('tiny SDXL models match the PyTorch reference', () => {
  it('is read as SDXL with the configs of the reference', () => {
    const { checkpoint } = model;
    expect(checkpoint.family).toBe('sdxl');
    expect(config.unet.transformerDepth).toEqual([1, 1, 2]);
    expect(config.unet.textTime).toEqual({ timeEmbedDim: 8, inputDim: 20 + 6 * 8 });
    expect(config.textEncoder2?.projectionDim).toBe(20);
    expect(config.vae.scalingFactor).toBe(0.13025);
  });

  it('conditioning: both penultimate states, raw and side by side, and the pooled output', async () => {
    const graph = new Graph('conditioning');
    const ids = graph.input('input_ids', 'int64', [BATCH, TOKENS]);
    const ids2 = graph.input('input_ids_2', 'int64', [BATCH, TOKENS]);
    const ctx = (component: 'text_encoder' | 'text_encoder_2') =>
      ({ checkpoint: model.checkpoint, component }) as const;
    const first = buildClipTextEncoder(ctx('text_encoder'), config.textEncoder, ids, {
      clipSkip: 2,
      finalNorm: false,
    });
    const { states, pooled } = buildPooledClipTextEncoder(ctx('text_encoder_2'), config.textEncoder2!, ids2);
    graph.output(concat([first, states], -1), 'states');
    graph.output(pooled, 'pooled');
    const out = await model.run(graph, {
      input_ids: i64([BATCH, TOKENS], golden.input_ids.flat()),
      input_ids_2: i64([BATCH, TOKENS], golden.input_ids_2.flat()),
    });
    expect(relativeError(floats(out['states']), golden.text_states)).toBeLessThan(TOLERANCE);
    expect(relativeError(floats(out['pooled']), golden.pooled)).toBeLessThan(TOLERANCE);
  });

  it('UNet with size conditioning, from the reference states and pooled output', async () => {
    const graph = new Graph('unet');
    const sample = graph.input('sample', 'float32', LATENT);
    const t = graph.input('timesteps', 'int64', [BATCH]);
    const states = graph.input('states', 'float32', [BATCH, TOKENS, config.unet.crossAttentionDim]);
    const pooled = graph.input('pooled', 'float32', [BATCH, config.textEncoder2!.projectionDim!]);
    const timeIds = graph.input('time_ids', 'int64', [BATCH, 6]);
    const ctx = { checkpoint: model.checkpoint, component: 'unet' } as const;
    graph.output(
      buildUnet(ctx, config.unet, sample, t, states, { textEmbeds: pooled, timeIds }),
      'prediction',
    );
    const out = await model.run(graph, {
      sample: f32(LATENT, golden.latents),
      timesteps: i64([BATCH], golden.timesteps),
      states: f32([BATCH, TOKENS, config.unet.crossAttentionDim], golden.text_states),
      pooled: f32([BATCH, config.textEncoder2!.projectionDim!], golden.pooled),
      time_ids: i64([BATCH, 6], golden.time_ids.flat()),
    });
    expect(relativeError(floats(out['prediction']), golden.unet_output)).toBeLessThan(TOLERANCE);
  });

  it('VAE encoder mean × 0.13025', async () => {
    const graph = new Graph('vae');
    const size = Math.sqrt(golden.image.length / BATCH / 3);
    const image = graph.input('image', 'float32', [BATCH, 3, size, size]);
    graph.output(
      buildVaeEncoder({ checkpoint: model.checkpoint, component: 'vae' }, config.vae, image),
      'latents',
    );
    const out = await model.run(graph, { image: f32([BATCH, 3, size, size], golden.image) });
    expect(relativeError(floats(out['latents']), golden.vae_latents_mean)).toBeLessThan(TOLERANCE);
  });

  it.each(['epsilon', 'v_prediction'] as const)(
    '%s loss and every LoRA gradient (UNet and both text encoders, B ≠ 0)',
    async (prediction) => {
      // The reference's gradients are of the ε loss.
      const check = prediction === 'epsilon';
      const { graph, factors, feeds } = lossGraph(model.checkpoint, prediction, check);
      const out = await model.run(graph, feeds);
      const expected = prediction === 'epsilon' ? golden.loss_epsilon : golden.loss_v_prediction;
      expect(Math.abs(floats(out['loss'])[0]! - expected) / expected).toBeLessThan(TOLERANCE);
      if (!check) return;
      const worst = expectGoldenGradients(out, factors, TOLERANCE);
      console.log(
        `SDXL golden: ${factors.length} LoRA gradients, worst relative error ${worst.toExponential(2)}`,
      );
    },
    60_000,
  );

  it('uses every tensor SDXL runs: all but CLIP ViT-L’s last layer and final norm, and logit_scale', () => {
    const unused = model.checkpoint.unusedKeys(['unet', 'text_encoder', 'text_encoder_2']);
    const last = config.textEncoder.numLayers - 1;
    expect(unused.every((k) => k.includes(`encoder.layers.${last}.`) || k.includes('final_layer_norm'))).toBe(
      true,
    );
    expect(unused).toHaveLength(16 + 2);
  });

  it('reads the same weights from a diffusers folder (text_projection transposed) to the same loss', async () => {
    const diffusers = join(model.folder, 'diffusers');
    await mkdir(diffusers);
    await diffusersFolder(diffusers);
    const fromFolder = await openSdCheckpoint(diffusers);
    try {
      expect(fromFolder.checkpoint.family).toBe('sdxl');
      expect(fromFolder.checkpoint.config).toEqual(config);
      const { graph, feeds } = lossGraph(fromFolder.checkpoint, 'epsilon', false);
      const out = await model.run(graph, feeds);
      expect(Math.abs(floats(out['loss'])[0]! - golden.loss_epsilon) / golden.loss_epsilon).toBeLessThan(
        TOLERANCE,
      );
    } finally {
      await fromFolder.close();
    }
  }, 60_000);
});

/**
 * The fixture as a diffusers SDXL folder (what diffusers' single-file conversion writes): LDM UNet
 * and VAE keys in diffusers names, CLIP ViT-L as is, OpenCLIP in transformers' names with the
 * fused in_proj split into q, k, v and text_projection transposed into a Linear weight.
 */
async function diffusersFolder(root: string): Promise<void> {
  const { tensors } = await readSafetensors(join(FIXTURES, 'sdxl-model.safetensors'));
  const parts = {
    unet: new Map<string, TensorData>(),
    text_encoder: new Map<string, TensorData>(),
    text_encoder_2: new Map<string, TensorData>(),
    vae: new Map<string, TensorData>(),
  };
  const rows = (t: TensorData, part: number, of: number): TensorData => {
    const [n, ...rest] = t.shape;
    const size = rest.reduce((a, b) => a * b, 1) * (n! / of);
    const data = (t.data as Float32Array).slice(part * size, (part + 1) * size);
    return { dtype: 'F32', shape: [n! / of, ...rest], data };
  };
  const f32 = (t: TensorData) => new Float32Array((t.data as Uint8Array).slice().buffer);
  for (const [key, tensor] of tensors) {
    const t = { ...tensor, data: f32(tensor) };
    const rest = key;
    if (rest.startsWith('model.diffusion_model.')) {
      parts.unet.set(unetKeyToDiffusers(rest.slice('model.diffusion_model.'.length), 2)!, t);
    } else if (rest.startsWith('conditioner.embedders.0.transformer.')) {
      parts.text_encoder.set(rest.slice('conditioner.embedders.0.transformer.'.length), t);
    } else if (rest.startsWith(SDXL_OPENCLIP_PREFIX)) {
      const name = rest.slice(SDXL_OPENCLIP_PREFIX.length);
      if (name === 'text_projection') {
        const [d, e] = t.shape as [number, number];
        const data = new Float32Array(d * e);
        for (let i = 0; i < d; i++) for (let j = 0; j < e; j++) data[j * d + i] = t.data[i * e + j]!;
        parts.text_encoder_2.set('text_projection.weight', { dtype: 'F32', shape: [e, d], data });
        continue;
      }
      for (const target of openClipKeyToClip(name, config.textEncoder2!.numLayers) ?? []) {
        parts.text_encoder_2.set(target.key, target.part === undefined ? t : rows(t, target.part, 3));
      }
    } else if (rest.startsWith('first_stage_model.')) {
      const name = vaeKeyToDiffusers(
        rest.slice('first_stage_model.'.length),
        config.vae.blockOutChannels.length,
      );
      if (name) parts.vae.set(name, t);
    }
  }
  const configs = {
    unet: golden.unet_config,
    text_encoder: golden.text_encoder_config,
    text_encoder_2: golden.text_encoder_2_config,
    vae: golden.vae_config,
  };
  for (const part of ['unet', 'text_encoder', 'text_encoder_2', 'vae'] as const) {
    await mkdir(join(root, part), { recursive: true });
    const file = part.startsWith('text') ? 'model.safetensors' : 'diffusion_pytorch_model.safetensors';
    await writeSafetensors(join(root, part, file), parts[part]);
    await writeFile(join(root, part, 'config.json'), JSON.stringify(configs[part]));
  }
}
