/**
 * Text to latents, the first half of `lora sample`: the CLIP text encoder and the UNet as
 * inference sessions over the checkpoint's weights, the noise prediction with classifier-free
 * guidance (uncond and cond in one UNet batch, then uncond + scale·(cond − uncond), as A1111 and
 * diffusers combine them), and a sampler of `samplers.ts` from given noise.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PredictionType } from '@lora/config';
import { Graph, type HostTensor, writeModel } from '@lora/engine';
import { chooseDevice, type Device } from '../../device.ts';
import { TrainerOrtError } from '../../errors.ts';
import { Session } from '../../session.ts';
import type { SdCheckpoint } from './checkpoint.ts';
import { buildClipTextEncoder } from './clip.ts';
import { scaledLinearAlphasCumprod } from './loss.ts';
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
    const { unet: config, textEncoder } = checkpoint.config;
    const shape = [config.inChannels, latentSize[0], latentSize[1]] as const;
    const folder = await mkdtemp(join(tmpdir(), 'lora-sample-'));
    try {
      const graph = new Graph('unet');
      const sample = graph.input('sample', 'float32', [2, ...shape]);
      const timesteps = graph.input('timesteps', 'float32', [2]);
      const context = graph.input('context', 'float32', [2, 'tokens', textEncoder.hiddenSize]);
      graph.output(
        graph.scope('unet', () =>
          buildUnet({ checkpoint, component: 'unet' }, config, sample, timesteps, context),
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

  /** Text states `[rows, tokens, hidden]` of token id rows of one length (77 for SD 1.x prompts). */
  async textStates(ids: readonly (readonly number[])[]): Promise<Float32Array> {
    const tokens = ids[0]?.length ?? 0;
    if (this.text?.tokens !== tokens) {
      await this.text?.session.dispose();
      const graph = new Graph('text_encoder');
      const input = graph.input('input_ids', 'int64', ['batch', tokens]);
      const { textEncoder } = this.checkpoint.config;
      graph.output(
        graph.scope('text_encoder', () =>
          buildClipTextEncoder(
            { checkpoint: this.checkpoint, component: 'text_encoder' },
            textEncoder,
            input,
            { clipSkip: this.options.clipSkip ?? 1 },
          ),
        ),
        'states',
      );
      this.text = {
        tokens,
        session: await open(graph, this.folder, `text_encoder_${tokens}.onnx`, this.options.device),
      };
    }
    const flat = BigInt64Array.from(ids.flat(), (id) => BigInt(id));
    const out = await this.text.session.run({
      input_ids: { dtype: 'int64', shape: [ids.length, tokens], data: flat },
    });
    return out['states']!.data as Float32Array;
  }

  /** Latents `[channels, height, width]` sampled with guidance from the text states of one prompt and its negative. */
  async latents(cond: Float32Array, uncond: Float32Array, request: LatentRequest): Promise<Float32Array> {
    const { hiddenSize } = this.checkpoint.config.textEncoder;
    const tokens = cond.length / hiddenSize;
    if (uncond.length !== cond.length) {
      throw new TrainerOrtError(
        'E_INVALID_ARGUMENT',
        `the negative prompt's text states hold ${uncond.length} values, the prompt's ${cond.length}; pad both to one number of chunks`,
      );
    }
    const both = new Float32Array(2 * cond.length);
    both.set(uncond, 0);
    both.set(cond, cond.length);
    const context: HostTensor = { dtype: 'float32', shape: [2, tokens, hiddenSize], data: both };
    const size = this.latentShape.reduce((a, b) => a * b, 1);
    const predict = async (input: Float32Array, t: number) => {
      const batch = new Float32Array(2 * size);
      batch.set(input, 0);
      batch.set(input, size);
      const out = await this.unet.run({
        sample: { dtype: 'float32', shape: [2, ...this.latentShape], data: batch },
        timesteps: { dtype: 'float32', shape: [2], data: Float32Array.of(t, t) },
        context,
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
