/**
 * LLaMA / Qwen2 / Mistral decoders as transformers defines them (modeling_llama, …), with LoRA
 * on the chosen linear modules and the causal-LM loss, behind the training loop's
 * `TrainableModel` contract. Frozen weights are read in place from the checkpoint and cast to the
 * compute type. RoPE tables, the attention bias (causal, padding, sliding window) and the label
 * positions come from the host: they depend only on the batch's shape and masks, so the graph
 * needs no index arithmetic.
 */

import { parameterName, VARIANTS } from '@lora/adapters';
import type { TextBatch } from '@lora/dataset';
import type { DType, Graph, HostTensor, Tensor } from '@lora/engine';
import {
  add,
  BYTES_PER_ELEMENT,
  cast,
  castAtUse,
  concat,
  gather,
  logSoftmax,
  matmul,
  mul,
  neg,
  reduceSum,
  reshape,
  rmsNorm,
  rope,
  silu,
  softmax,
  transpose,
  unsqueeze,
} from '@lora/engine';
import { type LoraOptions, type LoraParameter, loraLayer } from '../../lora.ts';
import type { BuildOptions, MicroBatchLoss, TrainableModel } from '../../train/model.ts';
import { safetensorsWeight } from '../../weights.ts';
import { block, type MemoryOptions, VOCABULARY_CHUNK } from '../memory.ts';
import { ModelError } from '../model-error.ts';
import type { LlamaCheckpoint } from './checkpoint.ts';
import { type LlamaSpec, ropeInverseFrequencies } from './config.ts';
import { LLAMA_LINEAR_MODULES, type LlamaLinearModule, linearModulePath, linearShape } from './weights.ts';

/** What one micro-batch needs: right-padded token ids, labels (-100: not learned) and the padding mask. */
export type LlamaBatch = Pick<TextBatch, 'batchSize' | 'seqLen' | 'inputIds' | 'labels' | 'attentionMask'>;

export interface LlamaLoraOptions extends Omit<LoraOptions, 'group' | 'normAxis'> {
  /** PEFT names of the linear modules that get LoRA in every layer, or `all-linear` (all seven). */
  targetModules: readonly LlamaLinearModule[] | 'all-linear';
  /** Start values by parameter name (e.g. from an `init_adapter`); others start as LoRA does. */
  initial?: ReadonlyMap<string, Float32Array>;
  /** Recompute each decoder layer in the backward pass (`checkpointBlocks`). */
  memory?: MemoryOptions;
}

export interface LlamaGraph extends MicroBatchLoss {
  /** `[batch, seq, vocab]` in the compute type. */
  logits: Tensor;
}

/** The graph inputs `feeds` fills (besides the LoRA parameters). */
export const LLAMA_INPUTS = {
  /** int32 `[batch, seq]`. */
  inputIds: 'input_ids',
  /** float32 `[batch, seq, seq]`: 0 where a query may see a key, the lowest float32 elsewhere. */
  attentionBias: 'attention_bias',
  /** float32 `[seq, head_dim]`. */
  ropeCos: 'rope_cos',
  ropeSin: 'rope_sin',
  /** int64 `[batch, seq]`: flat index into the `[batch, seq, vocab]` log-probabilities of the next token. */
  labelIndex: 'label_index',
  /** float32 `[batch, seq]`: 1 where the next token is learned. */
  labelMask: 'label_mask',
} as const;

const IGNORE_INDEX = -100;
/** torch.finfo(torch.float32).min, the value transformers masks attention scores with. */
export const MASKED = -3.4028234663852886e38;
const QKV: ReadonlySet<LlamaLinearModule> = new Set(['q_proj', 'k_proj', 'v_proj']);

/** The modules `targetModules` selects, in layer order. */
export function resolveLlamaTargets(targetModules: LlamaLoraOptions['targetModules']): LlamaLinearModule[] {
  const targets =
    targetModules === 'all-linear'
      ? [...LLAMA_LINEAR_MODULES]
      : LLAMA_LINEAR_MODULES.filter((m) => targetModules.includes(m));
  if (targets.length === 0) {
    throw new ModelError(
      'E_MODEL_CONFIG',
      `target_modules selects no layer; use some of ${LLAMA_LINEAR_MODULES.join(', ')} or all-linear`,
    );
  }
  return targets;
}

