import { constants } from 'node:buffer';
import { type FileHandle, open } from 'node:fs/promises';
import { SafetensorsError } from './errors.ts';
import { decodeHeader, readHeaderLength, type SafetensorsHeader, type TensorInfo } from './header.ts';
import type { TensorData } from './writer.ts';

/** Node's largest single read; longer reads are split into chunks of this size. */
const MAX_READ_CHUNK = 0x7fff_f000;

/** An open safetensors file: the validated header, and tensor bytes read on demand by offset. */
export interface SafetensorsFile extends SafetensorsHeader {
  readonly path: string;
  /** Total file size in bytes. */
  readonly fileLength: number;
  /** Information about one tensor; throws `E_TENSOR_NOT_FOUND` for an unknown name. */
  info(name: string): TensorInfo;
  /** Reads one tensor's bytes into a new buffer (only those bytes are read). */
  read(name: string): Promise<Uint8Array>;
  /** Reads one tensor's bytes into `target`, which must be exactly `byteLength` bytes long. */
  readInto(name: string, target: ArrayBufferView): Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens a safetensors file and validates its header, reading only the first 8 + N bytes:
 * a multi-gigabyte checkpoint opens in milliseconds. Close it when done (or use `await using`).
 */
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const lengthBytes = new Uint8Array(Math.min(8, size));
    await readFully(handle, lengthBytes, 0);
    const headerLength = readHeaderLength(lengthBytes, size);
    const prefix = new Uint8Array(8 + headerLength);
    prefix.set(lengthBytes);
    await readFully(handle, prefix.subarray(8), 8);
    return new OpenFile(path, handle, size, decodeHeader(prefix, size));
  } catch (error) {
    await handle.close();
    throw error;
  }
}

class OpenFile implements SafetensorsFile {
  readonly tensors: SafetensorsHeader['tensors'];
  readonly metadata: SafetensorsHeader['metadata'];
  readonly headerLength: number;
  readonly dataStart: number;
  readonly dataLength: number;
  #handle: FileHandle | undefined;

  constructor(
    readonly path: string,
    handle: FileHandle,
    readonly fileLength: number,
    header: SafetensorsHeader,
  ) {
    this.#handle = handle;
    this.tensors = header.tensors;
    this.metadata = header.metadata;
    this.headerLength = header.headerLength;
    this.dataStart = header.dataStart;
    this.dataLength = header.dataLength;
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (info === undefined) {
      throw new SafetensorsError(
        'E_TENSOR_NOT_FOUND',
        `no tensor named ${JSON.stringify(name)} in ${this.path}`,
      );
    }
    return info;
  }

  async read(name: string): Promise<Uint8Array> {
    const info = this.info(name);
    if (info.byteLength > constants.MAX_LENGTH) {
      throw new SafetensorsError(
        'E_BUFFER_SIZE',
        `tensor ${JSON.stringify(name)} is ${info.byteLength} bytes, more than one buffer can hold (${constants.MAX_LENGTH}); read it in parts with readInto`,
      );
    }
    const target = new Uint8Array(info.byteLength);
    await readFully(this.#open(), target, this.dataStart + info.byteOffset);
    return target;
  }

  async readInto(name: string, target: ArrayBufferView): Promise<void> {
    const info = this.info(name);
    if (target.byteLength !== info.byteLength) {
      throw new SafetensorsError(
        'E_BUFFER_SIZE',
        `tensor ${JSON.stringify(name)} is ${info.byteLength} bytes but the target holds ${target.byteLength}`,
      );
    }
    const bytes = new Uint8Array(target.buffer, target.byteOffset, target.byteLength);
    await readFully(this.#open(), bytes, this.dataStart + info.byteOffset);
  }

  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #open(): FileHandle {
    if (this.#handle === undefined) throw new SafetensorsError('E_CLOSED', `${this.path} was already closed`);
    return this.#handle;
  }
}

/** Positional reads until `target` is full; a short file is an error, never a silent zero tail. */
async function readFully(handle: FileHandle, target: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const length = Math.min(target.length - done, MAX_READ_CHUNK);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0) {
      throw new SafetensorsError(
        'E_INCOMPLETE_BUFFER',
        `the file ended at byte ${position + done} while ${target.length - done} more bytes were expected; it changed or was truncated after opening`,
      );
    }
    done += bytesRead;
  }
}

/** A safetensors file parsed from memory; `read` returns views into the given bytes (no copy). */
export interface SafetensorsBuffer extends SafetensorsHeader {
  info(name: string): TensorInfo;
  read(name: string): Uint8Array;
}

/** Parses and validates a whole file held in memory. */
export function deserialize(bytes: Uint8Array): SafetensorsBuffer {
  const header = decodeHeader(bytes, bytes.length);
  const info = (name: string): TensorInfo => {
    const found = header.tensors.get(name);
    if (found === undefined) {
      throw new SafetensorsError('E_TENSOR_NOT_FOUND', `no tensor named ${JSON.stringify(name)}`);
    }
    return found;
  };
  return {
    ...header,
    info,
    read(name) {
      const { byteOffset, byteLength } = info(name);
      const start = header.dataStart + byteOffset;
      return bytes.subarray(start, start + byteLength);
    },
  };
}

/** Reads a whole (small) file into memory: every tensor's bytes and the metadata. */
export async function readSafetensors(
  path: string,
): Promise<{ tensors: Map<string, TensorData>; metadata: Readonly<Record<string, string>> }> {
  const file = await openSafetensors(path);
  try {
    const tensors = new Map<string, TensorData>();
    for (const [name, { dtype, shape }] of file.tensors)
      tensors.set(name, { dtype, shape, data: await file.read(name) });
    return { tensors, metadata: file.metadata };
  } finally {
    await file.close();
  }
}
