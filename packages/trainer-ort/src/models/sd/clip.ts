/**
 * A CLIP text encoder as transformers' CLIPTextModel builds it: token + position embeddings,
 * pre-norm layers with causal self-attention and an MLP, final layer norm. Sizes and activation
 * come from the config: OpenAI's ViT-L/14 (SD 1.x, QuickGELU) or OpenCLIP's ViT-H/14 text tower
 * (SD 2.x, exact GELU; its single-file weights are mapped to these names in keys.ts).
 */
import type { Tensor } from '@lora/engine';
import { add, cast, gather, gelu, quickGelu, slice } from '@lora/engine';
import { block } from '../memory.ts';
import type { ClipTextConfig } from './config.ts';
import { layerNormLayer, linear, type ModelContext, multiHeadAttention } from './layers.ts';

export interface ClipTextOptions {
  /**
   * kohya / A1111 `clip_skip`: 1 takes the last layer's output, 2 the penultimate one, …; the
   * final layer norm is applied either way. Layers past it are not built. Default 1.
   */
  clipSkip?: number;
}

/** Text states `[b, tokens, hidden]` for token ids `[b, tokens]` (tokens static, ≤ maxPositions). */
export function buildClipTextEncoder(
  ctx: ModelContext,
  config: ClipTextConfig,
  inputIds: Tensor,
  options: ClipTextOptions = {},
): Tensor {
  const graph = inputIds.graph;
  const clipSkip = options.clipSkip ?? 1;
  if (!Number.isInteger(clipSkip) || clipSkip < 1 || clipSkip > config.numLayers) {
    throw graph.error(
      'E_INVALID_ARGUMENT',
      'CLIP text encoder',
      `clipSkip must be an integer from 1 to ${config.numLayers}, got ${clipSkip}`,
    );
  }
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
  for (let layer = 0; layer <= config.numLayers - clipSkip; layer++) {
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
  }
  return layerNormLayer(ctx, x, 'text_model.final_layer_norm', eps);
}
