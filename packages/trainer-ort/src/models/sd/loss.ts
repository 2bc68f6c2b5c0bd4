/**
 * The training loss of one micro-batch: noise the latents at the given timesteps
 * (DDPM `add_noise`), encode the text (or take cached text states), predict with the UNet, and
 * take the per-example MSE against ε or v, weighted per example (min-SNR weights come from the
 * caller) and summed over the batch for the loop to average. Sampling timesteps and noise, caching latents and the
 * optimizer step are the training loop's job.
 */

import { diffusersUnetToLdm } from '@lora/adapters';
import type { PredictionType } from '@lora/config';
import type { Dim, DType, Graph, Tensor } from '@lora/engine';
import {
  add,
  cast,
  concat,
  div,
  gather,
  mul,
  reduceMean,
  reduceSum,
  reshape,
  shapeOf,
  sqrt,
  sub,
} from '@lora/engine';
import type { LoraOptions } from '../../lora.ts';
import type { MicroBatchLoss } from '../../train/model.ts';
import type { MemoryOptions } from '../memory.ts';
import { ModelError } from '../model-error.ts';
import type { SdCheckpoint } from './checkpoint.ts';
import { buildClipTextEncoder, buildPooledClipTextEncoder } from './clip.ts';
import { type ConvNetwork, LoraPlan, type SdLoraModule } from './layers.ts';
import { buildUnet, type UnetTextTime } from './unet.ts';

/** ᾱ_t of the DDPM "scaled_linear" schedule: β = linspace(√β₀, √β₁, T)², ᾱ = cumprod(1 − β). */
export function scaledLinearAlphasCumprod(steps = 1000, betaStart = 0.00085, betaEnd = 0.012): Float32Array {
  const [from, to] = [Math.sqrt(betaStart), Math.sqrt(betaEnd)];
  const out = new Float32Array(steps);
  let product = 1;
  for (let t = 0; t < steps; t++) {
    const root = steps === 1 ? from : from + ((to - from) * t) / (steps - 1);
    product *= 1 - root * root;
    out[t] = product;
  }
  return out;
}

/** The parameter group of text-encoder LoRA tensors, so the loop can give them their own learning rate. */
export const TEXT_ENCODER_PARAMETER_GROUP = 'text_encoder';
/** SDXL's second text encoder (OpenCLIP ViT-bigG) has its own group, and so its own rate. */
export const TEXT_ENCODER_2_PARAMETER_GROUP = 'text_encoder_2';

export interface SdLoraTargets extends Omit<LoraOptions, 'group'> {
  /** UNet Transformer2D modules: `to_q`, `to_k`, `to_v`, `to_out`, `proj_in`, `proj_out`, `ff` (or any path segment). */
  unet: readonly string[];
  /** Text-encoder modules: `q_proj`, `k_proj`, `v_proj`, `out_proj`, `fc1`, `fc2`; default none. */
  textEncoder?: readonly string[];
  /** SDXL's second text encoder's modules (same names); default none. */
  textEncoder2?: readonly string[];
  /** Also the UNet's ResNet blocks, their 3×3 convolutions at this rank and alpha (LoCon). */
  conv?: ConvNetwork;
}

export interface SdLossOptions {
  /** Latent height and width (image size / 8 for SD). */
  latentSize: readonly [height: number, width: number];
  /** The batch dim; default the named dim `batch`. */
  batch?: Dim;
  /**
   * `ids` feeds `input_ids [b, tokens]` through the text encoder (SDXL: and `input_ids_2` through
   * the second); `states` takes cached `encoder_hidden_states [b, tokens, hidden]` (SDXL: and
   * `text_embeds [b, pooled]`), only when no text encoder is trained.
   */
  text: 'ids' | 'states';
  /** Token count; default the text encoder's `maxPositions` (77). */
  tokens?: number;
  /** kohya / A1111 clip_skip (1 = last layer). */
  clipSkip?: number;
  prediction: PredictionType;
  /** ᾱ_t indexed by timestep; default `scaledLinearAlphasCumprod()`. */
  alphasCumprod?: Float32Array;
  lora: SdLoraTargets;
  /**
   * The type the text encoder and the UNet compute in (mixed precision: float16 on a GPU); the
   * noise schedule and the loss stay float32. Default float32.
   */
  computeDtype?: DType;
  /** Checkpointed blocks (UNet ResNet and transformer blocks, text encoder layers) and attention in query blocks. */
  memory?: MemoryOptions;
}

