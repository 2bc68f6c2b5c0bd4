import { describe, expect, it } from 'vitest';
import { digitValue, isPyWhitespace, isPyWordChar, pythonFloat, trimPy } from './python.ts';

describe('pythonFloat', () => {
  // Each row was checked against CPython 3.11's float().
  it.each([
    ['1.5', 1.5],
    ['.5', 0.5],
    ['5.', 5],
    ['+.5e-3', 0.0005],
    ['1E-5', 1e-5],
    ['1.e1', 10],
    ['1e400', Number.POSITIVE_INFINITY],
    ['-0', -0],
    ['1_0', 10],
    ['1e1_0', 1e10],
    ['inf', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
    ['\t1\n', 1],
    ['\u00a01', 1],
    ['\u30001\u3000', 1],
    ['\u20071', 1],
    ['\u00851', 1],
    ['١.٥', 1.5],
    ['１２', 12],
    ['١_٢', 12],
    ['0.1', 0.1],
    ['1.5730000000000004', 1.5730000000000004],
  ])('float(%j) = %d', (text, expected) => {
    expect(Object.is(pythonFloat(text), expected)).toBe(true);
  });

  it.each([['nan'], ['+nan'], ['nAn']])('float(%j) is NaN', (text) => {
    expect(pythonFloat(text)).toBeNaN();
  });

  it.each([
    ['\u001c1'],
    ['1\u001c'],
    ['1__0'],
    ['_1'],
    ['1_'],
    ['1_.5'],
    ['1._5'],
    ['1_e1'],
    ['in_f'],
    ['infinit'],
    ['1e'],
    ['.e1'],
    ['.'],
    ['+'],
    [''],
    ['  '],
    ['0x10'],
    ['1,5'],
    ['1.2.3'],
    ['1\u00e9'],
  ])('float(%j) raises ValueError', (text) => {
    expect(pythonFloat(text)).toBeUndefined();
  });

  it('stays fast on a long run of digits that is not a number', () => {
    const started = performance.now();
    expect(pythonFloat(`${'1'.repeat(200_000)}x`)).toBeUndefined();
    expect(pythonFloat(`${'1_'.repeat(100_000)}_`)).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('Unicode classes', () => {
  it('isPyWhitespace is exactly str.isspace()', () => {
    const expected = [
      0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002,
      0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
    ];
    const found: number[] = [];
    for (let code = 0; code <= 0xffff; code += 1) if (isPyWhitespace(code)) found.push(code);
    expect(found).toEqual(expected);
  });

  it.each([
    ['a', true],
    ['_', true],
    ['7', true],
    ['é', true],
    ['漢', true],
    ['٣', true],
    ['Ⅻ', true],
    ['²', true],
    ['\u0301', false], // combining mark: not \w in Python
    ['-', false],
    [' ', false],
    ['😀', false],
  ])('isPyWordChar(%j) = %s', (char, expected) => {
    expect(isPyWordChar(char.codePointAt(0)!)).toBe(expected);
  });

  it.each([
    ['5', 5],
    ['٥', 5],
    ['𝟗', 9], // mathematical digits come in five back-to-back runs of ten
    ['𝟬', 0],
    ['a', -1],
    ['²', -1], // a digit but not a decimal digit: float() rejects it
  ])('digitValue(%j) = %d', (char, expected) => {
    expect(digitValue(char.codePointAt(0)!)).toBe(expected);
  });

  it('trimPy strips Python whitespace only', () => {
    expect(trimPy('\u0085\u001c a \u3000')).toBe('a');
    expect(trimPy('\ufeffa')).toBe('\ufeffa');
  });
});