/**
 * Every trainable tensor the model has with its shape, by PEFT name, as the variant declares
 * them (LoRA: `model.layers.N.self_attn.q_proj.lora_A.weight` `[r, in]`, `….lora_B.weight`
 * `[out, r]`; DoRA adds `….lora_magnitude_vector`).
 */
export function llamaLoraShapes(
  spec: LlamaSpec,
  lora: Pick<LlamaLoraOptions, 'targetModules' | 'network' | 'rank' | 'alpha'>,
): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const targets = resolveLlamaTargets(lora.targetModules);
  const network = lora.network ?? 'lora';
  for (let layer = 0; layer < spec.numLayers; layer++) {
    for (const module of targets) {
      const path = linearModulePath(layer, module);
      for (const p of VARIANTS[network].parameters(linearShape(spec, module), lora)) {
        shapes.set(parameterName(path, network, p.role), [...p.shape]);
      }
    }
  }
  return shapes;
}

export class LlamaModel implements TrainableModel<LlamaBatch> {
  readonly spec: LlamaSpec;
  readonly targets: readonly LlamaLinearModule[];
  private rope: { seqLen: number; cos: HostTensor; sin: HostTensor } | undefined;

  constructor(
    readonly checkpoint: LlamaCheckpoint,
    readonly lora: LlamaLoraOptions,
  ) {
    this.spec = checkpoint.spec;
    this.targets = resolveLlamaTargets(lora.targetModules);
  }

  /** Every LoRA parameter with its shape, by PEFT name, in graph order. */
  loraShapes(): Map<string, number[]> {
    return llamaLoraShapes(this.spec, { ...this.lora, targetModules: this.targets });
  }

  build(graph: Graph, { computeDtype: dtype }: BuildOptions): LlamaGraph {
    const { spec, checkpoint, lora } = this;
    const weight = llamaWeights(graph, checkpoint, lora.memory?.weightDtype);
    const parameters: LoraParameter[] = [];
    const linear = (x: Tensor, layer: number, module: LlamaLinearModule): Tensor => {
      if (!this.targets.includes(module)) return frozenLinear(spec, weight, x, layer, module);
      const path = linearModulePath(layer, module);
      const bias = spec.qkvBias && QKV.has(module) ? weight(`${path}.bias`) : undefined;
      const { targetModules: _, initial: __, ...options } = lora;
      const layerOut = loraLayer(x, weight(`${path}.weight`), path, options, bias ? { bias } : {});
      parameters.push(...layerOut.parameters.map((p) => this.startValue(p)));
      return layerOut.output;
    };

    const { inputIds, attentionBias, ropeCos, ropeSin, labelIndex, labelMask } = LLAMA_INPUTS;
    const { hidden, head } = llamaDecoder(spec, graph.input(inputIds, 'int32', ['batch', 'seq']), dtype, {
      weight,
      linear,
      // [batch, 1, 1, seq, seq]: broadcast over key/value heads and the query heads of each group.
      bias: unsqueeze(graph.input(attentionBias, 'float32', ['batch', 'seq', 'seq']), [1, 2]),
      cos: graph.input(ropeCos, 'float32', ['seq', spec.headDim]),
      sin: graph.input(ropeSin, 'float32', ['seq', spec.headDim]),
      ...(lora.memory ? { memory: lora.memory } : {}),
    });
    const logits = vocabularyLogits(hidden, head, lora.memory?.vocabularyChunk ?? VOCABULARY_CHUNK);

    // Sum of −log p(next token) over learned positions, in float32 whatever the compute type.
    const logProbs = reshape(logSoftmax(cast(logits, 'float32'), -1), [-1]);
    const mask = graph.input(labelMask, 'float32', ['batch', 'seq']);
    const picked = gather(logProbs, graph.input(labelIndex, 'int64', ['batch', 'seq']));
    const lossSum = neg(reduceSum(mul(picked, mask)));
    this.checkInitialUsed(parameters);
    return { lossSum, weight: reduceSum(mask), parameters, logits };
  }

