/**
 * Text to latents, the first half of `lora sample`: the text encoder(s) and the UNet as inference
 * sessions over the checkpoint's weights, the noise prediction with classifier-free guidance
 * (uncond and cond in one UNet batch, then uncond + scale·(cond − uncond), as A1111 and diffusers
 * combine them), and a sampler of `samplers.ts` from given noise. SDXL runs both encoders (the
 * penultimate states of each, raw, and bigG's pooled output, as sgm's conditioner and training
 * take them) and feeds the UNet's `label_emb` the pooled output and the six size ids.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PredictionType } from '@lora/config';
import { Graph, type HostTensor, writeModel } from '@lora/engine';
import { chooseDevice, type Device } from '../../device.ts';
import { TrainerOrtError } from '../../errors.ts';
import { Session } from '../../session.ts';
import { ModelError } from '../model-error.ts';
import type { SdCheckpoint } from './checkpoint.ts';
import { buildTextEncoding, scaledLinearAlphasCumprod } from './loss.ts';
import { DiscreteSchedule, epsilonFromV, type SampleOptions, type SamplerName, sample } from './samplers.ts';
import { buildUnet } from './unet.ts';

export interface TextToLatentOptions {
  /** kohya / A1111 clip_skip; default 1. */
  clipSkip?: number;
  device?: Device;
  /** What the UNet predicts; default epsilon. */
  prediction?: PredictionType;
}

export interface LatentRequest extends SampleOptions {
  sampler: SamplerName;
  /** Classifier-free guidance scale; 1 is the conditional prediction alone. */
  cfgScale: number;
  /** SDXL: original height, width, crop top, left, target height, width (A1111: h, w, 0, 0, h, w). */
  timeIds?: readonly number[];
}

/** The text encoders' outputs for rows of token ids. */
export interface EncodedText {
  /** `[rows, tokens, crossAttentionDim]`: the states the UNet reads (SDXL: both encoders' side by side). */
  states: Float32Array;
  /** How wide each encoder's part of a token's states is (SDXL: CLIP ViT-L's, then bigG's). */
  widths: number[];
  /** SDXL: `[rows, projectionDim]`, the second encoder's pooled, projected output. */
  pooled?: Float32Array;
}

/** What the UNet is conditioned on for one prompt. */
export interface TextCondition {
  /** `[tokens, crossAttentionDim]`: the states the cross-attention reads. */
  states: Float32Array;
  /** SDXL: `[projectionDim]`, the pooled text embedding of `label_emb`. */
  pooled?: Float32Array;
}

/** A checkpoint's text encoder and UNet, ready to turn text states and noise into latents. */
export class SdTextToLatent {
  private text: { tokens: number; session: Session } | undefined;
  private readonly schedule = new DiscreteSchedule(scaledLinearAlphasCumprod());

  private constructor(
    private readonly checkpoint: SdCheckpoint,
    private readonly latentShape: readonly [number, number, number],
    private readonly unet: Session,
    private readonly folder: string,
    private readonly options: TextToLatentOptions,
  ) {}

  /** Sessions for latents `[channels, height, width]` of `latentSize` = [height, width]. */
  static async open(
    checkpoint: SdCheckpoint,
    latentSize: readonly [number, number],
    options: TextToLatentOptions = {},
  ): Promise<SdTextToLatent> {
    const { unet: config, textEncoder2 } = checkpoint.config;
    // SDXL conditions on both encoders' penultimate layers, so clip_skip has no meaning (as in training).
    if (textEncoder2 && (options.clipSkip ?? 1) !== 1) {
      throw new ModelError(
        'E_MODEL_CONFIG',
        `SDXL conditions on the penultimate layer of both text encoders, so clip skip ${options.clipSkip} has no meaning there (A1111 ignores it for SDXL); use clip skip 1`,
      );
    }
    const shape = [config.inChannels, latentSize[0], latentSize[1]] as const;
    const folder = await mkdtemp(join(tmpdir(), 'lora-sample-'));
    try {
      const graph = new Graph('unet');
      const sample = graph.input('sample', 'float32', [2, ...shape]);
      const timesteps = graph.input('timesteps', 'float32', [2]);
      const context = graph.input('context', 'float32', [2, 'tokens', config.crossAttentionDim]);
      const textTime = textEncoder2 && {
        textEmbeds: graph.input('text_embeds', 'float32', [2, textEncoder2.projectionDim!]),
        timeIds: graph.input('time_ids', 'float32', [2, 6]),
      };
      graph.output(
        graph.scope('unet', () =>
          buildUnet({ checkpoint, component: 'unet' }, config, sample, timesteps, context, textTime),
        ),
        'prediction',
      );
      const session = await open(graph, folder, 'unet.onnx', options.device);
      return new SdTextToLatent(checkpoint, shape, session, folder, options);
    } catch (error) {
      await rm(folder, { recursive: true, force: true });
      throw error;
    }
  }

