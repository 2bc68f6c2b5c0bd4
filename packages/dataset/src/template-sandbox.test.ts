import { describe, expect, it } from 'vitest';
import { resolveChatTemplate } from './chat-template.ts';

const conversation = [
  { role: 'user' as const, content: 'hi' },
  { role: 'assistant' as const, content: 'hello' },
];
const options = { addGenerationPrompt: false, eosToken: '</s>' };

describe('a chat template from the model or the config renders within budgets', { timeout: 60_000 }, () => {
  it('renders as in this thread, many times over', () => {
    const template = resolveChatTemplate(
      "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}{{ eos_token }}",
      undefined,
    );
    for (let i = 0; i < 200; i++)
      expect(template.render(conversation, options)).toBe('<user>hi<assistant>hello</s>');
  });

  it('stops nested loops that would hang tokenization, and says why, in seconds not forever', () => {
    const template = resolveChatTemplate(
      '{% for i in range(20000) %}{% for j in range(20000) %}x{% endfor %}{% endfor %}',
      undefined,
    );
    const started = performance.now();
    expect(() => template.render(conversation, options)).toThrow(
      expect.objectContaining({
        code: 'E_TEMPLATE',
        message: expect.stringMatching(
          /custom chat template was stopped: it did not finish within 5 s .*built-in template/,
        ),
      }),
    );
    // Not a speed assertion: only that the budget, not the loops (400 million steps), ended it.
    expect(performance.now() - started).toBeLessThan(60_000);
    // The stopped template stays stopped.
    expect(() => template.render(conversation, options)).toThrow(/was stopped/);
  });

  it('refuses a rendering past MAX_RENDERED_BYTES, and reports an error the template raises', () => {
    const huge = resolveChatTemplate("{% for i in range(5000000) %}{{ 'x' }}{% endfor %}", undefined);
    expect(() => huge.render(conversation, options)).toThrow(
      /more than MAX_RENDERED_BYTES|did not finish within/,
    );
    const raising = resolveChatTemplate("{{ raise_exception('only user turns') }}", undefined);
    expect(() => raising.render(conversation, options)).toThrow(
      expect.objectContaining({
        code: 'E_TEMPLATE',
        message: expect.stringMatching(/failed on a conversation .*only user turns/),
      }),
    );
  });
});
