/**
 * A1111's prompt conditioning for SD 1.x (modules/sd_hijack_clip.py): the prompt's attention
 * pieces (`parsePromptAttention`: `(a:1.2)`, `[b]`, `BREAK`), each tokenized on its own and laid
 * into chunks of 75 tokens (a BREAK or a full chunk starts the next one; a chunk that fills up
 * within 20 tokens of a comma moves the tokens after the comma on), each chunk framed by BOS and
 * EOS and padded with EOS to 77, every token carrying its piece's weight. The text encoder runs
 * per chunk; `weightStates` scales its states by the weights and restores the chunk's mean, and
 * the chunks' states are joined along the tokens. `<lora:name:weight>` tags are taken out first.
 */
import { type ExtraNetworkNode, type InlineNode, parse, parsePromptAttention } from '@lora/caption-markup';

/** Tokens of text between BOS and EOS in one chunk (77 positions). */
export const CHUNK_TOKENS = 75;
/** How far back from a full chunk a comma may be for the rest to move to the next chunk (A1111's default). */
const COMMA_BACKTRACK = 20;

export interface PromptTokenizer {
  /** Token ids of `text` without special tokens. */
  tokenIds(text: string): number[];
  readonly bosId: number;
  readonly eosId: number;
  /** What follows a chunk's first EOS (A1111's `id_pad`): EOS for SD 1.x, "!" (0) for SD 2.x. */
  readonly padId?: number;
  /** SDXL: the id of "!", what OpenCLIP bigG's chunks hold after their first EOS; default 0, CLIP's id of it. */
  readonly openClipPadId?: number | undefined;
}

export interface PromptChunks {
  /** Rows of `CHUNK_TOKENS + 2` ids. */
  ids: number[][];
  /** The weight of each id (1 for BOS, EOS and padding). */
  weights: number[][];
}

/** A `<lora:name:weight>` tag of a prompt (weight 1 when left out). */
export interface LoraTag {
  name: string;
  weight: number;
}

/**
 * The prompt without its `<lora:…>` tags, and the tags in order, as the caption-markup parser reads
 * them (A1111's `ExtraNetworkParams`: the name, then `te=` or the second argument as the weight;
 * an unreadable weight counts as 1).
 */
export function extractLoraTags(prompt: string): { prompt: string; loras: LoraTag[] } {
  const tags: ExtraNetworkNode[] = [];
  const visit = (nodes: readonly InlineNode[]): void => {
    for (const node of nodes) {
      if (node.type === 'extraNetwork' && node.kind === 'lora') tags.push(node);
      else if (node.type === 'emphasis' || node.type === 'attention') visit(node.children);
      else if (node.type === 'edit') visit([...(node.from ?? []), ...node.to]);
      else if (node.type === 'alternation') for (const option of node.options) visit(option);
    }
  };
  visit(parse(prompt).children);
  let stripped = prompt;
  for (const { span } of [...tags].reverse()) stripped = stripped.slice(0, span[0]) + stripped.slice(span[1]);
  const loras = tags.map((tag) => ({
    name: tag.name.trim(),
    weight: Number.isFinite(tag.weight) ? tag.weight : 1,
  }));
  return { prompt: stripped, loras };
}

/** A1111's chunks of `prompt` (at least one: an empty prompt is BOS, then EOS). */
export function promptChunks(prompt: string, tokenizer: PromptTokenizer): PromptChunks {
  const comma = tokenizer.tokenIds(',')[0];
  const chunks: PromptChunks = { ids: [], weights: [] };
  let tokens: number[] = [];
  let weights: number[] = [];
  let lastComma = -1;
  const nextChunk = () => {
    const fill = CHUNK_TOKENS - tokens.length;
    const pad = tokenizer.padId ?? tokenizer.eosId;
    chunks.ids.push([tokenizer.bosId, ...tokens, tokenizer.eosId, ...Array(fill).fill(pad)]);
    chunks.weights.push([1, ...weights, ...Array(fill).fill(1), 1]);
    [tokens, weights, lastComma] = [[], [], -1];
  };
  for (const [text, weight] of parsePromptAttention(prompt)) {
    if (text === 'BREAK' && weight === -1) {
      nextChunk();
      continue;
    }
    for (const id of tokenizer.tokenIds(text)) {
      if (id === comma) lastComma = tokens.length;
      else if (
        tokens.length === CHUNK_TOKENS &&
        lastComma !== -1 &&
        tokens.length - lastComma <= COMMA_BACKTRACK
      ) {
        const at = lastComma + 1;
        const [movedTokens, movedWeights] = [tokens.slice(at), weights.slice(at)];
        [tokens, weights] = [tokens.slice(0, at), weights.slice(0, at)];
        nextChunk();
        [tokens, weights] = [movedTokens, movedWeights];
      }
      if (tokens.length === CHUNK_TOKENS) nextChunk();
      tokens.push(id);
      weights.push(weight);
    }
  }
  if (tokens.length > 0 || chunks.ids.length === 0) nextChunk();
  return chunks;
}

/**
 * One chunk's text states `[tokens, hidden]` weighted as A1111 does: each token's state times its
 * weight, then everything times (mean before ÷ mean after), so weights shift emphasis without
 * changing the chunk's overall scale.
 */
export function weightStates(states: Float32Array, weights: readonly number[]): Float32Array {
  const hidden = states.length / weights.length;
  const mean = (values: Float32Array) => values.reduce((sum, v) => sum + v, 0) / values.length;
  const before = mean(states);
  const weighted = states.map((v, i) => v * weights[Math.floor(i / hidden)]!);
  const after = mean(weighted);
  return weighted.map((v) => (v * before) / after);
}
