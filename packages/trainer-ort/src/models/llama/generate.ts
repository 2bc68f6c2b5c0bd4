/**
 * Text generation from a LLaMA-family model with zero or more PEFT LoRA adapters, each at its
 * strength. One graph serves every step: it reads the keys and values of the positions before it
 * (the KV cache) and returns the next token's logits and the cache grown by this step's
 * positions, so after the prompt each new token costs one position. Sampling follows
 * transformers' `generate`: greedy at temperature 0, else temperature, then top-k, then top-p.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LoraAdapter, rankOf, scaleOfModule } from '@lora/adapters';
import {
  type ChatMessage,
  createRng,
  type Rng,
  resolveChatTemplate,
  type TextTokenizer,
} from '@lora/dataset';
import {
  add,
  cast,
  Graph,
  gather,
  type HostTensor,
  matmul,
  type Tensor,
  transpose,
  unsqueeze,
  writeModel,
} from '@lora/engine';
import { toFloat32 } from '@lora/safetensors';
import { chooseDevice, type Device } from '../../device.ts';
import { Session } from '../../session.ts';
import { VOCABULARY_CHUNK } from '../memory.ts';
import { ModelError } from '../model-error.ts';
import type { LlamaCheckpoint } from './checkpoint.ts';
import type { LlamaSpec } from './config.ts';
import {
  frozenLinear,
  type KeyValueCache,
  llamaDecoder,
  llamaWeights,
  MASKED,
  ropeTables,
  vocabularyLogits,
} from './model.ts';
import { LLAMA_LINEAR_MODULES, type LlamaLinearModule, linearModulePath, linearShape } from './weights.ts';

/** End-of-turn tokens of the common chat formats; an answer stops at any the vocabulary has. */
const END_OF_TURN = ['<|im_end|>', '<|eot_id|>', '<|end_of_text|>', '<|endoftext|>', '<end_of_turn>', '</s>'];

/** The ids an answer stops at: the tokenizer's EOS and the end-of-turn tokens it has. */
export function stopIdsOf(tokenizer: TextTokenizer): Set<number> {
  const ids = new Set([tokenizer.eosId]);
  for (const token of END_OF_TURN) {
    const id = tokenizer.tokenId(token);
    if (id !== undefined) ids.add(id);
  }
  return ids;
}

export interface PromptOptions {
  /** A built-in template name or Jinja source; default the model's own. */
  template?: string;
  system?: string;
  /** The text as it is, with the tokenizer's special tokens (BOS), no chat template. */
  raw?: boolean;
}

/**
 * The text a model is given for the user's `prompt` (in the chat template, with the assistant's
 * turn opened, unless raw) and its token ids, tokenized as training tokenizes a prompt: a chat
 * template writes its own special tokens.
 */
export function renderPrompt(
  tokenizer: TextTokenizer,
  prompt: string,
  options: PromptOptions = {},
): { text: string; ids: number[] } {
  if (options.raw) return { text: prompt, ids: tokenizer.encode(prompt, true) };
  const messages: ChatMessage[] = [
    ...(options.system === undefined ? [] : [{ role: 'system' as const, content: options.system }]),
    { role: 'user', content: prompt },
  ];
  const text = resolveChatTemplate(options.template, tokenizer.chatTemplate).render(messages, {
    addGenerationPrompt: true,
    bosToken: tokenizer.bosToken,
    eosToken: tokenizer.eosToken,
  });
  return { text, ids: tokenizer.encode(text, false) };
}

/** An adapter and the strength its update is applied with (1: as trained). */
export interface WeightedAdapter {
  readonly adapter: LoraAdapter;
  readonly strength: number;
  /** Names it in errors. */
  readonly name: string;
}

export interface SamplingOptions {
  readonly maxNewTokens: number;
  /** 0: greedy (the most likely token). */
  readonly temperature: number;
  /** Keep only the k most likely tokens; 0 keeps all. */
  readonly topK?: number;
  /** Keep the most likely tokens whose probabilities add up to p; 1 keeps all. */
  readonly topP?: number;
  readonly seed?: number;
  /** Token ids that end the answer (not returned). */
  readonly stopIds: ReadonlySet<number>;
  /** Run the whole sequence again for each token instead of reading the cache (for checking). */
  readonly noCache?: boolean;
}

