import { describe, expect, it } from 'vitest';
import {
  convertDtype,
  float16ToFloat32Bits,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  fromFloat32,
  toFloat32,
} from './convert.ts';

const bitsOf = (value: number) => new Uint32Array(new Float32Array([value]).buffer)[0]!;
const floatOf = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0]!;

describe('float32 → float16 (round to nearest even)', () => {
  it.each([
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff], // largest finite
    [65519.99, 0x7bff], // below the halfway point to 65536
    [65520, 0x7c00], // the tie rounds to even, which is infinity
    [1e6, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // exactly half of it: tie to even (0)
    [2 ** -25 * 1.0000001, 0x0001], // just above half
    [3 * 2 ** -25, 0x0002], // 1.5 subnormal units: tie to even (2)
    [2 ** -26, 0x0000],
    [-(2 ** -30), 0x8000], // underflow keeps the sign
    [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10 → even (1)
    [1 + 3 * 2 ** -11, 0x3c02], // tie → even (1+2^-9)
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // above the tie
    [(2 - 2 ** -11) * 2 ** -15, 0x0400], // largest subnormal rounds up into the smallest normal
  ])('%d → %s', (value, expected) => {
    expect(float32ToFloat16Bits(bitsOf(value))).toBe(expected);
  });

  it('maps every NaN to the quiet NaN, keeping the sign', () => {
    expect(float32ToFloat16Bits(0x7fc00000)).toBe(0x7e00);
    expect(float32ToFloat16Bits(0x7f800001)).toBe(0x7e00); // signalling, payload only in low bits
    expect(float32ToFloat16Bits(0xffc00000)).toBe(0xfe00);
  });
});

describe('float16 → float32 is exact', () => {
  it.each([
    [0x0000, 0],
    [0x8000, -0],
    [0x0001, 2 ** -24],
    [0x03ff, 1023 * 2 ** -24],
    [0x0400, 2 ** -14],
    [0x3c00, 1],
    [0x7bff, 65504],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ])('%s → %d', (bits, expected) => {
    expect(Object.is(floatOf(float16ToFloat32Bits(bits)), expected)).toBe(true);
  });

  it('round-trips all 65,536 float16 values through float32', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const back = float32ToFloat16Bits(float16ToFloat32Bits(bits));
      const nan = (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;
      expect(back).toBe(nan ? (bits & 0x8000) | 0x7e00 : bits);
    }
  });
});

describe('float32 → bfloat16 (round to nearest even)', () => {
  it.each([
    [0x00000000, 0x0000],
    [0x80000000, 0x8000], // -0
    [0x3f800000, 0x3f80], // 1
    [0x3f808000, 0x3f80], // tie → even
    [0x3f818000, 0x3f82], // tie → even (up)
    [0x3f808001, 0x3f81], // above the tie
    [0x7f7fffff, 0x7f80], // max float32 rounds to infinity
    [0x7f800000, 0x7f80], // +inf
    [0xff800000, 0xff80], // -inf
    [0x00000001, 0x0000], // smallest subnormal rounds to 0
    [0x00018000, 0x0002], // subnormal tie → even
    [0x7fc00000, 0x7fc0], // NaN
    [0xffffffff, 0x7fc0], // NaN with payload: canonical, as torch does
  ])('%s → %s', (bits, expected) => {
    expect(float32ToBfloat16Bits(bits)).toBe(expected);
  });
});

describe('bulk conversions', () => {
  const values = new Float32Array([0, -0, 1.5, -65504, 2 ** -24, Infinity, Number.NaN]);

  it('F32 → F16 → F32 keeps values that float16 holds', () => {
    const back = toFloat32(fromFloat32(values, 'F16'), 'F16');
    expect([...back].map((v) => (Number.isNaN(v) ? 'NaN' : Object.is(v, -0) ? '-0' : v))).toEqual([
      0,
      '-0',
      1.5,
      -65504,
      2 ** -24,
      Infinity,
      'NaN',
    ]);
  });

  it('BF16 → F16 rounds once, from the exact float32 value', () => {
    const bf16 = fromFloat32(new Float32Array([1 + 2 ** -7, 3.140625]), 'BF16');
    expect([...new Uint16Array(convertDtype(bf16, 'BF16', 'F16').buffer)]).toEqual([0x3c08, 0x4248]);
  });

  it('F64 → F32 rounds to nearest even', () => {
    const f64 = new Float64Array([1 + 2 ** -24, 1 + 3 * 2 ** -24, 1e300, 0.1]);
    const out = new Float32Array(convertDtype(new Uint8Array(f64.buffer), 'F64', 'F32').buffer);
    expect([...out]).toEqual([1, 1 + 2 ** -22, Infinity, Math.fround(0.1)]);
  });

  it('reads unaligned bytes', () => {
    const bytes = new Uint8Array(9);
    bytes.set(new Uint8Array(new Float32Array([2, 3]).buffer), 1);
    expect([...toFloat32(bytes.subarray(1), 'F32')]).toEqual([2, 3]);
  });

  it.each([
    ['I32', 'F32'],
    ['F32', 'F64'],
    ['F64', 'F16'],
    ['F8_E4M3', 'F32'],
  ] as const)('refuses %s → %s', (from, to) => {
    expect(() => convertDtype(new Uint8Array(8), from, to)).toThrow(
      expect.objectContaining({ code: 'E_UNSUPPORTED_CONVERSION' }),
    );
  });
});
