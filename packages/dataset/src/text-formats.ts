import { DatasetError } from './errors.ts';
import type { TextRecord } from './text-records.ts';

export type TextFormat = 'alpaca' | 'sharegpt' | 'messages' | 'text';
export const TEXT_FORMATS: readonly TextFormat[] = ['alpaca', 'sharegpt', 'messages', 'text'];

export type ChatRole = 'system' | 'user' | 'assistant' | 'tool';

export interface ChatMessage {
  readonly role: ChatRole;
  readonly content: string;
}

/** A normalised training example: a conversation, or raw text trained on in full. */
export type TextExample =
  | { readonly kind: 'chat'; readonly messages: readonly ChatMessage[] }
  | { readonly kind: 'text'; readonly text: string };

/** The field that marks each format, in the order `auto` tries them. */
const MARKERS: readonly [TextFormat, string][] = [
  ['sharegpt', 'conversations'],
  ['messages', 'messages'],
  ['alpaca', 'instruction'],
  ['text', 'text'],
];

/** ShareGPT `from` tags (LLaMA-Factory's and the common variants) → chat roles. */
const SHAREGPT_ROLES: Readonly<Record<string, ChatRole>> = {
  human: 'user',
  user: 'user',
  gpt: 'assistant',
  assistant: 'assistant',
  model: 'assistant',
  function_call: 'assistant',
  system: 'system',
  observation: 'tool',
  tool: 'tool',
};

const MESSAGE_ROLES: ReadonlySet<string> = new Set(['system', 'user', 'assistant', 'tool']);

const invalid = (record: TextRecord, message: string): DatasetError =>
  new DatasetError('E_INVALID_RECORD', `${record.where}: ${message}`, {
    path: record.path,
    ...(record.line === undefined ? {} : { line: record.line }),
  });

/** The format a record is in, or undefined when it has none of the marker fields. */
export function detectFormat(record: Record<string, unknown>): TextFormat | undefined {
  return MARKERS.find(([, field]) => field in record)?.[0];
}

function describeFields(record: Record<string, unknown>): string {
  const keys = Object.keys(record);
  return keys.length === 0 ? 'no fields' : `fields ${keys.map((key) => JSON.stringify(key)).join(', ')}`;
}

function requireString(
  record: TextRecord,
  field: string,
  format: TextFormat,
  optional = false,
): string | undefined {
  const value = record.record[field];
  if (value === undefined || value === null) {
    if (optional) return undefined;
    throw invalid(
      record,
      `missing field "${field}" for the ${format} format (this record has ${describeFields(record.record)}).`,
    );
  }
  if (typeof value !== 'string') {
    throw invalid(record, `field "${field}" must be a string, got ${JSON.stringify(value).slice(0, 60)}.`);
  }
  return value;
}

function requireAssistant(record: TextRecord, messages: ChatMessage[], hint: string): ChatMessage[] {
  if (!messages.some((message) => message.role === 'assistant')) {
    throw invalid(record, `no assistant turn to learn from (${hint}).`);
  }
  return messages;
}

/**
 * Turns a record into a training example. With `format: 'auto'` the record's own marker field
 * decides; a record that fits no format, or lacks a field its format needs, fails with the
 * record's line and the field's name.
 */
export function toExample(record: TextRecord, format: TextFormat | 'auto'): TextExample {
  const resolved = format === 'auto' ? detectFormat(record.record) : format;
  if (resolved === undefined) {
    throw invalid(
      record,
      `fits no known format: alpaca needs "instruction" and "output", sharegpt "conversations", messages "messages", text "text"; this record has ${describeFields(record.record)}.`,
    );
  }
  switch (resolved) {
    case 'text':
      return { kind: 'text', text: requireString(record, 'text', 'text')! };
    case 'alpaca':
      return { kind: 'chat', messages: alpacaMessages(record) };
    case 'sharegpt':
      return { kind: 'chat', messages: sharegptMessages(record) };
    case 'messages':
      return { kind: 'chat', messages: openAiMessages(record) };
  }
}

