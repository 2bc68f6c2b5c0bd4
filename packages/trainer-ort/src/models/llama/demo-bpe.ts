/**
 * A compact byte-level BPE learner (GPT-2's scheme, as Hugging Face `tokenizers` trains it) and
 * the `tokenizer.json` it makes, for the demo model. Every byte is a token, so any text encodes;
 * the learned merges only make common words shorter.
 */

/** GPT-2's pre-tokenizer split, the one `ByteLevel` with `use_regex: true` applies before BPE. */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's byte → printable character table, in which byte-level vocabularies are written. */
export function byteLevelAlphabet(): string[] {
  const printable = (byte: number) =>
    (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || (byte >= 174 && byte <= 255);
  let extra = 0;
  return Array.from({ length: 256 }, (_, byte) =>
    String.fromCodePoint(printable(byte) ? byte : 256 + extra++),
  );
}

export interface LearnedBpe {
  /** Token → id: the 256 byte characters, then one token per merge. */
  vocab: Map<string, number>;
  /** `"left right"`, in the order they were learned (= their rank). */
  merges: string[];
}

/**
 * Learns up to `maxMerges` merges from `texts`: each round merges the most frequent adjacent
 * pair (ties go to the smaller pair string, so the result depends only on the input) and stops
 * when no pair occurs twice.
 */
export function learnByteLevelBpe(texts: Iterable<string>, maxMerges: number): LearnedBpe {
  const alphabet = byteLevelAlphabet();
  const encoder = new TextEncoder();
  const frequency = new Map<string, number>();
  for (const text of texts) {
    for (const piece of text.match(GPT2_SPLIT) ?? []) {
      const word = Array.from(encoder.encode(piece), (byte) => alphabet[byte]!).join('\u0000');
      frequency.set(word, (frequency.get(word) ?? 0) + 1);
    }
  }
  const words = [...frequency].map(([word, count]) => ({ symbols: word.split('\u0000'), count }));
  const vocab = new Map(alphabet.map((char, id) => [char, id]));
  const merges: string[] = [];
  while (merges.length < maxMerges) {
    const pairs = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const pair = `${symbols[i]} ${symbols[i + 1]}`;
        pairs.set(pair, (pairs.get(pair) ?? 0) + count);
      }
    }
    let best: [string, number] | undefined;
    for (const entry of pairs) {
      if (!best || entry[1] > best[1] || (entry[1] === best[1] && entry[0] < best[0])) best = entry;
    }
    if (!best || best[1] < 2) break;
    const [left, right] = best[0].split(' ') as [string, string];
    const merged = left + right;
    merges.push(best[0]);
    if (!vocab.has(merged)) vocab.set(merged, vocab.size);
    for (const word of words) {
      const out: string[] = [];
      const { symbols } = word;
      for (let i = 0; i < symbols.length; i++) {
        if (symbols[i] === left && symbols[i + 1] === right) {
          out.push(merged);
          i++;
        } else {
          out.push(symbols[i]!);
        }
      }
      word.symbols = out;
    }
  }
  return { vocab, merges };
}

/**
 * A `tokenizer.json` (Hugging Face `tokenizers` format) for a learned BPE with `specialTokens`
 * appended after the vocabulary. Like Qwen2's, it adds no BOS: chat templates bring their own
 * special tokens.
 */
export function byteLevelTokenizerJson(bpe: LearnedBpe, specialTokens: readonly string[]): object {
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specialTokens.map((content, i) => ({
      id: bpe.vocab.size + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(bpe.vocab),
      merges: bpe.merges,
    },
  };
}