const INPUTS = {
  ids: 'input_ids',
  bias: 'attention_bias',
  cos: 'rope_cos',
  sin: 'rope_sin',
  pastKey: (layer: number) => `past_key.${layer}`,
  pastValue: (layer: number) => `past_value.${layer}`,
} as const;
const OUTPUTS = {
  logits: 'logits',
  key: (layer: number) => `present_key.${layer}`,
  value: (layer: number) => `present_value.${layer}`,
} as const;

/** One low-rank update per module: the adapters' down and up factors side by side, up scaled. */
interface CombinedLora {
  readonly rank: number;
  /** `[rank, in]`. */
  readonly down: Float32Array;
  /** `[out, rank]`, each adapter's columns times its scale and strength. */
  readonly up: Float32Array;
}

/**
 * The adapters' updates per module path, as one LoRA of the summed rank: `Σ sᵢ·Bᵢ·Aᵢ` is
 * `[s₁B₁ … sₙBₙ]·[A₁; …; Aₙ]`. Plain LoRA (and rsLoRA) only; other variants are named.
 */
export function combineAdapters(
  spec: LlamaSpec,
  adapters: readonly WeightedAdapter[],
): Map<string, CombinedLora> {
  const known = new Map<string, LlamaLinearModule>();
  for (let layer = 0; layer < spec.numLayers; layer++)
    for (const module of LLAMA_LINEAR_MODULES) known.set(linearModulePath(layer, module), module);
  const parts = new Map<string, { down: Float32Array; up: Float32Array; rank: number }[]>();
  for (const { adapter, strength, name } of adapters) {
    for (const [path, module] of adapter) {
      const linear = known.get(path);
      const fail = (problem: string) =>
        new ModelError('E_MODEL_ADAPTER', `adapter ${name}: ${path} ${problem}`);
      if (!linear) throw fail(`is not a linear module of this model (${spec.numLayers} layers)`);
      if (module.variant !== 'lora') {
        throw fail(`is ${module.variant}; generation applies LoRA adapters only`);
      }
      const rank = rankOf(module);
      const [out, inFeatures] = linearShape(spec, linear);
      const { down, up } = module.tensors as Record<'down' | 'up', (typeof module.tensors)[string]>;
      if (down!.shape.join() !== `${rank},${inFeatures}` || up!.shape.join() !== `${out},${rank}`) {
        throw fail(
          `has down [${down!.shape.join(', ')}] and up [${up!.shape.join(', ')}]; this model needs [${rank}, ${inFeatures}] and [${out}, ${rank}]`,
        );
      }
      const scale = scaleOfModule(module) * strength;
      const values = (t: typeof down) =>
        toFloat32(new Uint8Array(t!.data.buffer, t!.data.byteOffset, t!.data.byteLength), t!.dtype);
      const list = parts.get(path) ?? [];
      list.push({ down: values(down), up: values(up).map((v) => v * scale), rank });
      parts.set(path, list);
    }
  }
  const combined = new Map<string, CombinedLora>();
  for (const [path, list] of parts) {
    const rank = list.reduce((n, p) => n + p.rank, 0);
    const [out, inFeatures] = linearShape(spec, known.get(path)!);
    const down = new Float32Array(rank * inFeatures);
    const up = new Float32Array(out * rank);
    let at = 0;
    for (const part of list) {
      down.set(part.down, at * inFeatures);
      for (let row = 0; row < out; row++)
        up.set(part.up.subarray(row * part.rank, (row + 1) * part.rank), row * rank + at);
      at += part.rank;
    }
    combined.set(path, { rank, down, up });
  }
  return combined;
}