  feeds(batch: LlamaBatch): Record<string, HostTensor> {
    const { batchSize: b, seqLen: s, inputIds, labels, attentionMask } = batch;
    const vocab = this.spec.vocabSize;
    for (const [name, values] of [
      ['inputIds', inputIds],
      ['labels', labels],
      ['attentionMask', attentionMask],
    ] as const) {
      if (values.length !== b * s) {
        throw new ModelError(
          'E_MODEL_BATCH',
          `batch ${name} holds ${values.length} values, not batchSize × seqLen = ${b} × ${s}`,
        );
      }
    }
    for (const id of inputIds) {
      if (!(id >= 0 && id < vocab)) {
        throw new ModelError(
          'E_MODEL_BATCH',
          `token id ${id} is outside the model's vocabulary (0–${vocab - 1})`,
        );
      }
    }
    // Position t learns token t + 1 (the shifted labels of transformers' causal-LM loss).
    const labelIndex = new BigInt64Array(b * s);
    const labelMask = new Float32Array(b * s);
    for (let row = 0; row < b; row++) {
      for (let t = 0; t < s; t++) {
        const at = row * s + t;
        const next = t + 1 < s ? labels[at + 1]! : IGNORE_INDEX;
        if (next === IGNORE_INDEX) {
          labelIndex[at] = BigInt(at * vocab);
          continue;
        }
        if (!(next >= 0 && next < vocab)) {
          throw new ModelError(
            'E_MODEL_BATCH',
            `label ${next} is neither ${IGNORE_INDEX} nor a token id of the vocabulary (0–${vocab - 1})`,
          );
        }
        labelIndex[at] = BigInt(at * vocab + next);
        labelMask[at] = 1;
      }
    }
    if (this.rope?.seqLen !== s) this.rope = { seqLen: s, ...ropeTables(this.spec, s) };
    const {
      inputIds: ids,
      attentionBias,
      ropeCos,
      ropeSin,
      labelIndex: index,
      labelMask: mask,
    } = LLAMA_INPUTS;
    return {
      [ids]: { dtype: 'int32', shape: [b, s], data: Int32Array.from(inputIds) },
      [attentionBias]: {
        dtype: 'float32',
        shape: [b, s, s],
        data: attentionBiasOf(attentionMask, b, s, this.spec.slidingWindow),
      },
      [ropeCos]: this.rope.cos,
      [ropeSin]: this.rope.sin,
      [index]: { dtype: 'int64', shape: [b, s], data: labelIndex },
      [mask]: { dtype: 'float32', shape: [b, s], data: labelMask },
    };
  }

  private startValue(parameter: LoraParameter): LoraParameter {
    const initial = this.lora.initial?.get(parameter.name);
    if (!initial) return parameter;
    if (initial.length !== parameter.initial.length) {
      throw new ModelError(
        'E_MODEL_ADAPTER',
        `start value of ${parameter.name} has ${initial.length} values; its shape [${parameter.shape.join(', ')}] needs ${parameter.initial.length}`,
      );
    }
    return { ...parameter, initial };
  }

  private checkInitialUsed(parameters: readonly LoraParameter[]): void {
    const names = new Set(parameters.map((p) => p.name));
    const unused = [...(this.lora.initial?.keys() ?? [])].filter((name) => !names.has(name));
    if (unused.length > 0) {
      throw new ModelError(
        'E_MODEL_ADAPTER',
        `start values were given for ${unused.join(', ')}, which the model does not train (target_modules: ${this.targets.join(', ')})`,
      );
    }
  }
}

/** Frozen weights by checkpoint name, one initializer per name (tied embeddings read one twice). */
export function llamaWeights(
  graph: Graph,
  checkpoint: LlamaCheckpoint,
  held?: DType,
): (name: string) => Tensor {
  const weights = new Map<string, Tensor>();
  return (name) => {
    let tensor = weights.get(name);
    if (!tensor) {
      const info = checkpoint.tensors.get(name);
      if (!info) throw new ModelError('E_MODEL_TENSOR', `${checkpoint.folder}: tensor ${name} is missing`);
      tensor = safetensorsWeight(graph, { ...info, tensors: checkpoint.tensors }, name, name, held);
      weights.set(name, tensor);
    }
    return tensor;
  };
}

