import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHeader } from './header.ts';
import { deserialize } from './reader.ts';
import { serialize, type TensorData, writeSafetensors } from './writer.ts';

const f32 = (...values: number[]) => new Float32Array(values);
const ascii = (text: string) => [...text].map((c) => c.charCodeAt(0));

describe('serialize matches the crate byte for byte', () => {
  it('test_empty: no tensors', () => {
    expect([...serialize({})]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
  });

  it('test_empty: {"framework":"pt"} metadata', () => {
    expect([...serialize({}, { framework: 'pt' })]).toEqual([
      40,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      ...ascii('{"__metadata__":{"framework":"pt"}}'),
      32,
      32,
      32,
      32,
      32,
    ]);
  });

  it('test_serialization: attn.0 F32 [1,2,3]', () => {
    const out = serialize({ 'attn.0': { dtype: 'F32', shape: [1, 2, 3], data: f32(0, 1, 2, 3, 4, 5) } });
    expect([...out]).toEqual([
      64,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      ...ascii('{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'),
      ...[0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64],
    ]);
  });

  it('test_serialization_forced_alignement: attn0 [1,1,2,3] pads with 7 spaces', () => {
    const out = serialize({ attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data: f32(0, 1, 2, 3, 4, 5) } });
    const json = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
    expect(json.length).toBe(65);
    expect([...out.subarray(0, 8 + 72)]).toEqual([
      72,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      ...ascii(json),
      32,
      32,
      32,
      32,
      32,
      32,
      32,
    ]);
  });
});

describe('serialize ordering and escaping (crate `prepare`)', () => {
  it('sorts by descending dtype alignment, then by name as UTF-8 bytes', () => {
    // UTF-8 puts U+FF21 (EF BC A1) before U+1F600 (F0 9F 98 80); JavaScript's default UTF-16
    // comparison (0xFF21 vs 0xD83D) would put the emoji first.
    const byte = (): TensorData => ({ dtype: 'U8', shape: [1], data: new Uint8Array(1) });
    const tensors: Record<string, TensorData> = {
      '\u{1F600}': byte(),
      '\uFF21': byte(),
      b: byte(),
      a: { dtype: 'BOOL', shape: [1], data: new Uint8Array(1) },
      z: { dtype: 'F16', shape: [1], data: new Uint8Array(2) },
      y: { dtype: 'U64', shape: [1], data: new Uint8Array(8) },
      x: { dtype: 'F4', shape: [2], data: new Uint8Array(1) },
      w: { dtype: 'C64', shape: [1], data: new Uint8Array(8) },
      v: { dtype: 'I64', shape: [1], data: new Uint8Array(8) },
    };
    const header = deserialize(serialize(tensors));
    expect([...header.tensors.keys()]).toEqual(['y', 'v', 'w', 'z', 'b', '\uFF21', '\u{1F600}', 'x', 'a']);
    expect([...header.tensors.values()].map((t) => t.byteOffset)).toEqual([0, 8, 16, 24, 26, 27, 28, 29, 30]);
  });

  it.each([
    ['"', '\\"'],
    ['\\', '\\\\'],
    ['\n\t\r\b\f', '\\n\\t\\r\\b\\f'],
    ['\u0000\u001f\u000b', '\\u0000\\u001f\\u000b'],
    ['/\u007f\u2028é😀', '/\u007f\u2028é😀'],
  ])('escapes %j as serde_json does', (name, escaped) => {
    const out = serialize({ [name]: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } });
    expect(new TextDecoder().decode(out.subarray(8)).trimEnd()).toBe(
      `{"${escaped}":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`,
    );
    expect([...parseHeader(out).tensors.keys()]).toEqual([name]);
  });

  it('writes metadata first, even empty, and omits it when absent', () => {
    const t = { t: { dtype: 'U8', shape: [], data: new Uint8Array(1) } } as const;
    const text = (bytes: Uint8Array) =>
      new TextDecoder().decode(bytes.subarray(8, 8 + parseHeader(bytes).headerLength)).trimEnd();
    expect(text(serialize(t, {}))).toBe(
      '{"__metadata__":{},"t":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}',
    );
    expect(text(serialize(t))).toBe('{"t":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}');
  });

  it('round-trips every dtype through deserialize', () => {
    const tensors = new Map<string, TensorData>([
      ['bf', { dtype: 'BF16', shape: [2, 2], data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]) }],
      ['f6', { dtype: 'F6_E3M2', shape: [4], data: new Uint8Array([9, 10, 11]) }],
      ['i64', { dtype: 'I64', shape: [], data: new BigInt64Array([-5n]) }],
    ]);
    const file = deserialize(serialize(tensors, { k: 'v' }));
    expect(file.metadata).toEqual({ k: 'v' });
    expect([...file.read('bf')]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect([...file.read('f6')]).toEqual([9, 10, 11]);
    expect(new BigInt64Array(file.read('i64').slice().buffer)[0]).toBe(-5n);
  });
});