/** The step graph: token ids of the new positions and the cache in; last logits and the grown cache out. */
function buildStepGraph(checkpoint: LlamaCheckpoint, lora: ReadonlyMap<string, CombinedLora>): Graph {
  const { spec } = checkpoint;
  const graph = new Graph('generate');
  const weight = llamaWeights(graph, checkpoint);
  const linear = (x: Tensor, layer: number, module: LlamaLinearModule): Tensor => {
    const y = frozenLinear(spec, weight, x, layer, module);
    const update = lora.get(linearModulePath(layer, module));
    if (!update) return y;
    const [out, inFeatures] = linearShape(spec, module);
    const down = graph.constant(update.down, 'float32', [update.rank, inFeatures]);
    const up = graph.constant(update.up, 'float32', [out, update.rank]);
    return add(y, matmul(matmul(x, transpose(down)), transpose(up)));
  };
  const cacheShape = [1, spec.numKvHeads, 1, 'past', spec.headDim];
  const cache: KeyValueCache = {
    past: (layer) => ({
      key: graph.input(INPUTS.pastKey(layer), 'float32', cacheShape),
      value: graph.input(INPUTS.pastValue(layer), 'float32', cacheShape),
    }),
    present: (layer, key, value) => {
      graph.output(key, OUTPUTS.key(layer));
      graph.output(value, OUTPUTS.value(layer));
    },
  };
  const { hidden, head } = llamaDecoder(spec, graph.input(INPUTS.ids, 'int32', [1, 'seq']), 'float32', {
    weight,
    linear,
    bias: unsqueeze(graph.input(INPUTS.bias, 'float32', [1, 'seq', 'past+seq']), [1, 2]),
    cos: graph.input(INPUTS.cos, 'float32', ['seq', spec.headDim]),
    sin: graph.input(INPUTS.sin, 'float32', ['seq', spec.headDim]),
    cache,
  });
  // Only the last position's next token matters.
  const last = gather(hidden, graph.constant([-1], 'int64', []), 1);
  graph.output(cast(vocabularyLogits(last, head, VOCABULARY_CHUNK), 'float32'), OUTPUTS.logits);
  return graph;
}

/** A model (and adapters) ready to generate; `dispose` when done. */
export class LlamaGenerator {
  private constructor(
    readonly spec: LlamaSpec,
    private readonly session: Session,
    private readonly folder: string,
  ) {}

  static async open(
    checkpoint: LlamaCheckpoint,
    adapters: readonly WeightedAdapter[],
    options: { device?: Device } = {},
  ): Promise<LlamaGenerator> {
    const graph = buildStepGraph(checkpoint, combineAdapters(checkpoint.spec, adapters));
    const folder = await mkdtemp(join(tmpdir(), 'lora-generate-'));
    try {
      const path = await writeModel(graph, folder);
      const { device } = await chooseDevice(options.device ?? 'cpu');
      return new LlamaGenerator(checkpoint.spec, await Session.create(path, { device }), folder);
    } catch (error) {
      await rm(folder, { recursive: true, force: true });
      throw error;
    }
  }

  /**
   * The answer's token ids to `prompt`, one at a time as they are chosen; ends at a stop id (not
   * yielded) or after `maxNewTokens`.
   */
  async *generate(prompt: readonly number[], options: SamplingOptions): AsyncGenerator<number> {
    if (prompt.length === 0) throw new ModelError('E_MODEL_BATCH', 'the prompt has no tokens');
    const rng = createRng(options.seed ?? 0);
    const tokens = [...prompt];
    let cache = emptyCache(this.spec);
    for (let step = 0; step < options.maxNewTokens; step++) {
      const fresh = options.noCache ? tokens : tokens.slice(cache.length);
      const out = await this.session.run(this.feeds(fresh, options.noCache ? emptyCache(this.spec) : cache));
      if (!options.noCache) cache = cacheFrom(out, this.spec, tokens.length);
      const next = chooseToken(out[OUTPUTS.logits]!.data as Float32Array, options, rng);
      if (options.stopIds.has(next)) return;
      tokens.push(next);
      yield next;
    }
  }