/** Graph input names of the loss graph. */
export const SD_LOSS_INPUTS = {
  latents: 'latents',
  timesteps: 'timesteps',
  noise: 'noise',
  inputIds: 'input_ids',
  encoderHiddenStates: 'encoder_hidden_states',
  lossWeights: 'loss_weights',
  /** SDXL: the second tokenizer's ids (padded with `!`, not EOS). */
  inputIds2: 'input_ids_2',
  /** SDXL: the pooled, projected output of the second text encoder (cached text). */
  textEmbeds: 'text_embeds',
  /** SDXL: `[b, 6]` int64: original height, width, crop top, left, target height, width. */
  timeIds: 'time_ids',
} as const;

/** The loss of one micro-batch, in the shape the training loop's `MicroBatchLoss` contract asks for. */
export interface SdLoss extends MicroBatchLoss {
  /** Σ over the examples of loss weight × mean((prediction − target)²). */
  readonly lossSum: Tensor;
  /** The number of examples (float32 scalar): `lossSum / weight` is kohya's per-micro-batch loss. */
  readonly weight: Tensor;
  /** `lossSum / weight`. */
  readonly loss: Tensor;
  /** LoRA modules in build order: text encoder first, then UNet. */
  readonly lora: readonly SdLoraModule[];
}

/**
 * Declares the micro-batch inputs on `graph` and builds the loss. Inputs (see `SD_LOSS_INPUTS`):
 * `latents [b, c, h, w]` (already scaled), `timesteps [b]` int64, `noise [b, c, h, w]`,
 * `input_ids [b, tokens]` int64 or `encoder_hidden_states [b, tokens, d]`, `loss_weights [b]`
 * (SDXL also `time_ids [b, 6]`, and `input_ids_2` or `text_embeds`); the LoRA parameters are
 * inputs too. The text encoder and the UNet compute in
 * `computeDtype`, the rest in float32; declares no graph outputs.
 */
export function buildSdLoss(graph: Graph, checkpoint: SdCheckpoint, options: SdLossOptions): SdLoss {
  const { unet } = checkpoint.config;
  const { lora } = options;
  const dtype = options.computeDtype ?? 'float32';
  const batch = options.batch ?? 'batch';
  const [height, width] = options.latentSize;
  const latentShape = [batch, unet.inChannels, height, width];
  const latents = graph.input(SD_LOSS_INPUTS.latents, 'float32', latentShape);
  const timesteps = graph.input(SD_LOSS_INPUTS.timesteps, 'int64', [batch]);
  const noise = graph.input(SD_LOSS_INPUTS.noise, 'float32', latentShape);
  const {
    states,
    textTime,
    modules: textModules,
  } = textConditioning(graph, checkpoint, options, batch, dtype);
  const weights = graph.input(SD_LOSS_INPUTS.lossWeights, 'float32', [batch]);

  // DDPM add_noise: √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, ᾱ_t gathered from the schedule by timestep.
  const table = options.alphasCumprod ?? scaledLinearAlphasCumprod();
  const alphaBar = reshape(gather(graph.constant(table, 'float32'), timesteps), [-1, 1, 1, 1]);
  const signal = sqrt(alphaBar);
  const noiseLevel = sqrt(sub(1, alphaBar));
  const noisy = graph.scope('add_noise', () => add(mul(signal, latents), mul(noiseLevel, noise)));

  const { unet: unetTargets, textEncoder: _, textEncoder2: __, conv, ...loraOptions } = lora;
  const unetPlan = new LoraPlan('unet', unetTargets, loraOptions, conv, ldmPathOf(checkpoint));
  const prediction = cast(
    graph.scope('unet', () =>
      buildUnet(
        { checkpoint, component: 'unet', lora: unetPlan, dtype, memory: options.memory },
        unet,
        cast(noisy, dtype),
        timesteps,
        states,
        textTime,
      ),
    ),
    'float32',
  );
  // v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀ (diffusers get_velocity).
  const target = options.prediction === 'epsilon' ? noise : sub(mul(signal, noise), mul(noiseLevel, latents));
  return graph.scope('loss', () => {
    const diff = sub(prediction, target);
    const lossSum = reduceSum(mul(reduceMean(mul(diff, diff), [1, 2, 3]), weights));
    const weight = reshape(cast(shapeOf(latents, 0, 1), 'float32'), []);
    const lora = [...textModules, ...unetPlan.modules];
    const parameters = lora.flatMap((m) => m.layer.parameters);
    return { lossSum, weight, loss: div(lossSum, weight), parameters, lora };
  });
}