describe('serialize rejects tensors the crate rejects', () => {
  it.each<[string, Record<string, TensorData>, Record<string, string> | undefined, string]>([
    [
      'a tensor named __metadata__ (safetensors#849)',
      { __metadata__: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } },
      undefined,
      'E_RESERVED_NAME',
    ],
    [
      'test_serialization_fp4_invalid: F4 [1,2] with 2 bytes',
      { t: { dtype: 'F4', shape: [1, 2], data: new Uint8Array(2) } },
      undefined,
      'E_INVALID_TENSOR_VIEW',
    ],
    [
      'F4 [1,3]',
      { t: { dtype: 'F4', shape: [1, 3], data: new Uint8Array(2) } },
      undefined,
      'E_MISALIGNED_SLICE',
    ],
    [
      'a negative dimension',
      { t: { dtype: 'U8', shape: [-1], data: new Uint8Array(0) } },
      undefined,
      'E_INVALID_TENSOR_VIEW',
    ],
    [
      'an unknown dtype',
      { t: { dtype: 'F128' as 'F32', shape: [1], data: new Uint8Array(16) } },
      undefined,
      'E_UNKNOWN_DTYPE',
    ],
    [
      'a lone surrogate in a name',
      { '\ud800': { dtype: 'U8', shape: [0], data: new Uint8Array(0) } },
      undefined,
      'E_INVALID_STRING',
    ],
    ['a non-string metadata value', {}, { n: 1 as unknown as string }, 'E_INVALID_METADATA'],
    [
      'test_invalid_header_size_serialization: 1e8 bytes of metadata',
      {},
      { a: 'a'.repeat(100_000_000) },
      'E_HEADER_TOO_LARGE',
    ],
  ])('%s', (_, tensors, metadata, code) => {
    expect(() => serialize(tensors, metadata)).toThrow(expect.objectContaining({ code }));
  });

  it('rejects a name given twice', () => {
    const t = { dtype: 'U8', shape: [0], data: new Uint8Array(0) } as const;
    expect(() =>
      serialize([
        ['a', t],
        ['a', t],
      ]),
    ).toThrow(expect.objectContaining({ code: 'E_DUPLICATE_KEY' }));
  });
});

describe('writeSafetensors', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'safetensors-write-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes the same bytes as serialize, calling lazy tensors in file order', async () => {
    const calls: string[] = [];
    const big = new Uint8Array(3 << 20).map((_, i) => i % 251);
    const path = join(dir, 'lazy.safetensors');
    await writeSafetensors(
      path,
      {
        small: {
          dtype: 'U8',
          shape: [3],
          data: () => {
            calls.push('small');
            return new Uint8Array([1, 2, 3]);
          },
        },
        big: {
          dtype: 'F32',
          shape: [big.length / 4],
          data: async () => {
            calls.push('big');
            return big;
          },
        },
        mid: { dtype: 'F16', shape: [2], data: new Uint16Array([7, 8]) },
      },
      { format: 'pt' },
    );
    const expected = serialize(
      {
        small: { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) },
        big: { dtype: 'F32', shape: [big.length / 4], data: big },
        mid: { dtype: 'F16', shape: [2], data: new Uint16Array([7, 8]) },
      },
      { format: 'pt' },
    );
    expect(Buffer.compare(await readFile(path), expected)).toBe(0);
    expect(calls).toEqual(['big', 'small']);
  });

  it('leaves the old file and no temporary file behind when a tensor fails', async () => {
    const path = join(dir, 'atomic.safetensors');
    await writeFile(path, 'previous');
    const failing = writeSafetensors(path, {
      a: { dtype: 'F32', shape: [1 << 20], data: new Uint8Array(4 << 20) },
      b: { dtype: 'U8', shape: [4], data: new Uint8Array(3) },
    });
    await expect(failing).rejects.toMatchObject({ code: 'E_INVALID_TENSOR_VIEW' });
    expect(await readFile(path, 'utf8')).toBe('previous');
    expect((await readdir(dir)).filter((name) => name.includes('atomic'))).toEqual(['atomic.safetensors']);
  });
});