  private feeds(ids: readonly number[], cache: Cache): Record<string, HostTensor> {
    const { spec } = this;
    const past = cache.length;
    const seq = ids.length;
    for (const id of ids) {
      if (!(Number.isInteger(id) && id >= 0 && id < spec.vocabSize)) {
        throw new ModelError(
          'E_MODEL_BATCH',
          `token id ${id} is outside the vocabulary (0–${spec.vocabSize - 1})`,
        );
      }
    }
    const rope = ropeTables(spec, past + seq);
    const rows = (t: HostTensor) => ({
      dtype: 'float32' as const,
      shape: [seq, spec.headDim],
      data: (t.data as Float32Array).slice(past * spec.headDim),
    });
    const feeds: Record<string, HostTensor> = {
      [INPUTS.ids]: { dtype: 'int32', shape: [1, seq], data: Int32Array.from(ids) },
      [INPUTS.bias]: { dtype: 'float32', shape: [1, seq, past + seq], data: causalBias(spec, past, seq) },
      [INPUTS.cos]: rows(rope.cos),
      [INPUTS.sin]: rows(rope.sin),
    };
    for (let layer = 0; layer < spec.numLayers; layer++) {
      feeds[INPUTS.pastKey(layer)] = cache.keys[layer]!;
      feeds[INPUTS.pastValue(layer)] = cache.values[layer]!;
    }
    return feeds;
  }

  async dispose(): Promise<void> {
    try {
      await this.session.dispose();
    } finally {
      await rm(this.folder, { recursive: true, force: true });
    }
  }
}

interface Cache {
  /** Positions held. */
  readonly length: number;
  readonly keys: readonly HostTensor[];
  readonly values: readonly HostTensor[];
}

function emptyCache(spec: LlamaSpec): Cache {
  const empty = (): HostTensor => ({
    dtype: 'float32',
    shape: [1, spec.numKvHeads, 1, 0, spec.headDim],
    data: new Float32Array(0),
  });
  return {
    length: 0,
    keys: Array.from({ length: spec.numLayers }, empty),
    values: Array.from({ length: spec.numLayers }, empty),
  };
}

function cacheFrom(out: Record<string, HostTensor>, spec: LlamaSpec, length: number): Cache {
  const layers = Array.from({ length: spec.numLayers }, (_, layer) => layer);
  return {
    length,
    keys: layers.map((layer) => out[OUTPUTS.key(layer)]!),
    values: layers.map((layer) => out[OUTPUTS.value(layer)]!),
  };
}

/** Query `past + i` sees key j when j ≤ past + i and (with a sliding window) past + i − j < window. */
function causalBias(spec: LlamaSpec, past: number, seq: number): Float32Array {
  const keys = past + seq;
  const bias = new Float32Array(seq * keys).fill(MASKED);
  for (let i = 0; i < seq; i++) {
    const query = past + i;
    const first = spec.slidingWindow === undefined ? 0 : Math.max(0, query - spec.slidingWindow + 1);
    bias.fill(0, i * keys + first, i * keys + query + 1);
  }
  return bias;
}

/**
 * The next token from `logits`: the most likely at temperature 0 (the first on a tie, as
 * `argmax`); else logits ÷ temperature, the top k kept, then the smallest set of most likely tokens
 * whose probabilities reach top p, and one drawn from what is left in proportion to its probability.
 */
export function chooseToken(
  logits: Float32Array,
  options: Pick<SamplingOptions, 'temperature' | 'topK' | 'topP'>,
  rng: Rng,
): number {
  if (options.temperature === 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  let order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
  const topK = options.topK ?? 0;
  if (topK > 0) order = order.slice(0, topK);
  const scaled = order.map((i) => logits[i]! / options.temperature);
  const top = scaled[0]!;
  const weights = scaled.map((v) => Math.exp(v - top));
  const total = weights.reduce((a, b) => a + b, 0);
  const topP = options.topP ?? 1;
  let kept = weights.length;
  if (topP < 1) {
    let cumulative = 0;
    for (let i = 0; i < weights.length; i++) {
      cumulative += weights[i]! / total;
      if (cumulative >= topP) {
        kept = i + 1;
        break;
      }
    }
  }
  const keptTotal = weights.slice(0, kept).reduce((a, b) => a + b, 0);
  let draw = rng.next() * keptTotal;
  for (let i = 0; i < kept; i++) {
    draw -= weights[i]!;
    if (draw < 0) return order[i]!;
  }
  return order[kept - 1]!;
}