/**
 * SDXL's LoRA is named by the UNet's LDM paths (kohya's sdxl_original_unet); SD 1.x / 2.x's by the
 * diffusers ones.
 */
function ldmPathOf(checkpoint: SdCheckpoint): ((path: string) => string | undefined) | undefined {
  if (checkpoint.family !== 'sdxl') return undefined;
  const { layersPerBlock, crossAttention } = checkpoint.config.unet;
  const levels = crossAttention.length;
  const layout = {
    layersPerBlock,
    attentionUpBlocks: crossAttention.flatMap((attends, level) => (attends ? [levels - 1 - level] : [])),
  };
  return (path) => diffusersUnetToLdm(path, layout);
}

/**
 * The UNet's text condition: the states the cross-attention reads, and for SDXL the pooled
 * embedding and size ids. From token ids through the text encoder(s) with their LoRA, or from
 * cached states fed as inputs.
 */
function textConditioning(
  graph: Graph,
  checkpoint: SdCheckpoint,
  options: SdLossOptions,
  batch: Dim,
  dtype: DType,
): { states: Tensor; textTime?: UnetTextTime; modules: readonly SdLoraModule[] } {
  const { unet, textEncoder, textEncoder2 } = checkpoint.config;
  const {
    unet: _,
    textEncoder: teTargets = [],
    textEncoder2: te2Targets = [],
    conv: __,
    ...loraOptions
  } = options.lora;
  const tokens = options.tokens ?? textEncoder.maxPositions;
  if (options.text === 'states' && teTargets.length + te2Targets.length > 0) {
    throw new ModelError(
      'E_MODEL_CONFIG',
      'the text encoder gets LoRA, so the loss graph must run it: build it with text: "ids", not cached states',
    );
  }
  if (!textEncoder2 && te2Targets.length > 0) {
    throw new ModelError(
      'E_MODEL_CONFIG',
      'only SDXL has a second text encoder to train; leave its targets empty',
    );
  }
  if (textEncoder2 && (options.clipSkip ?? 1) !== 1) {
    throw new ModelError(
      'E_MODEL_CONFIG',
      `SDXL conditions on the penultimate layer of both text encoders, so clip_skip ${options.clipSkip} has no meaning there (kohya ignores it); set clip_skip: 1`,
    );
  }
  const timeIds = textEncoder2 ? graph.input(SD_LOSS_INPUTS.timeIds, 'int64', [batch, 6]) : undefined;
  if (options.text === 'states') {
    const states = cast(
      graph.input(SD_LOSS_INPUTS.encoderHiddenStates, 'float32', [batch, tokens, unet.crossAttentionDim]),
      dtype,
    );
    const textEmbeds =
      textEncoder2 && graph.input(SD_LOSS_INPUTS.textEmbeds, 'float32', [batch, textEncoder2.projectionDim!]);
    const textTime = textEmbeds && timeIds ? { textEmbeds: cast(textEmbeds, dtype), timeIds } : undefined;
    return { states, ...(textTime ? { textTime } : {}), modules: [] };
  }
  const inputIds = graph.input(SD_LOSS_INPUTS.inputIds, 'int64', [batch, tokens]);
  const inputIds2 = textEncoder2 && graph.input(SD_LOSS_INPUTS.inputIds2, 'int64', [batch, tokens]);
  const encoded = buildTextEncoding(checkpoint, inputIds, inputIds2, {
    clipSkip: options.clipSkip ?? 1,
    dtype,
    ...(options.memory ? { memory: options.memory } : {}),
    lora: { textEncoder: teTargets, textEncoder2: te2Targets, options: loraOptions },
  });
  if (!encoded.pooled || !timeIds) return { states: encoded.states, modules: encoded.modules };
  return { ...encoded, textTime: { textEmbeds: encoded.pooled, timeIds } };
}