/** Linear module `module` of `layer` without LoRA: `x · Wᵀ (+ b)`, the weight converted at use. */
export function frozenLinear(
  spec: LlamaSpec,
  weight: (name: string) => Tensor,
  x: Tensor,
  layer: number,
  module: LlamaLinearModule,
): Tensor {
  const path = linearModulePath(layer, module);
  const y = matmul(x, transpose(castAtUse(weight(`${path}.weight`), x.dtype, x)));
  return spec.qkvBias && QKV.has(module) ? add(y, cast(weight(`${path}.bias`), x.dtype)) : y;
}

/** What one pass through the decoder stack reads besides the token ids. */
export interface DecoderParts {
  weight(name: string): Tensor;
  /** Linear module `module` of `layer` applied to `x`, with its LoRA if it has one. */
  linear(x: Tensor, layer: number, module: LlamaLinearModule): Tensor;
  /** float32 RoPE tables of the positions run, `[seq, head_dim]`. */
  cos: Tensor;
  sin: Tensor;
  /** Additive attention bias `[batch, 1, 1, seq, keys]`. */
  bias: Tensor;
  memory?: MemoryOptions;
  /** Generation's key/value cache (no checkpointing with it: nothing is differentiated). */
  cache?: KeyValueCache;
}

/** Each layer's keys and values of the positions before this pass, and where this pass's full ones go. */
export interface KeyValueCache {
  /** `[batch, kv_heads, 1, past, head_dim]` each. */
  past(layer: number): { key: Tensor; value: Tensor };
  present(layer: number, key: Tensor, value: Tensor): void;
}

/**
 * Token ids `[batch, seq]` through the embedding, the decoder layers and the final norm: the
 * hidden states `[batch, seq, hidden]` in `dtype`, and the LM head's weight.
 */
export function llamaDecoder(
  spec: LlamaSpec,
  ids: Tensor,
  dtype: DType,
  parts: DecoderParts,
): { hidden: Tensor; head: Tensor } {
  const { weight, linear } = parts;
  const graph = ids.graph;
  const rotary = { cos: cast(parts.cos, dtype), sin: cast(parts.sin, dtype), bias: parts.bias };
  const embed = weight('model.embed_tokens.weight');
  // int32 token ids: with int64 ones onnxruntime's WebGPU provider found no kernel for this
  // Gather and kept the embedding table and its lookup on the CPU (ids < vocabulary size < 2³¹).
  let x = cast(gather(embed, ids), dtype);
  for (let layer = 0; layer < spec.numLayers; layer++) {
    const decoderLayer = (input: Tensor) => {
      const attention = selfAttention(
        spec,
        rmsNorm(input, weight(`model.layers.${layer}.input_layernorm.weight`), spec.rmsNormEps),
        (h, module) => linear(h, layer, module),
        rotary,
        parts.cache && { layer, cache: parts.cache },
      );
      const residual = add(input, attention);
      const h = rmsNorm(
        residual,
        weight(`model.layers.${layer}.post_attention_layernorm.weight`),
        spec.rmsNormEps,
      );
      const gate = silu(linear(h, layer, 'gate_proj'));
      return add(residual, linear(mul(gate, linear(h, layer, 'up_proj')), layer, 'down_proj'));
    };
    const input = x;
    x = graph.scope(`layers.${layer}`, () => block(parts.memory, input, decoderLayer));
  }
  return {
    hidden: rmsNorm(x, weight('model.norm.weight'), spec.rmsNormEps),
    head: spec.tieWordEmbeddings ? embed : weight('lm_head.weight'),
  };
}

/**
 * `x · headᵀ` in `x`'s type. A head stored narrower than that (BF16 weights, float32 compute) is
 * converted `chunk` vocabulary rows at a time, so no converted copy of the whole table exists (at
 * Llama 3's 128 256 × 2048 it would be 1 GiB in float32); a head already in `x`'s type is one product.
 */
