import { describe, expect, it } from 'vitest';
import { lint } from './lint.ts';
import type { DiagnosticCode, Severity, Span } from './types.ts';

describe('lint', () => {
  it.each<[string, string, DiagnosticCode, Severity, Span]>([
    ['unbalanced bold', '**city, rain', 'unbalanced-emphasis', 'warning', [0, 2]],
    ['unbalanced bracket', 'city, (rain', 'unbalanced-bracket', 'warning', [6, 7]],
    ['stray closer', 'smile :)', 'unbalanced-bracket', 'warning', [7, 8]],
    ['weight A1111 cannot read', '(rain:1.2.3)', 'invalid-weight', 'error', [6, 11]],
    ['network weight A1111 cannot read', '<lora:x:strong>', 'invalid-weight', 'error', [0, 15]],
    ['ambiguous square brackets', '[rain:heavy]', 'ambiguous-brackets', 'warning', [0, 12]],
    ['empty tag', 'a, , b', 'empty-tag', 'warning', [3, 3]],
    ['duplicate tag, any case and markup', 'Cat, **cat**', 'duplicate-tag', 'warning', [5, 12]],
    ['emphasis spanning a comma', '**a, b**', 'emphasis-spans-comma', 'warning', [0, 8]],
    ['BREAK inside brackets', '(a BREAK b)', 'break-in-brackets', 'warning', [3, 8]],
    ['stray backslash', 'a\\b', 'stray-backslash', 'warning', [1, 2]],
    ['parentheses glued to a word', 'name_(series)', 'unescaped-parentheses', 'warning', [5, 13]],
    ['effective weight too high', '((((((((z))))))))', 'weight-out-of-range', 'warning', [0, 17]],
    ['negative weight', '(z:-0.5)', 'weight-out-of-range', 'warning', [0, 8]],
    ['network multiplier too high', '<lora:x:3>', 'weight-out-of-range', 'warning', [0, 10]],
    ['nesting too deep', `${'('.repeat(70)}a`, 'too-deep', 'warning', [64, 65]],
  ])('%s: %j', (_rule, text, code, severity, span) => {
    const found = lint(text).find((diagnostic) => diagnostic.code === code);
    expect(found).toMatchObject({ code, severity, span });
    expect(found!.message).toMatch(new RegExp(`at ${span[0]}\\b`));
  });

  it.each([
    ['**cyberpunk city at night**, neon signs, rain-soaked streets, *cinematic lighting*, ultra-detailed'],
    [
      '(masterpiece:1.2), [blurry], \\(o\\)_\\(o\\), long_hair, <lora:film:0.7>, [cat|dog], [a:b:0.5] BREAK c',
    ],
    [''],
  ])('is silent on a clean caption: %j', (text) => {
    expect(lint(text)).toEqual([]);
  });

  it('orders diagnostics by position and names the first occurrence of a duplicate', () => {
    const diagnostics = lint('cat, **dog, cat**, (x');
    expect(diagnostics.map((diagnostic) => diagnostic.code)).toEqual([
      'emphasis-spans-comma',
      'duplicate-tag',
      'unbalanced-bracket',
    ]);
    expect(diagnostics[1]!.message).toBe('Tag "cat" at 12 repeats the one at 0. Remove one of them.');
  });
});