  /**
   * The text encoders' outputs for token id rows of one length (77 for prompt chunks); SDXL's second
   * encoder reads `ids2`, the same rows padded with "!" after the first EOS.
   */
  async textStates(
    ids: readonly (readonly number[])[],
    ids2?: readonly (readonly number[])[],
  ): Promise<EncodedText> {
    const sdxl = this.checkpoint.config.textEncoder2 !== undefined;
    if (sdxl !== (ids2 !== undefined) || (ids2 && ids2.length !== ids.length)) {
      throw new TrainerOrtError(
        'E_INVALID_ARGUMENT',
        sdxl
          ? "SDXL's second text encoder needs its own token id rows, one per row of the first"
          : 'only SDXL has a second text encoder to read token ids',
      );
    }
    const tokens = ids[0]?.length ?? 0;
    if (this.text?.tokens !== tokens) {
      await this.text?.session.dispose();
      this.text = {
        tokens,
        session: await open(this.textGraph(tokens), this.folder, `text_${tokens}.onnx`, this.options.device),
      };
    }
    const int64 = (rows: readonly (readonly number[])[]) => ({
      dtype: 'int64' as const,
      shape: [rows.length, tokens],
      data: BigInt64Array.from(rows.flat(), (id) => BigInt(id)),
    });
    const out = await this.text.session.run({
      input_ids: int64(ids),
      ...(ids2 ? { input_ids_2: int64(ids2) } : {}),
    });
    const { textEncoder, textEncoder2 } = this.checkpoint.config;
    return {
      states: out['states']!.data as Float32Array,
      widths: [textEncoder.hiddenSize, ...(textEncoder2 ? [textEncoder2.hiddenSize] : [])],
      ...(out['pooled'] ? { pooled: out['pooled'].data as Float32Array } : {}),
    };
  }

  /** The encoder(s) as training runs them (`buildTextEncoding`), without LoRA: SDXL's both, side by side. */
  private textGraph(tokens: number): Graph {
    const graph = new Graph('text_encoders');
    const input = graph.input('input_ids', 'int64', ['batch', tokens]);
    const input2 =
      this.checkpoint.config.textEncoder2 && graph.input('input_ids_2', 'int64', ['batch', tokens]);
    const { states, pooled } = buildTextEncoding(this.checkpoint, input, input2, {
      clipSkip: this.options.clipSkip ?? 1,
      dtype: 'float32',
    });
    graph.output(states, 'states');
    if (pooled) graph.output(pooled, 'pooled');
    return graph;
  }

  /** Latents `[channels, height, width]` sampled with guidance from the conditions of one prompt and its negative. */
  async latents(cond: TextCondition, uncond: TextCondition, request: LatentRequest): Promise<Float32Array> {
    const { unet, textEncoder2 } = this.checkpoint.config;
    const tokens = cond.states.length / unet.crossAttentionDim;
    if (uncond.states.length !== cond.states.length) {
      throw new TrainerOrtError(
        'E_INVALID_ARGUMENT',
        `the negative prompt's text states hold ${uncond.states.length} values, the prompt's ${cond.states.length}; pad both to one number of chunks`,
      );
    }
    const pair = (a: Float32Array, b: Float32Array, shape: number[]): HostTensor => {
      const data = new Float32Array(a.length + b.length);
      data.set(a, 0);
      data.set(b, a.length);
      return { dtype: 'float32', shape, data };
    };
    const feeds: Record<string, HostTensor> = {
      context: pair(uncond.states, cond.states, [2, tokens, unet.crossAttentionDim]),
    };
    if (textEncoder2) {
      const width = textEncoder2.projectionDim!;
      if (cond.pooled?.length !== width || uncond.pooled?.length !== width || request.timeIds?.length !== 6) {
        throw new TrainerOrtError(
          'E_INVALID_ARGUMENT',
          `an SDXL UNet needs each prompt's pooled text embedding (${width} values) and 6 size ids`,
        );
      }
      feeds['text_embeds'] = pair(uncond.pooled, cond.pooled, [2, width]);
      const ids = Float32Array.from(request.timeIds);
      feeds['time_ids'] = pair(ids, ids, [2, 6]);
    }
    const size = this.latentShape.reduce((a, b) => a * b, 1);
    const predict = async (input: Float32Array, t: number) => {
      const out = await this.unet.run({
        ...feeds,
        sample: pair(input, input, [2, ...this.latentShape]),
        timesteps: { dtype: 'float32', shape: [2], data: Float32Array.of(t, t) },
      });
      const prediction = out['prediction']!.data as Float32Array;
      const guided = prediction
        .subarray(0, size)
        .map((u, i) => u + request.cfgScale * (prediction[size + i]! - u));
      // Guidance is linear, so a v model's guided v converts to ε like a single prediction.
      return this.options.prediction === 'v_prediction'
        ? epsilonFromV(guided, input, this.schedule.tToSigma(t))
        : guided;
    };
    return sample(request.sampler, this.schedule, predict, request);
  }

  async dispose(): Promise<void> {
    try {
      await Promise.all([this.unet.dispose(), this.text?.session.dispose()]);
    } finally {
      await rm(this.folder, { recursive: true, force: true });
    }
  }
}

async function open(
  graph: Graph,
  folder: string,
  fileName: string,
  device: Device = 'cpu',
): Promise<Session> {
  const path = await writeModel(graph, folder, { fileName });
  return Session.create(path, { device: (await chooseDevice(device)).device });
}
