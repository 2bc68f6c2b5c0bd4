import { describe, expect, it } from 'vitest';
import { hostTensor } from '../host-tensor.ts';
import { runGraph, valuesOf } from '../testing.ts';
import { Graph } from './graph.ts';
import { serializeModel } from './onnx.ts';
import { add } from './ops/elementwise.ts';
import { reshape } from './ops/layout.ts';
import { OPSET } from './opsets.ts';
import { ProtoWriter } from './protobuf.ts';

/** Just enough protobuf decoding to inspect what the serialiser wrote: field → raw values. */
type Field = bigint | Uint8Array;
function decode(bytes: Uint8Array): Map<number, Field[]> {
  const fields = new Map<number, Field[]>();
  let at = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = bytes[at++]!;
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
    }
  };
  while (at < bytes.length) {
    const tag = Number(varint());
    const [field, wire] = [tag >> 3, tag & 7];
    let value: Field;
    if (wire === 0) value = varint();
    else if (wire === 2) {
      const length = Number(varint());
      value = bytes.subarray(at, at + length);
      at += length;
    } else if (wire === 5) {
      value = bytes.subarray(at, at + 4);
      at += 4;
    } else throw new Error(`wire type ${wire}`);
    fields.set(field, [...(fields.get(field) ?? []), value]);
  }
  return fields;
}
const text = (v: Field | undefined) => new TextDecoder().decode(v as Uint8Array);
const sub = (v: Field | undefined) => decode(v as Uint8Array);

describe('ProtoWriter', () => {
  it.each([
    [0, [0x08, 0x00]],
    [150, [0x08, 0x96, 0x01]],
    [2 ** 31, [0x08, 0x80, 0x80, 0x80, 0x80, 0x08]],
    [-1, [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]],
  ])('encodes varint %d as protobuf does', (value, expected) => {
    expect([...new ProtoWriter().int(1, value).finish()]).toEqual(expected);
  });

  it('length-prefixes nested messages and bytes', () => {
    const inner = new ProtoWriter().string(1, 'hi');
    expect([...new ProtoWriter().message(2, inner).finish()]).toEqual([0x12, 0x04, 0x0a, 0x02, 0x68, 0x69]);
  });

  it('writes floats little-endian and packs repeated ints', () => {
    expect([...new ProtoWriter().float(2, 1).finish()]).toEqual([0x15, 0x00, 0x00, 0x80, 0x3f]);
    expect([...new ProtoWriter().packedInts(8, [1, 300]).finish()]).toEqual([0x42, 0x03, 0x01, 0xac, 0x02]);
  });
});

describe('serializeModel', () => {
  const graph = new Graph('demo');
  const x = graph.input('x', 'float32', ['batch', 6]);
  const w = graph.initializer('w', 'float16', [2, 3], {
    path: '/data/model.safetensors',
    offset: 1234,
    length: 12,
  });
  graph.output(reshape(x, [0, 2, -1]), 'y');
  graph.output(w, 'w_out');
  const model = decode(serializeModel(graph, { externalLocation: () => 'weights.safetensors' }));

  it('writes IR version 10 and the default-domain opset', () => {
    expect(model.get(1)).toEqual([10n]);
    const opset = sub(model.get(8)?.[0]);
    expect(text(opset.get(1)?.[0])).toBe('');
    expect(opset.get(2)).toEqual([BigInt(OPSET)]);
  });

  it('writes external initializers as location / offset / length with data_location EXTERNAL', () => {
    const g = sub(model.get(7)?.[0]);
    const tensors = (g.get(5) ?? []).map(sub);
    const external = tensors.find((t) => text(t.get(8)?.[0]) === 'w')!;
    expect(external.get(2)).toEqual([10n]); // FLOAT16
    expect(external.get(14)).toEqual([1n]);
    expect(external.get(9)).toBeUndefined();
    const entries = (external.get(13) ?? []).map(sub).map((e) => [text(e.get(1)?.[0]), text(e.get(2)?.[0])]);
    expect(entries).toEqual([
      ['location', 'weights.safetensors'],
      ['offset', '1234'],
      ['length', '12'],
    ]);
  });

  it('writes named dims as dim_param and static ones as dim_value', () => {
    const g = sub(model.get(7)?.[0]);
    const input = sub(g.get(11)?.[0]);
    const shape = sub(sub(sub(input.get(2)?.[0]).get(1)?.[0]).get(2)?.[0]);
    const dims = (shape.get(1) ?? []).map(sub);
    expect(text(dims[0]!.get(2)?.[0])).toBe('batch');
    expect(dims[1]!.get(1)).toEqual([6n]);
  });

  it('writes negative ints (Reshape targets) as ten-byte varints that onnxruntime reads back', async () => {
    const g = new Graph();
    const input = g.input('x', 'float32', [2, 3]);
    g.output(add(reshape(input, [-1]), 1), 'y');
    const out = await runGraph(g, { x: hostTensor('float32', [2, 3], Float32Array.of(0, 1, 2, 3, 4, 5)) });
    expect(out['y']!.shape).toEqual([6]);
    expect(valuesOf(out['y'])).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('writes a contrib-domain node with its domain and opset import, and onnxruntime runs it', async () => {
    const g = new Graph('contrib');
    const x = g.input('x', 'float32', [3]);
    const [y] = g.addNode('Gelu', [x], [{ dtype: 'float32', shape: [3] }], {}, undefined, 'com.microsoft');
    g.output(y!, 'y');
    const written = decode(serializeModel(g));
    const opsets = (written.get(8) ?? []).map(sub).map((o) => [text(o.get(1)?.[0]), o.get(2)?.[0]]);
    expect(opsets).toEqual([
      ['', BigInt(OPSET)],
      ['com.microsoft', 1n],
    ]);
    const nodes = (sub(written.get(7)?.[0]).get(1) ?? []).map(sub);
    expect(nodes.map((n) => text(n.get(7)?.[0] ?? new Uint8Array()))).toEqual(['com.microsoft', '']);
    const out = await runGraph(g, { x: hostTensor('float32', [3], Float32Array.of(-1, 0, 2)) });
    // Exact GELU, x·Φ(x): Φ(−1) = 0.158655, Φ(2) = 0.977250.
    const expected = [-0.158655, 0, 1.9545];
    valuesOf(out['y']).forEach((v, i) => {
      expect(v).toBeCloseTo(expected[i]!, 4);
    });
  });

  it('refuses an operator set models do not import', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [3]);
    expect(() =>
      g.addNode('Gelu', [x], [{ dtype: 'float32', shape: [3] }], {}, undefined, 'org.example' as never),
    ).toThrow(/domain 'org.example' is not one of the operator sets/);
  });
});
