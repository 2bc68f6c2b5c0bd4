/**
 * The SD micro-batch loss as the training loop's `TrainableModel`: `buildSdLoss` declares the
 * graph; `feeds` turns an `SdBatch` into its inputs, with the per-example min-SNR weights of the
 * drawn timesteps. LoRA parameters may start from an earlier adapter (`init_adapter`).
 */
import type { Graph } from '../../graph/graph.ts';
import type { LoraParameter } from '../../lora.ts';
import { type HostTensor, hostTensor } from '../../session.ts';
import type { BuildOptions, MicroBatchLoss, TrainableModel } from '../../train/model.ts';
import { ModelError } from '../model-error.ts';
import type { SdBatch } from './batches.ts';
import type { SdCheckpoint } from './checkpoint.ts';
import type { SdLoraModule } from './layers.ts';
import { buildSdLoss, SD_LOSS_INPUTS, type SdLossOptions, scaledLinearAlphasCumprod } from './loss.ts';
import { minSnrWeights } from './noise.ts';

export interface SdTrainableOptions extends Omit<SdLossOptions, 'batch' | 'text'> {
  /** min-SNR-γ loss weighting; unset = every example weighs 1. */
  minSnrGamma?: number;
  /** Starting values of LoRA parameters by name (from `init_adapter`); others start as initialised. */
  initial?: ReadonlyMap<string, Float32Array>;
}

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

  build(graph: Graph, _options: BuildOptions): MicroBatchLoss {
    // The loss computes in float32 whatever the loop's compute type (see loss.ts).
    const { minSnrGamma: _, initial, ...lossOptions } = this.options;
    const loss = buildSdLoss(graph, this.checkpoint, {
      ...lossOptions,
      alphasCumprod: this.alphasCumprod,
      text: 'ids',
    });
    this.built = loss.lora;
    const start = (p: LoraParameter): LoraParameter => {
      const values = initial?.get(p.name);
      return values ? { ...p, initial: values } : p;
    };
    return { lossSum: loss.lossSum, weight: loss.weight, parameters: loss.parameters.map(start) };
  }

  feeds(batch: SdBatch): Record<string, HostTensor> {
    const [height, width] = this.options.latentSize;
    const [c, h, w] = batch.latentShape;
    const { unet, textEncoder } = this.checkpoint.config;
    if (c !== unet.inChannels || h !== height || w !== width) {
      throw new ModelError(
        'E_MODEL_BATCH',
        `latents [${batch.latentShape.join(', ')}] do not fit the training graph, built for [${unet.inChannels}, ${height}, ${width}]`,
      );
    }
    const tokens = this.options.tokens ?? textEncoder.maxPositions;
    for (const id of batch.inputIds) {
      if (id < 0n || id >= BigInt(textEncoder.vocabSize)) {
        throw new ModelError(
          'E_MODEL_BATCH',
          `token id ${id} is outside the text encoder's vocabulary (${textEncoder.vocabSize}); does tokenizer/ belong to this model?`,
        );
      }
    }
    const latent = [batch.size, c, h, w];
    return {
      [SD_LOSS_INPUTS.latents]: hostTensor('float32', latent, batch.latents),
      [SD_LOSS_INPUTS.noise]: hostTensor('float32', latent, batch.noise),
      [SD_LOSS_INPUTS.timesteps]: hostTensor('int64', [batch.size], batch.timesteps),
      [SD_LOSS_INPUTS.inputIds]: hostTensor('int64', [batch.size, tokens], batch.inputIds),
      [SD_LOSS_INPUTS.lossWeights]: hostTensor(
        'float32',
        [batch.size],
        minSnrWeights(batch.timesteps, this.alphasCumprod, this.options.prediction, this.options.minSnrGamma),
      ),
    };
  }
}
