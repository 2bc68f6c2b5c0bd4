/**
 * The SD micro-batch loss as the training loop's `TrainableModel`: `buildSdLoss` declares the
 * graph; `feeds` turns an `SdBatch` into its inputs, with the per-example min-SNR weights of the
 * drawn timesteps. LoRA parameters may start from an earlier adapter (`init_adapter`).
 *
 * The UNet's spatial sizes are static, so the model is multi-shape: each aspect bucket's latent
 * size is a shape key (`<height>x<width>`, e.g. `8x16`), and the loop builds one graph per key.
 */
import type { Graph } from '@lora/engine';
import { type HostTensor, hostTensor } from '@lora/engine';
import type { LoraParameter } from '../../lora.ts';
import type { BuildOptions, MicroBatchLoss, TrainableModel } from '../../train/model.ts';
import { ModelError } from '../model-error.ts';
import type { SdBatch } from './batches.ts';
import type { SdCheckpoint } from './checkpoint.ts';
import type { SdLoraModule } from './layers.ts';
import { buildSdLoss, SD_LOSS_INPUTS, type SdLossOptions, scaledLinearAlphasCumprod } from './loss.ts';
import { minSnrWeights } from './noise.ts';

export interface SdTrainableOptions extends Omit<SdLossOptions, 'batch' | 'text' | 'latentSize'> {
  /** min-SNR-γ loss weighting; unset = every example weighs 1. */
  minSnrGamma?: number;
  /** Starting values of LoRA parameters by name (from `init_adapter`); others start as initialised. */
  initial?: ReadonlyMap<string, Float32Array>;
  /**
   * The text encoders' outputs come with each batch (`SdBatch.text`, from the text-encoder output
   * cache), so the graph takes them instead of running the encoders; only without text-encoder LoRA.
   */
  cachedText?: boolean;
}

const SHAPE_KEY = /^(\d+)x(\d+)$/;

/** The shape key of latents `[channels, height, width]`: `<height>x<width>`. */
export const sdShapeKey = ([, height, width]: readonly [number, number, number]): string =>
  `${height}x${width}`;

export class SdTrainableModel implements TrainableModel<SdBatch> {
  private readonly alphasCumprod: Float32Array;
  private built: readonly SdLoraModule[] = [];

  constructor(
    readonly checkpoint: SdCheckpoint,
    readonly options: SdTrainableOptions,
  ) {
    this.alphasCumprod = options.alphasCumprod ?? scaledLinearAlphasCumprod();
  }

  /** The LoRA modules of the last graph built, text encoder first. */
  get modules(): readonly SdLoraModule[] {
    return this.built;
  }

  /** The latent `<height>x<width>` of the batch's bucket. */
  shapeKey(batch: SdBatch): string {
    return sdShapeKey(batch.latentShape);
  }

  /** Builds the loss for latents of the size `shapeKey` names (`<height>x<width>`). */
  build(graph: Graph, { shapeKey, computeDtype }: BuildOptions): MicroBatchLoss {
    const size = SHAPE_KEY.exec(shapeKey ?? '');
    if (!size) {
      throw new ModelError(
        'E_MODEL_CONFIG',
        `SdTrainableModel.build needs the latent size as shapeKey ('<height>x<width>', e.g. '64x64'), got ${shapeKey ?? 'none'}`,
      );
    }
    // The text encoder and the UNet compute in the loop's type; the noise and the loss in float32 (see loss.ts).
    const { minSnrGamma: _, initial, cachedText, ...lossOptions } = this.options;
    const loss = buildSdLoss(graph, this.checkpoint, {
      ...lossOptions,
      computeDtype,
      latentSize: [Number(size[1]), Number(size[2])],
      alphasCumprod: this.alphasCumprod,
      text: cachedText ? 'states' : 'ids',
    });
    this.built = loss.lora;
    const start = (p: LoraParameter): LoraParameter => {
      const values = initial?.get(p.name);
      return values ? { ...p, initial: values } : p;
    };
    return { lossSum: loss.lossSum, weight: loss.weight, parameters: loss.parameters.map(start) };
  }

  feeds(batch: SdBatch): Record<string, HostTensor> {
    const [c, h, w] = batch.latentShape;
    const { unet, textEncoder } = this.checkpoint.config;
    if (c !== unet.inChannels) {
      throw new ModelError(
        'E_MODEL_BATCH',
        `latents [${batch.latentShape.join(', ')}] have ${c} channels, the UNet takes ${unet.inChannels}; does the VAE belong to this model?`,
      );
    }
    const tokens = this.options.tokens ?? textEncoder.maxPositions;
    for (const id of [...batch.inputIds, ...(batch.inputIds2 ?? [])]) {
      if (id < 0n || id >= BigInt(textEncoder.vocabSize)) {
        throw new ModelError(
          'E_MODEL_BATCH',
          `token id ${id} is outside the text encoder's vocabulary (${textEncoder.vocabSize}); does tokenizer/ belong to this model?`,
        );
      }
    }
    const latent = [batch.size, c, h, w];
    const sdxl = this.checkpoint.family === 'sdxl';
    if (sdxl && (!batch.inputIds2 || !batch.timeIds)) {
      throw new ModelError(
        'E_MODEL_BATCH',
        'an SDXL batch needs the second tokenizer’s ids and the size ids',
      );
    }
    if (this.options.cachedText && !batch.text) {
      throw new ModelError(
        'E_MODEL_BATCH',
        'the model takes cached text-encoder outputs; this batch has none',
      );
    }
    return {
      ...(sdxl ? { [SD_LOSS_INPUTS.timeIds]: hostTensor('int64', [batch.size, 6], batch.timeIds!) } : {}),
      ...this.textFeeds(batch, tokens),
      [SD_LOSS_INPUTS.latents]: hostTensor('float32', latent, batch.latents),
      [SD_LOSS_INPUTS.noise]: hostTensor('float32', latent, batch.noise),
      [SD_LOSS_INPUTS.timesteps]: hostTensor('int64', [batch.size], batch.timesteps),
      [SD_LOSS_INPUTS.lossWeights]: hostTensor(
        'float32',
        [batch.size],
        minSnrWeights(batch.timesteps, this.alphasCumprod, this.options.prediction, this.options.minSnrGamma),
      ),
    };
  }

  /** The text condition: the cached encoder outputs, or the token ids the graph's encoders read. */
  private textFeeds(batch: SdBatch, tokens: number): Record<string, HostTensor> {
    const { unet, textEncoder2 } = this.checkpoint.config;
    if (this.options.cachedText) {
      const { states, textEmbeds } = batch.text!;
      return {
        [SD_LOSS_INPUTS.encoderHiddenStates]: hostTensor(
          'float32',
          [batch.size, tokens, unet.crossAttentionDim],
          states,
        ),
        ...(textEncoder2
          ? {
              [SD_LOSS_INPUTS.textEmbeds]: hostTensor(
                'float32',
                [batch.size, textEncoder2.projectionDim!],
                textEmbeds!,
              ),
            }
          : {}),
      };
    }
    return {
      [SD_LOSS_INPUTS.inputIds]: hostTensor('int64', [batch.size, tokens], batch.inputIds),
      ...(textEncoder2
        ? { [SD_LOSS_INPUTS.inputIds2]: hostTensor('int64', [batch.size, tokens], batch.inputIds2!) }
        : {}),
    };
  }
}