function alpacaMessages(record: TextRecord): ChatMessage[] {
  const instruction = requireString(record, 'instruction', 'alpaca')!;
  const input = requireString(record, 'input', 'alpaca', true);
  const output = requireString(record, 'output', 'alpaca')!;
  const system = requireString(record, 'system', 'alpaca', true);
  const messages: ChatMessage[] = [];
  if (system) messages.push({ role: 'system', content: system });
  const history = record.record['history'];
  if (history !== undefined && history !== null) {
    const pairs = Array.isArray(history) ? history : [];
    if (!Array.isArray(history) || pairs.some((pair) => !isStringPair(pair))) {
      throw invalid(record, 'field "history" must be a list of [instruction, response] string pairs.');
    }
    for (const [question, answer] of pairs as [string, string][]) {
      messages.push({ role: 'user', content: question }, { role: 'assistant', content: answer });
    }
  }
  // LLaMA-Factory joins instruction and input with a newline.
  messages.push({ role: 'user', content: input ? `${instruction}\n${input}` : instruction });
  messages.push({ role: 'assistant', content: output });
  return messages;
}

const isStringPair = (value: unknown): boolean =>
  Array.isArray(value) && value.length === 2 && value.every((part) => typeof part === 'string');

function sharegptMessages(record: TextRecord): ChatMessage[] {
  const turns = record.record['conversations'];
  if (!Array.isArray(turns) || turns.length === 0) {
    throw invalid(record, 'field "conversations" must be a non-empty list of {"from", "value"} turns.');
  }
  const messages: ChatMessage[] = [];
  const system = requireString(record, 'system', 'sharegpt', true);
  if (system) messages.push({ role: 'system', content: system });
  for (const [index, turn] of turns.entries()) {
    const from = (turn as Record<string, unknown> | null)?.['from'];
    const value = (turn as Record<string, unknown> | null)?.['value'];
    if (typeof from !== 'string' || typeof value !== 'string') {
      throw invalid(record, `conversations[${index}] needs string "from" and "value" fields.`);
    }
    const role = SHAREGPT_ROLES[from.toLowerCase()];
    if (role === undefined) {
      throw invalid(
        record,
        `conversations[${index}] has "from": ${JSON.stringify(from)}; use one of ${Object.keys(SHAREGPT_ROLES).join(', ')}.`,
      );
    }
    messages.push({ role, content: value });
  }
  return requireAssistant(record, messages, 'sharegpt needs at least one "gpt" turn');
}

function openAiMessages(record: TextRecord): ChatMessage[] {
  const list = record.record['messages'];
  if (!Array.isArray(list) || list.length === 0) {
    throw invalid(record, 'field "messages" must be a non-empty list of {"role", "content"} objects.');
  }
  const messages = list.map((entry, index): ChatMessage => {
    const role = (entry as Record<string, unknown> | null)?.['role'];
    const content = (entry as Record<string, unknown> | null)?.['content'];
    if (typeof role !== 'string' || !MESSAGE_ROLES.has(role)) {
      throw invalid(
        record,
        `messages[${index}].role must be system, user, assistant or tool; got ${JSON.stringify(role)}.`,
      );
    }
    return { role: role as ChatRole, content: textContent(record, content, index) };
  });
  return requireAssistant(record, messages, 'add a message with "role": "assistant"');
}

/** A string, or OpenAI content parts of which only text parts are kept. */
function textContent(record: TextRecord, content: unknown, index: number): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    const parts = content.map((part) => (part as Record<string, unknown> | null)?.['text']);
    if (parts.every((part) => typeof part === 'string')) return parts.join('');
  }
  throw invalid(
    record,
    `messages[${index}].content must be a string or a list of {"type": "text", "text"} parts.`,
  );
}
