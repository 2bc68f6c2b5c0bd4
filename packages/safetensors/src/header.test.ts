import { describe, expect, it } from 'vitest';
import type { SafetensorsErrorCode } from './errors.ts';
import { parseHeader, safeParseHeader } from './header.ts';

/** 8-byte little-endian length, then the header bytes, then the data bytes. */
function file(header: string | Uint8Array, data: number | Uint8Array = 0, length?: bigint): Uint8Array {
  const json = typeof header === 'string' ? new TextEncoder().encode(header) : header;
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}

function codeOf(run: () => unknown): SafetensorsErrorCode | 'ok' {
  try {
    run();
    return 'ok';
  } catch (error) {
    const code = (error as { code?: SafetensorsErrorCode }).code;
    if (code === undefined) throw error;
    return code;
  }
}

const F32_2x2 = '"dtype":"F32","shape":[2,2]';
const tensors10 = Array.from({ length: 10 }, (_, i) => `"t${i}":{${F32_2x2},"data_offsets":[0,16]}`).join(
  ',',
);

describe('parseHeader accepts what the crate accepts', () => {
  it('reads the crate test_serialization vector', () => {
    const bytes = new Uint8Array([
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101,
      34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34,
      100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0,
      0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
    const header = parseHeader(bytes);
    expect(header.headerLength).toBe(64);
    expect(header.dataStart).toBe(72);
    expect(header.dataLength).toBe(24);
    expect([...header.tensors]).toEqual([
      ['attn.0', { dtype: 'F32', shape: [1, 2, 3], byteOffset: 0, byteLength: 24 }],
    ]);
    expect(header.metadata).toEqual({});
  });

  it.each([
    ['a 0-rank tensor', '{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}', 4],
    ['an empty tensor', '{"e":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]}}', 0],
    ['whitespace after the object', '{}   ', 0],
    ['whitespace before the object (test_whitespace_leading_padded_header)', '\t\n{}\r ', 0],
    ['null metadata', '{"__metadata__":null}', 0],
    [
      'unknown fields inside a tensor entry',
      `{"t":{${F32_2x2},"data_offsets":[0,16],"x":{"y":[1,2.5e3]}}}`,
      16,
    ],
    ['a tensor entry written as a sequence', '{"t":["U8",[3],[0,3]]}', 3],
    ['-0 as an integer', '{"t":{"dtype":"U8","shape":[-0],"data_offsets":[0,0]}}', 0],
    [
      'several empty tensors at the same offset',
      '{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"I64","shape":[0,5],"data_offsets":[0,0]}}',
      0,
    ],
    ['F4 with a whole number of bytes', '{"f":{"dtype":"F4","shape":[2,2],"data_offsets":[0,2]}}', 2],
  ])('accepts %s', (_, header, dataBytes) => {
    expect(() => parseHeader(file(header, dataBytes))).not.toThrow();
  });

  it('orders tensors by offset whatever the JSON order, and keeps metadata', () => {
    const header = parseHeader(
      file(
        '{"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]},"__metadata__":{"format":"pt","__proto__":"x"},"a":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}}',
        3,
      ),
    );
    expect([...header.tensors.keys()]).toEqual(['a', 'b']);
    expect(header.metadata).toEqual(
      Object.fromEntries([
        ['format', 'pt'],
        ['__proto__', 'x'],
      ]),
    );
    expect(Object.getPrototypeOf(header.metadata)).toBe(Object.prototype);
  });

  it('decodes JSON escapes in names', () => {
    const header = parseHeader(
      file('{"a\\u00e9\\ud83d\\ude00\\n\\/":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'),
    );
    expect([...header.tensors.keys()]).toEqual(['aé😀\n/']);
  });
});

describe('parseHeader rejects what the crate rejects, with a specific code', () => {
  it.each<[string, Uint8Array, SafetensorsErrorCode]>([
    ['test_header_too_small: empty input', new Uint8Array(0), 'E_HEADER_TOO_SMALL'],
    ['7 bytes', new Uint8Array(7), 'E_HEADER_TOO_SMALL'],
    ['test_invalid_header_length: N=60 in an 8-byte file', file('', 0, 60n), 'E_INVALID_HEADER_LENGTH'],
    ['test_header_too_large', new Uint8Array([60, 0, 0, 0, 0, 0xff, 0xff, 0xff]), 'E_HEADER_TOO_LARGE'],
    ['N = 100,000,001', file('', 0, 100_000_001n), 'E_HEADER_TOO_LARGE'],
    ['N = 2^64 - 1', file('', 0, (1n << 64n) - 1n), 'E_HEADER_TOO_LARGE'],
    ['N = 100,000,000 past the end', file('', 0, 100_000_000n), 'E_INVALID_HEADER_LENGTH'],
    ['test_invalid_header_non_utf8', file(new Uint8Array([0xff])), 'E_HEADER_NOT_UTF8'],
    ['an overlong UTF-8 encoding', file(new Uint8Array([0x7b, 0xc0, 0xaf, 0x7d])), 'E_HEADER_NOT_UTF8'],
    ['test_invalid_header_not_json: "{"', file('{'), 'E_HEADER_NOT_JSON'],
    ['a JSON array', file('[]'), 'E_HEADER_NOT_JSON'],
    ['trailing garbage after the object', file('{}x'), 'E_HEADER_NOT_JSON'],
    ['a trailing comma', file('{"__metadata__":{},}'), 'E_HEADER_NOT_JSON'],
    ['a raw control character in a string', file('{"a\u0001":1}'), 'E_HEADER_NOT_JSON'],
    ['a lone surrogate escape', file('{"\\ud800":{}}'), 'E_HEADER_NOT_JSON'],
    ['a single-quoted key', file("{'a':1}"), 'E_HEADER_NOT_JSON'],
    [
      'nesting deeper than 128',
      file(`{"t":{"x":${'['.repeat(200)}${']'.repeat(200)}}}`),
      'E_HEADER_NOT_JSON',
    ],
    [
      'duplicate tensor names (safetensors#401)',
      file(`{"a":{${F32_2x2},"data_offsets":[0,16]},"a":{${F32_2x2},"data_offsets":[16,32]}}`, 32),
      'E_DUPLICATE_KEY',
    ],
    ['duplicate __metadata__', file('{"__metadata__":{},"__metadata__":{}}'), 'E_DUPLICATE_KEY'],
    ['a duplicate metadata key', file('{"__metadata__":{"a":"1","a":"2"}}'), 'E_DUPLICATE_KEY'],
    [
      'a duplicate field in a tensor',
      file('{"t":{"dtype":"U8","dtype":"U8","shape":[0],"data_offsets":[0,0]}}'),
      'E_DUPLICATE_KEY',
    ],
    [
      'an unknown dtype',
      file('{"t":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}', 16),
      'E_UNKNOWN_DTYPE',
    ],
    [
      'a lowercase dtype',
      file('{"t":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}', 4),
      'E_UNKNOWN_DTYPE',
    ],
    [
      'safetensors#278: an unquoted metadata value',
      file('{"__metadata__":{"unquoted_int":0}}'),
      'E_INVALID_METADATA',
    ],
    ['metadata that is an array', file('{"__metadata__":["a"]}'), 'E_INVALID_METADATA'],
    ['a tensor entry that is a string', file('{"t":"x"}'), 'E_INVALID_TENSOR_ENTRY'],
    ['a missing shape', file('{"t":{"dtype":"U8","data_offsets":[0,0]}}'), 'E_INVALID_TENSOR_ENTRY'],
    [
      'a negative dimension',
      file('{"t":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}'),
      'E_INVALID_TENSOR_ENTRY',
    ],
    [
      'a fractional dimension',
      file('{"t":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}', 1),
      'E_INVALID_TENSOR_ENTRY',
    ],
    [
      'a dimension of 2^64',
      file('{"t":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,0]}}'),
      'E_INVALID_TENSOR_ENTRY',
    ],
    [
      'three data_offsets',
      file('{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1,1]}}', 1),
      'E_INVALID_TENSOR_ENTRY',
    ],
    ['a sequence entry of two fields', file('{"t":["U8",[1]]}'), 'E_INVALID_TENSOR_ENTRY'],
    ['test_json_attack: ten tensors at [0,16]', file(`{${tensors10}}`, 16), 'E_INVALID_OFFSET'],
    ['a first tensor not at 0', file(`{"t":{${F32_2x2},"data_offsets":[4,20]}}`, 20), 'E_INVALID_OFFSET'],
    [
      'a gap between tensors',
      file(`{"a":{${F32_2x2},"data_offsets":[0,16]},"b":{${F32_2x2},"data_offsets":[20,36]}}`, 36),
      'E_INVALID_OFFSET',
    ],
    [
      'overlapping tensors',
      file(`{"a":{${F32_2x2},"data_offsets":[0,16]},"b":{${F32_2x2},"data_offsets":[8,24]}}`, 24),
      'E_INVALID_OFFSET',
    ],
    [
      'end before begin',
      file(
        '{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"c":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}}',
      ),
      'E_INVALID_OFFSET',
    ],
    [
      'test_invalid_info: I32 [2,2] in 4 bytes',
      file('{"t":{"dtype":"I32","shape":[2,2],"data_offsets":[0,4]}}', 4),
      'E_TENSOR_INVALID_INFO',
    ],
    [
      'test_validation_overflow: [2, 2^64 - 2]',
      file('{"t":{"dtype":"F32","shape":[2,18446744073709551614],"data_offsets":[0,16]}}', 16),
      'E_VALIDATION_OVERFLOW',
    ],
    [
      'test_validation_overflow: [2, 2^63 - 1]',
      file('{"t":{"dtype":"F32","shape":[2,9223372036854775807],"data_offsets":[0,16]}}', 16),
      'E_VALIDATION_OVERFLOW',
    ],
    [
      'an overflow before a zero dimension',
      file('{"t":{"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}'),
      'E_VALIDATION_OVERFLOW',
    ],
    [
      'a zero-size tensor with a dimension above 2^53',
      file('{"t":{"dtype":"U8","shape":[0,9007199254740993],"data_offsets":[0,0]}}'),
      'E_VALIDATION_OVERFLOW',
    ],
    [
      'test_serialization_fp4_misaligned: F4 [1,3]',
      file('{"t":{"dtype":"F4","shape":[1,3],"data_offsets":[0,2]}}', 2),
      'E_MISALIGNED_SLICE',
    ],
    [
      'F6_E2M3 [3]',
      file('{"t":{"dtype":"F6_E2M3","shape":[3],"data_offsets":[0,3]}}', 3),
      'E_MISALIGNED_SLICE',
    ],
    [
      'test_metadata_incomplete_buffer: trailing bytes',
      file(`{"t":{${F32_2x2},"data_offsets":[0,16]}}`, 18),
      'E_INCOMPLETE_BUFFER',
    ],
    [
      'test_metadata_incomplete_buffer: 14 of 16 bytes',
      file(`{"t":{${F32_2x2},"data_offsets":[0,16]}}`, 14),
      'E_INCOMPLETE_BUFFER',
    ],
    ['data bytes with no tensors', file('{}', 1), 'E_INCOMPLETE_BUFFER'],
  ])('%s', (_, bytes, code) => {
    expect(codeOf(() => parseHeader(bytes))).toBe(code);
  });

  it.each([
    [
      file(`{"a":{${F32_2x2},"data_offsets":[0,16]},"b":{${F32_2x2},"data_offsets":[20,36]}}`, 36),
      /"b".*\[20, 36\].*ends at 16/,
    ],
    [
      file('{"t":{"dtype":"I32","shape":[2,2],"data_offsets":[0,4]}}', 4),
      /"t" \(I32 \[2, 2\]\) needs 16 bytes.*span 4/,
    ],
    [file(`{"t":{${F32_2x2},"data_offsets":[0,16]}}`, 18), /16 data bytes.*has 18: 2 trailing/],
    [file('{"__metadata__":{"n":1}}'), /__metadata__\["n"\] is the number 1/],
    [file('{"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}', 4), /"w" has unknown dtype "F33"/],
  ])('names the tensor and the numbers: %#', (bytes, message) => {
    expect(() => parseHeader(bytes)).toThrow(message);
  });
});

describe('safeParseHeader', () => {
  it('returns the header or the SafetensorsError instead of throwing', () => {
    const good = safeParseHeader(file('{}'));
    expect(good.success && good.value.tensors.size).toBe(0);
    const bad = safeParseHeader(file('{', 0));
    expect(bad.success ? 'parsed' : bad.error.code).toBe('E_HEADER_NOT_JSON');
  });
});
