import { randomBytes } from 'node:crypto';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type Dtype, dtypeBits, dtypeRank, isDtype } from './dtype.ts';
import { SafetensorsError } from './errors.ts';
import { MAX_HEADER_SIZE } from './header.ts';

/** A tensor held in memory: bytes in little-endian, row-major order. */
export interface TensorData {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly data: ArrayBufferView;
}

/**
 * A tensor for `writeSafetensors`: its bytes, or a function producing them when the writer
 * reaches it, so that only one tensor needs to be in memory at a time.
 */
export interface WritableTensor {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly data: ArrayBufferView | (() => ArrayBufferView | Promise<ArrayBufferView>);
}

export type TensorMap<T> =
  | ReadonlyMap<string, T>
  | Iterable<readonly [string, T]>
  | Readonly<Record<string, T>>;

/** A tensor's place in the file being written. */
export interface PlannedTensor<T> {
  readonly name: string;
  readonly tensor: T;
  readonly byteOffset: number;
  readonly byteLength: number;
}

/** The header bytes (length prefix, JSON, padding) and the tensors in data order. */
export interface WritePlan<T> {
  readonly head: Uint8Array;
  readonly tensors: readonly PlannedTensor<T>[];
  readonly dataLength: number;
}

const encoder = new TextEncoder();
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Lays out a file exactly as the crate's `prepare` (what Python `save_file` runs): tensors by
 * descending dtype alignment then by name as UTF-8 bytes, packed without gaps; compact JSON with
 * `__metadata__` first; spaces up to a multiple of 8.
 */
