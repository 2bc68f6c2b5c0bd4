import { describe, expect, it } from 'vitest';
import { DEFAULT_TEMPLATE } from './default-template.ts';
import { applyTemplate, checkTemplate } from './template.ts';

describe('applyTemplate', () => {
  it.each([
    [DEFAULT_TEMPLATE, 'neon city', '**neon city**, high quality, detailed'],
    // Bold over several tags is split per tag, as the caption lint wants.
    [DEFAULT_TEMPLATE, 'rainy street, neon city', '**rainy street**, **neon city**, high quality, detailed'],
    // Core first, mood last, whatever the template order.
    ['*moody*, {caption} ,  **subject**', 'cat', '**subject**, cat, *moody*'],
    ['{caption}, {caption}', 'a', 'a, a'],
  ])('%s with %j → %j', (template, caption, text) => expect(applyTemplate(template, { caption })).toBe(text));
});

describe('checkTemplate', () => {
  it.each([
    ['**{subject}**', /\{subject\}, which is not a placeholder; the one available is \{caption\}/],
    ['{}', /\{\}, which is not a placeholder/],
    ['high quality', /has no \{caption\}, so every image would get the same caption/],
  ])('rejects %j', (template, message) => {
    expect(() => checkTemplate(template)).toThrow(
      expect.objectContaining({ code: 'E_USAGE', message: expect.stringMatching(message) }),
    );
  });

  it('accepts the default', () => expect(() => checkTemplate(DEFAULT_TEMPLATE)).not.toThrow());
});
