import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

// TensorBoard event files: TFRecord frames (u64 length, masked CRC-32C of the length, data,
// masked CRC-32C of the data) holding `Event` protobufs. Plain `simple_value` scalars and
// `Summary.Image` images are enough: TensorBoard migrates them on read. Text is a string tensor
// tagged for the text plugin, as `tf.summary.text` writes it.

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = CRC32C_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** TensorFlow's CRC mask, so that CRCs of data containing CRCs stay well distributed. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

export function tfRecord(data: Uint8Array): Uint8Array {
  const frame = new Uint8Array(8 + 4 + data.length + 4);
  const view = new DataView(frame.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(frame.subarray(0, 8)), true);
  frame.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return frame;
}

class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];

  private varint(value: number | bigint): void {
    let v = BigInt(value);
    const out: number[] = [];
    do {
      const byte = Number(v & 0x7fn);
      v >>= 7n;
      out.push(v > 0n ? byte | 0x80 : byte);
    } while (v > 0n);
    this.chunks.push(Uint8Array.from(out));
  }

  double(field: number, value: number): this {
    this.varint((field << 3) | 1);
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setFloat64(0, value, true);
    this.chunks.push(bytes);
    return this;
  }

  float(field: number, value: number): this {
    this.varint((field << 3) | 5);
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    this.chunks.push(bytes);
    return this;
  }

  int64(field: number, value: number): this {
    this.varint(field << 3);
    this.varint(value);
    return this;
  }

  bytes(field: number, value: Uint8Array | string): this {
    const data = typeof value === 'string' ? new TextEncoder().encode(value) : value;
    this.varint((field << 3) | 2);
    this.varint(data.length);
    this.chunks.push(data);
    return this;
  }

  finish(): Uint8Array {
    return Buffer.concat(this.chunks);
  }
}

export interface Scalar {
  tag: string;
  value: number;
}

/** Encodes an `Event` with a `Summary` of scalar values. */
export function scalarEvent(wallTime: number, step: number, scalars: readonly Scalar[]): Uint8Array {
  const summary = new ProtoWriter();
  for (const { tag, value } of scalars)
    summary.bytes(1, new ProtoWriter().bytes(1, tag).float(2, value).finish());
  return new ProtoWriter().double(1, wallTime).int64(2, step).bytes(5, summary.finish()).finish();
}

export interface Image {
  tag: string;
  /** The PNG file. */
  png: Uint8Array;
  width: number;
  height: number;
}

/** Encodes an `Event` with a `Summary.Image` per image (RGB, colorspace 3). */
export function imageEvent(wallTime: number, step: number, images: readonly Image[]): Uint8Array {
  const summary = new ProtoWriter();
  for (const { tag, png, width, height } of images) {
    const image = new ProtoWriter().int64(1, height).int64(2, width).int64(3, 3).bytes(4, png).finish();
    summary.bytes(1, new ProtoWriter().bytes(1, tag).bytes(4, image).finish());
  }
  return new ProtoWriter().double(1, wallTime).int64(2, step).bytes(5, summary.finish()).finish();
}

/** DataType DT_STRING of TensorFlow's `TensorProto`. */
const DT_STRING = 7;

/** Encodes an `Event` with one text summary: a scalar string tensor for the `text` plugin (Markdown). */
export function textEvent(wallTime: number, step: number, tag: string, text: string): Uint8Array {
  const metadata = new ProtoWriter().bytes(1, new ProtoWriter().bytes(1, 'text').finish()).finish();
  const tensor = new ProtoWriter().int64(1, DT_STRING).bytes(2, new Uint8Array()).bytes(8, text).finish();
  const value = new ProtoWriter().bytes(1, tag).bytes(9, metadata).bytes(8, tensor).finish();
  const summary = new ProtoWriter().bytes(1, value).finish();
  return new ProtoWriter().double(1, wallTime).int64(2, step).bytes(5, summary).finish();
}

export function fileVersionEvent(wallTime: number): Uint8Array {
  return new ProtoWriter().double(1, wallTime).bytes(3, 'brain.Event:2').finish();
}

/**
 * Appends scalar, image and text events to `<logdir>/events.out.tfevents.<time>.<host>.<pid>.<uid>`, the name
 * TensorBoard looks for. Each record is flushed to disk so a crashed run keeps its curves.
 */
export class TensorBoardWriter {
  readonly path: string;
  private fd: number | undefined;

  constructor(logdir: string, startTime = Date.now()) {
    const seconds = Math.floor(startTime / 1000);
    const uid = randomBytes(4).toString('hex');
    this.path = join(
      logdir,
      `events.out.tfevents.${String(seconds).padStart(10, '0')}.${hostname()}.${process.pid}.${uid}`,
    );
    this.fd = openSync(this.path, 'a');
    this.append(fileVersionEvent(startTime / 1000));
  }

  scalars(step: number, scalars: readonly Scalar[], wallTime = Date.now() / 1000): void {
    this.append(scalarEvent(wallTime, step, scalars));
  }

  images(step: number, images: readonly Image[], wallTime = Date.now() / 1000): void {
    this.append(imageEvent(wallTime, step, images));
  }

  text(step: number, tag: string, text: string, wallTime = Date.now() / 1000): void {
    this.append(textEvent(wallTime, step, tag, text));
  }

  close(): void {
    if (this.fd === undefined) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = undefined;
  }

  private append(event: Uint8Array): void {
    if (this.fd === undefined) throw new Error(`TensorBoard writer for ${this.path} is closed`);
    writeSync(this.fd, tfRecord(event));
  }
}