/** What `buildTextEncoding` needs besides the token ids. */
export interface TextEncodingOptions {
  clipSkip: number;
  dtype: DType;
  memory?: MemoryOptions;
  /** LoRA on the text encoders: their targets and the shared settings (rank, alpha, …). */
  lora?: {
    textEncoder: readonly string[];
    textEncoder2: readonly string[];
    options: Omit<SdLoraTargets, 'unet' | 'textEncoder' | 'textEncoder2' | 'conv'>;
  };
}

/**
 * The text encoder(s) on token ids `[b, tokens]`: the states the UNet's cross-attention reads
 * and, for SDXL (`inputIds2` for its second encoder), the pooled embedding — sgm's
 * GeneralConditioner: both encoders' penultimate states, raw, side by side. The training loss
 * builds it with the encoders' LoRA, the text-encoder output cache without.
 */
export function buildTextEncoding(
  checkpoint: SdCheckpoint,
  inputIds: Tensor,
  inputIds2: Tensor | undefined,
  options: TextEncodingOptions,
): { states: Tensor; pooled?: Tensor; modules: readonly SdLoraModule[] } {
  const graph = inputIds.graph;
  const { textEncoder, textEncoder2 } = checkpoint.config;
  const { dtype, memory } = options;
  const encoder = (
    component: 'text_encoder' | 'text_encoder_2',
    targets: readonly string[],
    group: string,
  ) => {
    // SDXL's kohya names: lora_te1_ / lora_te2_ (the plan learns the family from the LDM naming).
    const plan = new LoraPlan(
      component,
      targets,
      { rank: 1, alpha: 1, ...options.lora?.options, group },
      undefined,
      ldmPathOf(checkpoint),
    );
    return { plan, ctx: { checkpoint, component, lora: plan, dtype, ...(memory ? { memory } : {}) } };
  };
  const first = encoder('text_encoder', options.lora?.textEncoder ?? [], TEXT_ENCODER_PARAMETER_GROUP);
  if (!textEncoder2 || !inputIds2) {
    const states = graph.scope('text_encoder', () =>
      buildClipTextEncoder(first.ctx, textEncoder, inputIds, { clipSkip: options.clipSkip }),
    );
    return { states, modules: first.plan.modules };
  }
  const second = encoder('text_encoder_2', options.lora?.textEncoder2 ?? [], TEXT_ENCODER_2_PARAMETER_GROUP);
  const states1 = graph.scope('text_encoder', () =>
    buildClipTextEncoder(first.ctx, textEncoder, inputIds, { clipSkip: 2, finalNorm: false }),
  );
  const { states: states2, pooled } = graph.scope('text_encoder_2', () =>
    buildPooledClipTextEncoder(second.ctx, textEncoder2, inputIds2),
  );
  return {
    states: concat([states1, states2], -1),
    pooled,
    modules: [...first.plan.modules, ...second.plan.modules],
  };
}
