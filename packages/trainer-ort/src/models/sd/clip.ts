/**
 * A CLIP text encoder as transformers' CLIPTextModel builds it: token + position embeddings,
 * pre-norm layers with causal self-attention and an MLP, final layer norm. Sizes and activation
 * come from the config: OpenAI's ViT-L/14 (SD 1.x, QuickGELU) or OpenCLIP's ViT-H/14 text tower
 * (SD 2.x, exact GELU; its single-file weights are mapped to these names in keys.ts), or SDXL's
 * two: CLIP ViT-L and OpenCLIP ViT-bigG with its pooled projection.
 */
import type { Tensor } from '@lora/engine';
import {
  add,
  attr,
  cast,
  equal,
  gather,
  gelu,
  mul,
  quickGelu,
  reduceSum,
  slice,
  unsqueeze,
} from '@lora/engine';
import { block } from '../memory.ts';
import type { ClipTextConfig } from './config.ts';
import { layerNormLayer, linear, type ModelContext, multiHeadAttention } from './layers.ts';

export interface ClipTextOptions {
  /**
   * kohya / A1111 `clip_skip`: 1 takes the last layer's output, 2 the penultimate one, …; the
   * final layer norm is applied either way. Layers past it are not built. Default 1.
   */
  clipSkip?: number;
  /** Whether the states go through final_layer_norm (SD 1.x / 2.x); SDXL's conditioner takes them raw. Default true. */
  finalNorm?: boolean;
}

/** Text states `[b, tokens, hidden]` for token ids `[b, tokens]` (tokens static, ≤ maxPositions). */
export function buildClipTextEncoder(
  ctx: ModelContext,
  config: ClipTextConfig,
  inputIds: Tensor,
  options: ClipTextOptions = {},
): Tensor {
  const clipSkip = options.clipSkip ?? 1;
  if (!Number.isInteger(clipSkip) || clipSkip < 1 || clipSkip > config.numLayers) {
    throw inputIds.graph.error(
      'E_INVALID_ARGUMENT',
      'CLIP text encoder',
      `clipSkip must be an integer from 1 to ${config.numLayers}, got ${clipSkip}`,
    );
  }
  const states = encoderLayers(ctx, config, inputIds, config.numLayers - clipSkip + 1).at(-1)!;
  return options.finalNorm === false ? states : finalNorm(ctx, config, states);
}

/**
 * SDXL's second text encoder as sgm's FrozenOpenCLIPEmbedder2 runs it (layer "penultimate",
 * always_return_pooled): the penultimate layer's states without the final norm, and the pooled
 * output, final_layer_norm(last layer) at the first largest token id (the EOS, as OpenCLIP's
 * `text.argmax(-1)`), through `text_projection`.
 */
export function buildPooledClipTextEncoder(
  ctx: ModelContext,
  config: ClipTextConfig,
  inputIds: Tensor,
): { states: Tensor; pooled: Tensor } {
  const graph = inputIds.graph;
  if (config.projectionDim === undefined || config.numLayers < 2) {
    throw graph.error(
      'E_INVALID_ARGUMENT',
      'CLIP text encoder',
      'a pooled text encoder needs projectionDim and at least 2 layers',
    );
  }
  const layers = encoderLayers(ctx, config, inputIds, config.numLayers);
  const final = finalNorm(ctx, config, layers.at(-1)!);
  const tokens = inputIds.shape[1] as number;
  // Token ids are below 2^24, so float32 holds them exactly for ArgMax (first maximum).
  const eos = graph.addNode(
    'ArgMax',
    [cast(inputIds, 'float32')],
    [{ dtype: 'int64', shape: [inputIds.shape[0]!, 1] }],
    {
      axis: attr.int(1),
      keepdims: attr.int(1),
    },
  )[0]!;
  const positions = graph.constant(
    BigInt64Array.from({ length: tokens }, (_, i) => BigInt(i)),
    'int64',
    [1, tokens],
  );
  const pick = unsqueeze(cast(equal(positions, eos), final.dtype), [2]);
  const pooled = reduceSum(mul(final, pick), [1]);
  return {
    states: layers.at(-2)!,
    pooled: linear(ctx, pooled, 'text_projection', config.projectionDim, false),
  };
}

const finalNorm = (ctx: ModelContext, config: ClipTextConfig, x: Tensor): Tensor =>
  layerNormLayer(ctx, x, 'text_model.final_layer_norm', config.layerNormEpsilon);

/** Embeddings, then the first `count` encoder layers: the states after each. */
function encoderLayers(ctx: ModelContext, config: ClipTextConfig, inputIds: Tensor, count: number): Tensor[] {
  const graph = inputIds.graph;
  const tokens = inputIds.shape[1];
  if (inputIds.rank !== 2 || typeof tokens !== 'number' || tokens > config.maxPositions) {
    throw graph.error(
      'E_SHAPE_MISMATCH',
      'CLIP text encoder',
      `input ids ${inputIds} must be [batch, tokens] with static tokens ≤ ${config.maxPositions}`,
    );
  }
  const { hiddenSize: d, layerNormEpsilon: eps } = config;
  const activation = config.hiddenAct === 'gelu' ? gelu : quickGelu;
  const { checkpoint, component } = ctx;
  const table = (key: string, rows: number) =>
    checkpoint.weight(graph, component, key, [rows, d], ctx.memory?.weightDtype);
  const tokenTable = table('text_model.embeddings.token_embedding.weight', config.vocabSize);
  const positionTable = table('text_model.embeddings.position_embedding.weight', config.maxPositions);
  // The lookups read the tables at their held type; only the rows looked up are converted.
  const dtype = ctx.dtype ?? 'float32';
  let x = add(
    cast(gather(tokenTable, inputIds), dtype),
    cast(slice(positionTable, { starts: [0], ends: [tokens], axes: [0] }), dtype),
  );
  const states: Tensor[] = [];
  for (let layer = 0; layer < count; layer++) {
    const path = `text_model.encoder.layers.${layer}`;
    const encoderLayer = (input: Tensor) => {
      const attended = multiHeadAttention(
        ctx,
        layerNormLayer(ctx, input, `${path}.layer_norm1`, eps),
        undefined,
        `${path}.self_attn`,
        {
          heads: config.numHeads,
          names: ['q_proj', 'k_proj', 'v_proj', 'out_proj'],
          bias: true,
          causal: true,
        },
      );
      const h = add(input, attended);
      const hidden = activation(
        linear(
          ctx,
          layerNormLayer(ctx, h, `${path}.layer_norm2`, eps),
          `${path}.mlp.fc1`,
          config.intermediateSize,
        ),
      );
      return add(h, linear(ctx, hidden, `${path}.mlp.fc2`, d));
    };
    const input = x;
    x = graph.scope(path, () => block(ctx.memory, input, encoderLayer));
    states.push(x);
  }
  return states;
}
