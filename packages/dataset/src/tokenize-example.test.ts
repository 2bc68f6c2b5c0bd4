import { describe, expect, it } from 'vitest';
import { resolveChatTemplate } from './chat-template.ts';
import { tinyBpeTokenizer } from './test-fixtures.ts';
import type { ChatMessage } from './text-formats.ts';
import { IGNORE_INDEX, tokenizeExample } from './tokenize-example.ts';
import { TextTokenizer } from './tokenizer.ts';

const { tokenizerJson, tokenizerConfig } = tinyBpeTokenizer();
const tokenizer = TextTokenizer.fromJson(tokenizerJson, tokenizerConfig);
const chatml = resolveChatTemplate('chatml', undefined);
const chat = (...messages: ChatMessage[]) => ({ kind: 'chat' as const, messages });
const learnedText = (ids: number[], labels: number[]) =>
  tokenizer.decode(ids.filter((_, i) => labels[i] !== IGNORE_INDEX));

describe('tokenizeExample', () => {
  it('masks the prompt and learns the response plus EOS', () => {
    const { inputIds, labels } = tokenizeExample(
      chat({ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }),
      tokenizer,
      { template: chatml, maxSeqLen: 512 },
    );
    expect(tokenizer.decode(inputIds)).toBe(
      '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n</s>',
    );
    expect(learnedText(inputIds, labels)).toBe('hello<|im_end|>\n</s>');
    expect(inputIds.at(-1)).toBe(tokenizer.eosId);
    // Learned labels equal their input ids; everything else is ignored.
    for (const [i, label] of labels.entries())
      expect(label === IGNORE_INDEX || label === inputIds[i]).toBe(true);
  });

  it('learns every assistant turn of a multi-turn conversation and nothing else', () => {
    const { inputIds, labels } = tokenizeExample(
      chat(
        { role: 'system', content: 'sys' },
        { role: 'user', content: 'q1' },
        { role: 'assistant', content: 'a1' },
        { role: 'user', content: 'q2' },
        { role: 'assistant', content: 'a2' },
      ),
      tokenizer,
      { template: chatml, maxSeqLen: 512 },
    );
    expect(learnedText(inputIds, labels)).toBe('a1<|im_end|>\n</s>a2<|im_end|>\n</s>');
  });

  it('does not add a second EOS when the template already ends responses with it', () => {
    const alpaca = resolveChatTemplate('alpaca', undefined);
    const { inputIds, labels } = tokenizeExample(
      chat({ role: 'user', content: 'do' }, { role: 'assistant', content: 'done' }),
      tokenizer,
      { template: alpaca, maxSeqLen: 512 },
    );
    expect(inputIds.filter((id) => id === tokenizer.eosId)).toHaveLength(1);
    expect(learnedText(inputIds, labels)).toBe('done</s>\n\n');
    expect(inputIds[0]).toBe(tokenizer.bosId); // from the template's bos_token, not added twice
    expect(inputIds.filter((id) => id === tokenizer.bosId)).toHaveLength(1);
  });

  it('trains on the prompt too with trainOnPrompt', () => {
    const { inputIds, labels } = tokenizeExample(
      chat({ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }),
      tokenizer,
      { template: chatml, maxSeqLen: 512, trainOnPrompt: true },
    );
    expect(labels).toEqual(inputIds);
  });

  it('learns raw text in full with BOS and EOS', () => {
    const { inputIds, labels } = tokenizeExample({ kind: 'text', text: 'the hello' }, tokenizer, {
      maxSeqLen: 512,
    });
    expect(inputIds[0]).toBe(tokenizer.bosId);
    expect(inputIds.at(-1)).toBe(tokenizer.eosId);
    expect(labels).toEqual(inputIds);
    expect(tokenizer.decode(inputIds, true)).toBe('the hello');
  });

  it('truncates to maxSeqLen and reports the full length', () => {
    const result = tokenizeExample({ kind: 'text', text: 'abcdefghij' }, tokenizer, { maxSeqLen: 4 });
    expect(result.inputIds).toHaveLength(4);
    expect(result.labels).toHaveLength(4);
    expect(result.fullLength).toBe(12);
  });

  it('refuses a template whose turns change with what follows', () => {
    const unstable = resolveChatTemplate(
      '{% for m in messages %}{{ m.content }}{% if loop.last %}END{% endif %}{% endfor %}',
      undefined,
    );
    expect(() =>
      tokenizeExample(
        chat(
          { role: 'user', content: 'a' },
          { role: 'assistant', content: 'b' },
          { role: 'user', content: 'c' },
        ),
        tokenizer,
        { template: unstable, maxSeqLen: 64 },
      ),
    ).toThrow(expect.objectContaining({ code: 'E_TEMPLATE', message: expect.stringMatching(/turn 2/) }));
  });

  it('needs a template for chat examples', () => {
    expect(() =>
      tokenizeExample(chat({ role: 'assistant', content: 'x' }), tokenizer, { maxSeqLen: 8 }),
    ).toThrow(expect.objectContaining({ code: 'E_TEMPLATE' }));
  });
});
