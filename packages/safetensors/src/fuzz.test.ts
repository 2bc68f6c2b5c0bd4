import { describe, expect, it } from 'vitest';
import { dtypeBits } from './dtype.ts';
import { SafetensorsError } from './errors.ts';
import { deserialize } from './reader.ts';
import { serialize } from './writer.ts';

/** mulberry32: a tiny seeded generator, so a failure reproduces from its seed. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const SEEDS = [
  serialize({}),
  serialize(
    {
      'a.weight': { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
      'a.bias': { dtype: 'F16', shape: [3], data: new Uint16Array([1, 2, 3]) },
      empty: { dtype: 'I64', shape: [0, 4], data: new Uint8Array(0) },
      scalar: { dtype: 'BF16', shape: [], data: new Uint16Array([0x3f80]) },
      packed: { dtype: 'F4', shape: [4], data: new Uint8Array([0x12, 0x34]) },
    },
    { format: 'pt', ss_network_dim: '4' },
  ),
  serialize({ 'lora_unet_x.alpha': { dtype: 'F16', shape: [], data: new Uint16Array([0x4400]) } }, {}),
];

/** Text fragments that turn valid JSON into near-valid JSON. */
const FRAGMENTS = [
  '{',
  '}',
  '[',
  ']',
  ',',
  ':',
  '"',
  '\\',
  '0',
  '-1',
  '1e3',
  '18446744073709551616',
  'null',
  '"F32"',
  '"X"',
  ' ',
];

type Mutation = (bytes: Uint8Array, random: () => number) => Uint8Array;

const pick = (random: () => number, length: number) => Math.floor(random() * length);

const MUTATIONS: Mutation[] = [
  function flipBit(bytes, random) {
    const out = bytes.slice();
    if (out.length > 0) out[pick(random, out.length)]! ^= 1 << pick(random, 8);
    return out;
  },
  function setByte(bytes, random) {
    const out = bytes.slice();
    if (out.length > 0) out[pick(random, out.length)] = pick(random, 256);
    return out;
  },
  function truncate(bytes, random) {
    return bytes.subarray(0, pick(random, bytes.length + 1));
  },
  function append(bytes, random) {
    const out = new Uint8Array(bytes.length + 1 + pick(random, 16));
    out.set(bytes);
    return out;
  },
  function editLength(bytes, random) {
    const out = bytes.slice();
    if (out.length >= 8) {
      const view = new DataView(out.buffer);
      const n = view.getBigUint64(0, true);
      const deltas = [-8n, -1n, 1n, 8n, 1n << 32n, 1n << 63n];
      view.setBigUint64(0, BigInt.asUintN(64, n + deltas[pick(random, deltas.length)]!), true);
    }
    return out;
  },
  function editHeaderText(bytes, random) {
    if (bytes.length < 8) return bytes;
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    if (8 + n > bytes.length) return bytes;
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    const at = pick(random, text.length + 1);
    const cut = pick(random, 3);
    const fragment = FRAGMENTS[pick(random, FRAGMENTS.length)]!;
    // Replace a digit run now and then, to reach the offset and shape checks.
    const edited =
      random() < 0.5
        ? text.replace(/\d+/g, (digits) => (random() < 0.2 ? String(pick(random, 64)) : digits))
        : text.slice(0, at) + fragment + text.slice(at + cut);
    const json = new TextEncoder().encode(edited);
    const out = new Uint8Array(8 + json.length + bytes.length - 8 - n);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    out.set(bytes.subarray(8 + n), 8 + json.length);
    return out;
  },
];

describe('fuzz: mutated files are read correctly or rejected with SafetensorsError', () => {
  it('survives 12,000 seeded mutations', () => {
    const random = generator(0x5afe7e45);
    let accepted = 0;
    const rejected = new Map<string, number>();
    for (let round = 0; round < 12_000; round++) {
      let bytes = SEEDS[round % SEEDS.length]!;
      const steps = 1 + pick(random, 3);
      for (let step = 0; step < steps; step++)
        bytes = MUTATIONS[pick(random, MUTATIONS.length)]!(bytes, random);
      let file: ReturnType<typeof deserialize>;
      try {
        file = deserialize(bytes);
      } catch (error) {
        if (!(error instanceof SafetensorsError)) {
          throw new Error(
            `round ${round}: ${String(error)} escaped for bytes ${Buffer.from(bytes).toString('hex')}`,
          );
        }
        rejected.set(error.code, (rejected.get(error.code) ?? 0) + 1);
        continue;
      }
      accepted++;
      // An accepted file must be internally consistent: contiguous tensors that exactly fill it.
      let end = 0;
      for (const [name, info] of file.tensors) {
        expect(info.byteOffset).toBe(end);
        const elements = info.shape.reduce((product, dim) => product * dim, 1);
        expect(info.byteLength * 8).toBe(elements * dtypeBits(info.dtype));
        expect(file.read(name).length).toBe(info.byteLength);
        end += info.byteLength;
      }
      expect(file.dataStart + end).toBe(bytes.length);
    }
    // The mutations reach both outcomes and many distinct checks.
    expect(accepted).toBeGreaterThan(300);
    expect(rejected.size).toBeGreaterThanOrEqual(10);
  });
});
