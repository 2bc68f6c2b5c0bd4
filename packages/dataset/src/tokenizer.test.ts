import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUILTIN_TEMPLATES, resolveChatTemplate } from './chat-template.ts';
import { tempDir, tinyBpeTokenizer, writeText } from './test-fixtures.ts';
import { TextTokenizer } from './tokenizer.ts';

const { tokenizerJson, tokenizerConfig } = tinyBpeTokenizer();
const tokenizer = TextTokenizer.fromJson(tokenizerJson, tokenizerConfig);

describe('TextTokenizer', () => {
  it('encodes byte-level BPE with merges and round-trips text', () => {
    const ids = tokenizer.encode('hello the world', false);
    expect(ids.length).toBeLessThan('hello the world'.length); // 'he', 'll', 'Ġthe' merged
    expect(tokenizer.decode(ids)).toBe('hello the world');
  });

  it('resolves special ids and adds BOS only with special tokens', () => {
    expect(tokenizer.eosToken).toBe('</s>');
    expect([tokenizer.bosId, tokenizer.eosId, tokenizer.padId, tokenizer.unkId]).toEqual([
      261, 262, 265, 260,
    ]);
    expect(tokenizer.encode('hi', true)[0]).toBe(tokenizer.bosId);
    expect(tokenizer.encode('hi', false)[0]).not.toBe(tokenizer.bosId);
    expect(tokenizer.encode('<|im_start|>hi', false)[0]).toBe(263);
    // A special token by its spelling (generation stops at end-of-turn tokens this way).
    expect([
      tokenizer.tokenId('<|im_start|>'),
      tokenizer.tokenId('</s>'),
      tokenizer.tokenId('<|eot_id|>'),
    ]).toEqual([263, 262, undefined]);
  });

  it('falls back to EOS for padding and accepts AddedToken-style config entries', () => {
    const other = TextTokenizer.fromJson(tokenizerJson, { eos_token: { content: '</s>', special: true } });
    expect([other.eosId, other.padId, other.bosId]).toEqual([262, 262, undefined]);
  });

  it('maps WordLevel out-of-vocabulary words to the unk id (tokenizers.js gives undefined)', () => {
    const wordLevel = {
      normalizer: null,
      pre_tokenizer: { type: 'WhitespaceSplit' },
      post_processor: null,
      decoder: null,
      added_tokens: [],
      model: { type: 'WordLevel', vocab: { hello: 0, world: 1, '<unk>': 2, '</s>': 3 }, unk_token: '<unk>' },
    };
    const withUnk = TextTokenizer.fromJson(wordLevel, { eos_token: '</s>', unk_token: '<unk>' });
    expect(withUnk.encode('hello brave world', false)).toEqual([0, 2, 1]);
    const withoutUnk = TextTokenizer.fromJson(wordLevel, { eos_token: '</s>' });
    expect(() => withoutUnk.encode('hello brave world', false)).toThrow(/"brave" is not in the vocabulary/);
  });

  it('loads a model folder, preferring chat_template.jinja', async () => {
    const dir = await tempDir();
    await writeText(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
    await writeText(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({ ...tokenizerConfig, chat_template: 'from config' }),
    );
    expect((await TextTokenizer.fromDir(dir)).chatTemplate).toBe('from config');
    await writeText(join(dir, 'chat_template.jinja'), 'from file');
    const loaded = await TextTokenizer.fromDir(dir);
    expect(loaded.chatTemplate).toBe('from file');
    expect(loaded.fingerprint).not.toBe(tokenizer.fingerprint);
  });

  it('picks the default of several named templates', () => {
    const named = TextTokenizer.fromJson(tokenizerJson, {
      ...tokenizerConfig,
      chat_template: [
        { name: 'tool_use', template: 'tools' },
        { name: 'default', template: 'plain' },
      ],
    });
    expect(named.chatTemplate).toBe('plain');
  });

  it.each([
    ['no eos_token', tokenizerJson, {}, /eos_token/],
    ['an eos_token outside the vocabulary', tokenizerJson, { eos_token: '<nope>' }, /eos_token/],
    [
      'a broken tokenizer.json',
      { model: { type: 'Nope' } },
      { eos_token: '</s>' },
      /tokenizer.json could not be loaded/,
    ],
  ])('refuses %s with TOKENIZER', (_name, json, config, message) => {
    expect(() => TextTokenizer.fromJson(json, config)).toThrow(message);
  });

  it.each([
    ['tokenizer.json missing', {}, 'E_NOT_FOUND'],
    ['tokenizer.json not JSON', { 'tokenizer.json': '{oops' }, 'E_TOKENIZER'],
  ])('fromDir: %s → %s', async (_name, files, code) => {
    const dir = await tempDir();
    for (const [file, content] of Object.entries(files)) await writeText(join(dir, file), content);
    await expect(TextTokenizer.fromDir(dir)).rejects.toMatchObject({ code });
  });
});

describe('chat templates', () => {
  const messages = [
    { role: 'system' as const, content: 'Be brief.' },
    { role: 'user' as const, content: 'Hi' },
    { role: 'assistant' as const, content: 'Hello!' },
  ];
  const tokens = { bosToken: '<s>', eosToken: '</s>' };

  it.each([
    [
      'chatml',
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n',
    ],
    [
      'llama3',
      '<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>',
    ],
    ['alpaca', '<s>Be brief.\n\n### Instruction:\nHi\n\n### Response:\nHello!</s>\n\n'],
  ])('%s renders the known format', (name, expected) => {
    expect(
      resolveChatTemplate(name, undefined).render(messages, { addGenerationPrompt: false, ...tokens }),
    ).toBe(expected);
  });

  it('adds the generation prompt', () => {
    const chatml = resolveChatTemplate('chatml', undefined);
    expect(chatml.render(messages.slice(0, 2), { addGenerationPrompt: true, ...tokens })).toMatch(
      /<\|im_start\|>assistant\n$/,
    );
  });

  it('alpaca uses the standard preamble without a system message', () => {
    const text = resolveChatTemplate('alpaca', undefined).render(messages.slice(1), {
      addGenerationPrompt: false,
      ...tokens,
    });
    expect(text.startsWith('<s>Below is an instruction')).toBe(true);
  });

  it('prefers a requested template, then the model one', () => {
    expect(resolveChatTemplate('chatml', '{{ "model" }}').name).toBe('chatml');
    expect(
      resolveChatTemplate(undefined, '{{ "model" }}').render([], {
        addGenerationPrompt: false,
        eosToken: '',
      }),
    ).toBe('model');
    expect(resolveChatTemplate('{{ "custom" }}', undefined).name).toBe('custom');
  });

  it.each([
    [
      'an unknown name',
      'vicuna',
      undefined,
      /Unknown chat template "vicuna"; use one of chatml, llama3, alpaca/,
    ],
    ['no template at all', undefined, undefined, /no chat_template/],
    ['bad Jinja', '{% for x in %}', undefined, /does not parse/],
  ])('fails on %s with TEMPLATE', (_name, requested, model, message) => {
    expect(() => resolveChatTemplate(requested, model)).toThrow(message);
  });

  it('reports a template that raises, naming the roles', () => {
    const strict = resolveChatTemplate(
      "{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}",
      undefined,
    );
    expect(() => strict.render(messages, { addGenerationPrompt: false, ...tokens })).toThrow(
      /roles \[system, user, assistant\]: user first/,
    );
  });

  it('lists exactly the built-ins the README documents', () => {
    expect(Object.keys(BUILTIN_TEMPLATES)).toEqual(['chatml', 'llama3', 'alpaca']);
  });
});
