import type { Dtype } from './dtype.ts';
import { SafetensorsError } from './errors.ts';

/** The float dtypes that can be converted to and from float32. */
export type FloatDtype = 'F16' | 'BF16' | 'F32';

/**
 * float32 → float16 bits, rounding to nearest even like PyTorch's `.half()`: overflow gives
 * ±inf, tiny values become subnormals or ±0, and every NaN becomes the quiet NaN 0x7E00 with
 * its sign kept.
 */
export function float32ToFloat16Bits(bits32: number): number {
  const sign = (bits32 >>> 16) & 0x8000;
  const exponent = (bits32 >>> 23) & 0xff;
  const mantissa = bits32 & 0x7fffff;
  if (exponent === 0xff) return sign | (mantissa === 0 ? 0x7c00 : 0x7e00);
  const half = exponent - 127 + 15;
  if (half >= 0x1f) return sign | 0x7c00;
  if (half <= 0) {
    // Below 2^-25 even the smallest subnormal (2^-24) is more than twice as far as 0.
    if (half < -10) return sign;
    const full = mantissa | 0x800000;
    const shift = 14 - half;
    const kept = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const tie = 1 << (shift - 1);
    return sign | (rest > tie || (rest === tie && (kept & 1) === 1) ? kept + 1 : kept);
  }
  const kept = (half << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent, up to infinity.
  return sign | (rest > 0x1000 || (rest === 0x1000 && (kept & 1) === 1) ? kept + 1 : kept);
}

/** float16 bits → float32 bits; exact (every float16 is a float32), NaN payloads kept. */
export function float16ToFloat32Bits(bits16: number): number {
  const sign = (bits16 & 0x8000) << 16;
  const exponent = (bits16 >>> 10) & 0x1f;
  const mantissa = bits16 & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent - 15 + 127) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // Subnormal: normalise the mantissa into a float32 normal number.
  let shift = 0;
  let m = mantissa;
  while ((m & 0x400) === 0) {
    m <<= 1;
    shift++;
  }
  return (sign | ((127 - 15 + 1 - shift) << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

/** float32 → bfloat16 bits, rounding to nearest even like PyTorch; every NaN becomes 0x7FC0. */
export function float32ToBfloat16Bits(bits32: number): number {
  if ((bits32 & 0x7f800000) === 0x7f800000 && (bits32 & 0x7fffff) !== 0) return 0x7fc0;
  return ((bits32 + 0x7fff + ((bits32 >>> 16) & 1)) >>> 16) & 0xffff;
}

let float16Table: Uint32Array | undefined;

/** All 65,536 float16 → float32 results: one table lookup per element in bulk conversion. */
function float16Lookup(): Uint32Array {
  if (float16Table === undefined) {
    float16Table = new Uint32Array(0x10000);
    for (let bits = 0; bits < 0x10000; bits++) float16Table[bits] = float16ToFloat32Bits(bits);
  }
  return float16Table;
}

/** Decodes F32 / F16 / BF16 / F64 bytes (F64 rounded to nearest) into float32 values. */
export function toFloat32(data: Uint8Array, dtype: Dtype): Float32Array {
  switch (dtype) {
    case 'F32':
      return view(Float32Array, data, 4).slice();
    case 'F64':
      return Float32Array.from(view(Float64Array, data, 8));
    case 'F16': {
      const table = float16Lookup();
      const source = view(Uint16Array, data, 2);
      const out = new Uint32Array(source.length);
      for (let i = 0; i < source.length; i++) out[i] = table[source[i]!]!;
      return new Float32Array(out.buffer);
    }
    case 'BF16': {
      const source = view(Uint16Array, data, 2);
      const out = new Uint32Array(source.length);
      for (let i = 0; i < source.length; i++) out[i] = source[i]! << 16;
      return new Float32Array(out.buffer);
    }
    default:
      throw unsupported(dtype, 'F32');
  }
}

/** Encodes float32 values as F32 / F16 / BF16 bytes, rounding to nearest even. */
export function fromFloat32(values: Float32Array, dtype: FloatDtype): Uint8Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  switch (dtype) {
    case 'F32':
      return new Uint8Array(values.slice().buffer);
    case 'F16': {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < bits.length; i++) out[i] = float32ToFloat16Bits(bits[i]!);
      return new Uint8Array(out.buffer);
    }
    case 'BF16': {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < bits.length; i++) out[i] = float32ToBfloat16Bits(bits[i]!);
      return new Uint8Array(out.buffer);
    }
    default:
      throw unsupported('F32', dtype);
  }
}

/**
 * Converts tensor bytes between F32, F16 and BF16 (both ways, one rounding to nearest even) and
 * from F64 to F32. The same dtype returns a copy.
 */
export function convertDtype(data: Uint8Array, from: Dtype, to: Dtype): Uint8Array {
  if (from === to) return data.slice();
  if (!isFloat(to) || !(isFloat(from) || (from === 'F64' && to === 'F32'))) throw unsupported(from, to);
  return fromFloat32(toFloat32(data, from), to);
}

function isFloat(dtype: Dtype): dtype is FloatDtype {
  return dtype === 'F16' || dtype === 'BF16' || dtype === 'F32';
}

/** The elements of `data` as a typed array; copies only when the bytes are not aligned. */
function view<T>(
  Kind: new (buffer: ArrayBufferLike, byteOffset: number, length: number) => T,
  data: Uint8Array,
  size: number,
): T {
  if (data.byteLength % size !== 0) {
    throw new SafetensorsError(
      'E_BUFFER_SIZE',
      `${data.byteLength} bytes is not a whole number of ${size}-byte elements`,
    );
  }
  const source = data.byteOffset % size === 0 ? data : data.slice();
  return new Kind(source.buffer, source.byteOffset, source.byteLength / size);
}

function unsupported(from: Dtype, to: Dtype): SafetensorsError {
  return new SafetensorsError(
    'E_UNSUPPORTED_CONVERSION',
    `cannot convert ${from} to ${to}; supported: F32 ↔ F16 ↔ BF16 and F64 → F32`,
  );
}
