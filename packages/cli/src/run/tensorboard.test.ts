import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { crc32c, maskedCrc32c, TensorBoardWriter } from './tensorboard.ts';

// An independent reader: bit-by-bit CRC-32C (no table) and a minimal protobuf decoder.
function referenceCrc32c(bytes: Uint8Array): number {
  let crc = ~0 >>> 0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}
const referenceMask = (crc: number) => (((crc >>> 15) | ((crc << 17) >>> 0)) + 0xa282ead8) % 2 ** 32;

interface Field {
  field: number;
  wire: number;
  value: bigint | Uint8Array | number;
}
function decodeProto(bytes: Uint8Array): Field[] {
  const fields: Field[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const varint = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const byte = bytes[at++]!;
      result |= BigInt(byte & 0x7f) << shift;
      shift += 7n;
      if (byte < 0x80) return result;
    }
  };
  while (at < bytes.length) {
    const key = Number(varint());
    const field = key >> 3;
    const wire = key & 7;
    if (wire === 0) fields.push({ field, wire, value: varint() });
    else if (wire === 1) {
      fields.push({ field, wire, value: view.getFloat64(at, true) });
      at += 8;
    } else if (wire === 5) {
      fields.push({ field, wire, value: view.getFloat32(at, true) });
      at += 4;
    } else if (wire === 2) {
      const length = Number(varint());
      fields.push({ field, wire, value: Uint8Array.from(bytes.subarray(at, at + length)) });
      at += length;
    } else throw new Error(`unexpected wire type ${wire}`);
  }
  return fields;
}

function readRecords(file: Uint8Array): Uint8Array[] {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const records: Uint8Array[] = [];
  let at = 0;
  while (at < file.length) {
    const length = Number(view.getBigUint64(at, true));
    expect(view.getUint32(at + 8, true)).toBe(referenceMask(referenceCrc32c(file.subarray(at, at + 8))));
    const data = file.subarray(at + 12, at + 12 + length);
    expect(view.getUint32(at + 12 + length, true)).toBe(referenceMask(referenceCrc32c(data)));
    records.push(data);
    at += 12 + length + 4;
  }
  expect(at).toBe(file.length);
  return records;
}

describe('CRC-32C', () => {
  it('matches the TensorBoard test vectors', () => {
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(maskedCrc32c(new TextEncoder().encode('\x1a\x11CRC test, one two'))).toBe(0x5794d08a);
  });
  it('matches a bitwise implementation on random data', () => {
    const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919) % 251);
    expect(crc32c(data)).toBe(referenceCrc32c(data));
  });
});

describe('TensorBoardWriter', () => {
  it('writes a tfevents file whose frames, CRCs and Event fields read back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-'));
    const writer = new TensorBoardWriter(dir, 1_700_000_000_500);
    writer.scalars(
      3,
      [
        { tag: 'loss/current', value: 0.25 },
        { tag: 'lr', value: 1e-4 },
      ],
      1_700_000_001,
    );
    writer.scalars(4, [{ tag: 'loss/current', value: 0.125 }], 1_700_000_002);
    writer.close();

    const [name] = readdirSync(dir);
    expect(name).toBe(basename(writer.path));
    expect(name).toMatch(/^events\.out\.tfevents\.1700000000\./);
    const records = readRecords(readFileSync(writer.path)).map(decodeProto);
    expect(records).toHaveLength(3);
    expect(records[0]).toEqual([
      { field: 1, wire: 1, value: 1_700_000_000.5 },
      { field: 3, wire: 2, value: new TextEncoder().encode('brain.Event:2') },
    ]);
    const [wallTime, step, summary] = records[1]!;
    expect(wallTime).toEqual({ field: 1, wire: 1, value: 1_700_000_001 });
    expect(step).toEqual({ field: 2, wire: 0, value: 3n });
    expect(summary?.field).toBe(5);
    const values = decodeProto(summary!.value as Uint8Array).map((v) => decodeProto(v.value as Uint8Array));
    expect(values).toEqual([
      [
        { field: 1, wire: 2, value: new TextEncoder().encode('loss/current') },
        { field: 2, wire: 5, value: 0.25 },
      ],
      [
        { field: 1, wire: 2, value: new TextEncoder().encode('lr') },
        { field: 2, wire: 5, value: Math.fround(1e-4) },
      ],
    ]);
  });

  it("writes images as Summary.Image and text as a string tensor for TensorBoard's text plugin", () => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-'));
    const writer = new TensorBoardWriter(dir, 1_700_000_000_000);
    const png = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 1, 2, 3);
    writer.images(10, [{ tag: 'samples/0', png, width: 64, height: 32 }], 1_700_000_003);
    writer.text(10, 'samples', '### Hi\nThe capital of Egypt is Cairo.', 1_700_000_004);
    writer.close();
    const [, imageEvent, textEvent] = readRecords(readFileSync(writer.path)).map(decodeProto);
    const firstValue = (event: Field[]) =>
      decodeProto(decodeProto(event.find((f) => f.field === 5)!.value as Uint8Array)[0]!.value as Uint8Array);
    expect(imageEvent!.find((f) => f.field === 2)!.value).toBe(10n);
    const image = firstValue(imageEvent!);
    expect(image[0]).toEqual({ field: 1, wire: 2, value: new TextEncoder().encode('samples/0') });
    expect(decodeProto(image.find((f) => f.field === 4)!.value as Uint8Array)).toEqual([
      { field: 1, wire: 0, value: 32n }, // height
      { field: 2, wire: 0, value: 64n }, // width
      { field: 3, wire: 0, value: 3n }, // RGB
      { field: 4, wire: 2, value: png },
    ]);
    const text = firstValue(textEvent!);
    expect(text[0]).toEqual({ field: 1, wire: 2, value: new TextEncoder().encode('samples') });
    const metadata = decodeProto(text.find((f) => f.field === 9)!.value as Uint8Array);
    expect(decodeProto(metadata[0]!.value as Uint8Array)).toEqual([
      { field: 1, wire: 2, value: new TextEncoder().encode('text') },
    ]);
    expect(decodeProto(text.find((f) => f.field === 8)!.value as Uint8Array)).toEqual([
      { field: 1, wire: 0, value: 7n }, // DT_STRING
      { field: 2, wire: 2, value: new Uint8Array() }, // a scalar's shape
      { field: 8, wire: 2, value: new TextEncoder().encode('### Hi\nThe capital of Egypt is Cairo.') },
    ]);
  });
});
