import type { ChatTemplate } from './chat-template.ts';
import { DatasetError } from './errors.ts';
import type { ChatMessage, TextExample } from './text-formats.ts';
import type { TextTokenizer } from './tokenizer.ts';

/** Label of a token the loss ignores (PyTorch's CrossEntropyLoss `ignore_index`). */
export const IGNORE_INDEX = -100;

export interface TokenizeOptions {
  /** Needed for chat examples. */
  readonly template?: ChatTemplate;
  readonly maxSeqLen: number;
  /** Learn the prompt tokens too (default false: only responses are learned). */
  readonly trainOnPrompt?: boolean;
}

export interface TokenizedExample {
  readonly inputIds: number[];
  /** Aligned with inputIds (the model shifts them), IGNORE_INDEX where nothing is learned. */
  readonly labels: number[];
  /** Tokens before truncation to maxSeqLen. */
  readonly fullLength: number;
}

interface Segment {
  readonly text: string;
  readonly learned: boolean;
}

/**
 * Splits a rendered conversation into prompt and response segments. Each assistant turn spans
 * from the end of `render(messages before it, add_generation_prompt)` to the end of
 * `render(messages up to it)`; both must be prefixes of the whole rendering, which holds for
 * every chat template that appends turns, and is checked.
 */
function chatSegments(
  messages: readonly ChatMessage[],
  template: ChatTemplate,
  tokenizer: TextTokenizer,
): Segment[] {
  const tokens = { bosToken: tokenizer.bosToken, eosToken: tokenizer.eosToken };
  const full = template.render(messages, { addGenerationPrompt: false, ...tokens });
  const segments: Segment[] = [];
  let cursor = 0;
  for (const [index, message] of messages.entries()) {
    if (message.role !== 'assistant') continue;
    const before = template.render(messages.slice(0, index), { addGenerationPrompt: true, ...tokens });
    const through = template.render(messages.slice(0, index + 1), { addGenerationPrompt: false, ...tokens });
    const start = before.length;
    const end = through.length;
    if (!full.startsWith(before) || !full.startsWith(through) || start < cursor || end < start) {
      throw new DatasetError(
        'E_TEMPLATE',
        `The ${template.name} chat template renders turn ${index + 1} differently depending on what follows, so the response tokens cannot be located; use a built-in template (\`template: chatml\`).`,
      );
    }
    segments.push({ text: full.slice(cursor, start), learned: false });
    segments.push({ text: full.slice(start, end), learned: true });
    cursor = end;
  }
  segments.push({ text: full.slice(cursor), learned: false });
  return segments.filter((segment) => segment.text !== '');
}

/**
 * Tokens and labels of one example. Chat: rendered with the template (special tokens come from
 * the template, as transformers' `apply_chat_template` does), prompt labels masked unless
 * `trainOnPrompt`, EOS appended to each response that lacks it. Text: learned in full, with the
 * tokenizer's own special tokens and a final EOS. Then truncated to `maxSeqLen`.
 */
export function tokenizeExample(
  example: TextExample,
  tokenizer: TextTokenizer,
  options: TokenizeOptions,
): TokenizedExample {
  const inputIds: number[] = [];
  const labels: number[] = [];
  const push = (ids: readonly number[], learned: boolean) => {
    for (const id of ids) {
      inputIds.push(id);
      labels.push(learned ? id : IGNORE_INDEX);
    }
  };
  if (example.kind === 'text') {
    const ids = tokenizer.encode(example.text, true);
    if (ids.at(-1) !== tokenizer.eosId) ids.push(tokenizer.eosId);
    push(ids, true);
  } else {
    if (!options.template) {
      throw new DatasetError('E_TEMPLATE', 'A chat example needs a chat template; pass `template`.');
    }
    for (const segment of chatSegments(example.messages, options.template, tokenizer)) {
      const ids = tokenizer.encode(segment.text, false);
      if (segment.learned && !ids.includes(tokenizer.eosId)) ids.push(tokenizer.eosId);
      push(ids, segment.learned || options.trainOnPrompt === true);
    }
  }
  const fullLength = inputIds.length;
  inputIds.length = Math.min(fullLength, options.maxSeqLen);
  labels.length = inputIds.length;
  return { inputIds, labels, fullLength };
}