export function planWrite<T extends { dtype: Dtype; shape: readonly number[] }>(
  input: TensorMap<T>,
  metadata?: Readonly<Record<string, string>>,
): WritePlan<T> {
  const items: Array<{ name: string; key: Buffer; tensor: T; byteLength: number }> = [];
  const seen = new Set<string>();
  for (const [name, tensor] of entriesOf(input)) {
    if (seen.has(name))
      throw new SafetensorsError('E_DUPLICATE_KEY', `tensor ${JSON.stringify(name)} is given twice`);
    seen.add(name);
    if (name === '__metadata__') {
      throw new SafetensorsError(
        'E_RESERVED_NAME',
        'a tensor cannot be named "__metadata__": that key holds the metadata, so the file would be unreadable',
      );
    }
    checkString(name, 'tensor name');
    items.push({ name, key: Buffer.from(name, 'utf8'), tensor, byteLength: byteLengthOf(name, tensor) });
  }
  items.sort((a, b) => dtypeRank(b.tensor.dtype) - dtypeRank(a.tensor.dtype) || Buffer.compare(a.key, b.key));

  const parts: string[] = [];
  if (metadata !== undefined) parts.push(`"__metadata__":${metadataJson(metadata)}`);
  const tensors: PlannedTensor<T>[] = [];
  let offset = 0;
  for (const { name, tensor, byteLength } of items) {
    const end = offset + byteLength;
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${tensor.dtype}","shape":[${tensor.shape.join(',')}],"data_offsets":[${offset},${end}]}`,
    );
    tensors.push({ name, tensor, byteOffset: offset, byteLength });
    offset = end;
  }
  const json = encoder.encode(`{${parts.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  if (headerLength > MAX_HEADER_SIZE) {
    throw new SafetensorsError(
      'E_HEADER_TOO_LARGE',
      `the header would be ${headerLength} bytes, over the ${MAX_HEADER_SIZE}-byte limit readers enforce; shrink the metadata`,
    );
  }
  const head = new Uint8Array(8 + headerLength).fill(0x20, 8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLength), true);
  head.set(json, 8);
  return { head, tensors, dataLength: offset };
}

/** Serializes tensors into one in-memory file, byte-identical to Python `safetensors.torch.save`. */
export function serialize(
  tensors: TensorMap<TensorData>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const plan = planWrite(tensors, metadata);
  const out = new Uint8Array(plan.head.length + plan.dataLength);
  out.set(plan.head);
  for (const { name, tensor, byteOffset, byteLength } of plan.tensors) {
    out.set(bytesOf(name, tensor.data, byteLength), plan.head.length + byteOffset);
  }
  return out;
}

/** Tensors at most this big are gathered into one write; larger ones are written directly. */
const COALESCE_LIMIT = 1 << 20;
/** Size of the gathering buffer: few syscalls for LoRA files of thousands of small tensors. */
const COALESCE_BUFFER = 8 << 20;
/** Node's largest single write. */
const MAX_WRITE_CHUNK = 0x7fff_f000;

/**
 * Streams tensors to `path`, byte-identical to Python `save_file`. The bytes go to a temporary
 * file in the same directory, are flushed to disk, and only then renamed over `path`, so a crash
 * never leaves a truncated file under the final name. Lazy `data` functions are called one at a
 * time in file order.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorMap<WritableTensor>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  const plan = planWrite(tensors, metadata);
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temporary, 'wx');
  try {
    const out = new GatheringWriter(handle);
    await out.write(plan.head);
    for (const { name, tensor, byteLength } of plan.tensors) {
      const data = typeof tensor.data === 'function' ? await tensor.data() : tensor.data;
      await out.write(bytesOf(name, data, byteLength));
    }
    await out.flush();
    await handle.datasync();
    await handle.close();
    await rename(temporary, path);
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temporary, { force: true });
    // A write through the handle fails without a path (ENOSPC, EIO): name the file it was for.
    if (error instanceof Error && 'code' in error && !('path' in error)) Object.assign(error, { path });
    throw error;
  }
}

class GatheringWriter {
  #buffer: Uint8Array | undefined;
  #used = 0;
  #position = 0;
  constructor(private readonly handle: FileHandle) {}

  async write(bytes: Uint8Array): Promise<void> {
    if (bytes.length <= COALESCE_LIMIT) {
      this.#buffer ??= new Uint8Array(COALESCE_BUFFER);
      if (this.#used + bytes.length > this.#buffer.length) await this.flush();
      this.#buffer.set(bytes, this.#used);
      this.#used += bytes.length;
      return;
    }
    await this.flush();
    await this.#writeFully(bytes);
  }

  async flush(): Promise<void> {
    if (this.#buffer === undefined || this.#used === 0) return;
    await this.#writeFully(this.#buffer.subarray(0, this.#used));
    this.#used = 0;
  }

  async #writeFully(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const length = Math.min(bytes.length - done, MAX_WRITE_CHUNK);
      const { bytesWritten } = await this.handle.write(bytes, done, length, this.#position);
      done += bytesWritten;
      this.#position += bytesWritten;
    }
  }
}

function entriesOf<T>(input: TensorMap<T>): Iterable<readonly [string, T]> {
  if (Symbol.iterator in input) return input as Iterable<readonly [string, T]>;
  return Object.entries(input as Readonly<Record<string, T>>);
}

function metadataJson(metadata: Readonly<Record<string, string>>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') {
      throw new SafetensorsError(
        'E_INVALID_METADATA',
        `metadata ${JSON.stringify(key)} is a ${typeof value}; every value must be a string (JSON.stringify it first)`,
      );
    }
    checkString(key, 'metadata key');
    checkString(value, `metadata value of ${JSON.stringify(key)}`);
    parts.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
  }
  return `{${parts.join(',')}}`;
}

function checkString(value: string, what: string): void {
  // JSON.stringify escapes exactly what serde_json escapes, except lone surrogates, which
  // have no UTF-8 form and which Rust strings cannot hold.
  if (LONE_SURROGATE.test(value)) {
    throw new SafetensorsError(
      'E_INVALID_STRING',
      `${what} ${JSON.stringify(value.slice(0, 60))} contains a lone UTF-16 surrogate`,
    );
  }
}

/** The byte length a tensor must have, as the crate's `TensorView::new` checks it. */
function byteLengthOf(name: string, tensor: { dtype: Dtype; shape: readonly number[] }): number {
  if (!isDtype(tensor.dtype)) {
    throw new SafetensorsError(
      'E_UNKNOWN_DTYPE',
      `tensor ${JSON.stringify(name)} has unknown dtype ${tensor.dtype}`,
    );
  }
  let elements = 1;
  for (const dim of tensor.shape) {
    if (!Number.isSafeInteger(dim) || dim < 0) {
      throw new SafetensorsError(
        'E_INVALID_TENSOR_VIEW',
        `tensor ${JSON.stringify(name)} has shape [${tensor.shape.join(', ')}]; dimensions must be non-negative integers`,
      );
    }
    elements *= dim;
  }
  const bits = elements * dtypeBits(tensor.dtype);
  if (!Number.isSafeInteger(bits)) {
    throw new SafetensorsError(
      'E_VALIDATION_OVERFLOW',
      `tensor ${JSON.stringify(name)} with shape [${tensor.shape.join(', ')}] is too large`,
    );
  }
  if (bits % 8 !== 0) {
    throw new SafetensorsError(
      'E_MISALIGNED_SLICE',
      `tensor ${JSON.stringify(name)} (${tensor.dtype} [${tensor.shape.join(', ')}]) is ${bits} bits, not a whole number of bytes`,
    );
  }
  return bits / 8;
}

function bytesOf(name: string, data: ArrayBufferView, byteLength: number): Uint8Array {
  if (data.byteLength !== byteLength) {
    throw new SafetensorsError(
      'E_INVALID_TENSOR_VIEW',
      `tensor ${JSON.stringify(name)} has ${data.byteLength} bytes of data but its shape and dtype need ${byteLength}`,
    );
  }
  return data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