export function vocabularyLogits(x: Tensor, head: Tensor, chunk: number): Tensor {
  const vocabulary = head.shape[0] as number;
  if (BYTES_PER_ELEMENT[head.dtype] >= BYTES_PER_ELEMENT[x.dtype] || vocabulary <= chunk) {
    return matmul(x, transpose(castAtUse(head, x.dtype, x)));
  }
  const parts: Tensor[] = [];
  for (let start = 0; start < vocabulary; start += chunk) {
    const rows = [start, Math.min(start + chunk, vocabulary)] as const;
    parts.push(matmul(x, transpose(castAtUse(head, x.dtype, x, rows))));
  }
  return concat(parts, -1);
}

/**
 * Grouped-query attention: the query heads of each key/value head form one group, so keys and
 * values broadcast over the group instead of being repeated (transformers' repeat_interleave).
 */
function selfAttention(
  spec: LlamaSpec,
  h: Tensor,
  linear: (h: Tensor, module: LlamaLinearModule) => Tensor,
  { cos, sin, bias }: { cos: Tensor; sin: Tensor; bias: Tensor },
  cached?: { layer: number; cache: KeyValueCache },
): Tensor {
  const { numHeads, numKvHeads, headDim } = spec;
  // [batch, seq, groups·heads·headDim] → [batch, groups, heads, seq, headDim]
  const split = (t: Tensor, heads: number) =>
    transpose(reshape(t, [0, 0, numKvHeads, heads, headDim]), [0, 2, 3, 1, 4]);
  const q = rope(split(linear(h, 'q_proj'), numHeads / numKvHeads), cos, sin);
  let k = rope(split(linear(h, 'k_proj'), 1), cos, sin);
  let v = split(linear(h, 'v_proj'), 1);
  if (cached) {
    const past = cached.cache.past(cached.layer);
    k = concat([cast(past.key, k.dtype), k], 3);
    v = concat([cast(past.value, v.dtype), v], 3);
    cached.cache.present(cached.layer, k, v);
  }
  const scores = mul(matmul(q, transpose(k, [0, 1, 2, 4, 3])), headDim ** -0.5);
  const probs = cast(softmax(add(cast(scores, 'float32'), bias), -1), h.dtype);
  const heads = transpose(matmul(probs, v), [0, 3, 1, 2, 4]);
  return linear(reshape(heads, [0, 0, numHeads * headDim]), 'o_proj');
}

/** cos and sin of position × inverse frequency, `[seq, head_dim]`, computed in float32 as transformers does. */
export function ropeTables(spec: LlamaSpec, seqLen: number): { cos: HostTensor; sin: HostTensor } {
  const inverse = Float32Array.from(ropeInverseFrequencies(spec));
  const d = spec.headDim;
  const cos = new Float32Array(seqLen * d);
  const sin = new Float32Array(seqLen * d);
  for (let t = 0; t < seqLen; t++) {
    for (let i = 0; i < d; i++) {
      const angle = Math.fround(t * inverse[i % (d / 2)]!);
      cos[t * d + i] = Math.cos(angle);
      sin[t * d + i] = Math.sin(angle);
    }
  }
  const shape = [seqLen, d];
  return { cos: { dtype: 'float32', shape, data: cos }, sin: { dtype: 'float32', shape, data: sin } };
}

/**
 * Query i sees key j when j ≤ i, j is not padding, and (with a sliding window) i − j < window.
 * Masked scores get the lowest finite float32, as in transformers: a query that sees nothing (left
 * padding) gets a uniform softmax instead of NaN, and learns nothing.
 */
function attentionBiasOf(
  attentionMask: ArrayLike<number>,
  batch: number,
  seq: number,
  window: number | undefined,
): Float32Array {
  const bias = new Float32Array(batch * seq * seq).fill(MASKED);
  for (let row = 0; row < batch; row++) {
    for (let i = 0; i < seq; i++) {
      const first = window === undefined ? 0 : Math.max(0, i - window + 1);
      for (let j = first; j <= i; j++) {
        if (attentionMask[row * seq + j] !== 0) bias[(row * seq + i) * seq + j] = 0;
      }
    }
  }
  return bias;
}
