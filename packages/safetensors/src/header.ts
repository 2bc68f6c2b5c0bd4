import { type Dtype, dtypeBits, isDtype } from './dtype.ts';
import { SafetensorsError } from './errors.ts';
import { JsonNumber, JsonObject, JsonSyntaxError, type JsonValue, parseJson } from './json.ts';

/**
 * The crate's `MAX_HEADER_SIZE` (decimal): a larger header is refused before it is read, so a
 * hostile length cannot make us allocate gigabytes.
 */
export const MAX_HEADER_SIZE = 100_000_000;

/** Where one tensor's bytes are. */
export interface TensorInfo {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** Offset of the first byte, relative to the start of the data section (`dataStart`). */
  readonly byteOffset: number;
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  /** Tensors in data order (by `byteOffset`). */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** `__metadata__`, or an empty object when the file has none. */
  readonly metadata: Readonly<Record<string, string>>;
  /** N, the byte length of the JSON header, padding included. */
  readonly headerLength: number;
  /**
   * Absolute file offset of the data section: 8 + N. A tensor's bytes sit at
   * `dataStart + byteOffset` … `dataStart + byteOffset + byteLength` in the file.
   */
  readonly dataStart: number;
  /** Byte length of the data section (the end of the last tensor). */
  readonly dataLength: number;
}

const U64_MAX = (1n << 64n) - 1n;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Reads the 8-byte little-endian header length N; `bytes` must hold at least 8 bytes. */
export function readHeaderLength(bytes: Uint8Array, fileLength: number): number {
  if (fileLength < 8 || bytes.length < 8) {
    throw new SafetensorsError(
      'E_HEADER_TOO_SMALL',
      `file is ${fileLength} bytes; a safetensors file starts with an 8-byte header length`,
    );
  }
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_SIZE)) {
    throw new SafetensorsError(
      'E_HEADER_TOO_LARGE',
      `header length ${n} exceeds the limit of ${MAX_HEADER_SIZE} bytes; the file is corrupt or not safetensors`,
    );
  }
  const length = Number(n);
  if (8 + length > fileLength) {
    throw new SafetensorsError(
      'E_INVALID_HEADER_LENGTH',
      `header length ${length} runs past the end of the ${fileLength}-byte file; the file is truncated`,
    );
  }
  return length;
}

/**
 * Validates a header exactly like the crate's `read_metadata`, given its first 8 + N bytes
 * (`prefix`) and the size of the whole file.
 */
export function decodeHeader(prefix: Uint8Array, fileLength: number): SafetensorsHeader {
  const headerLength = readHeaderLength(prefix, fileLength);
  if (prefix.length < 8 + headerLength) {
    throw new RangeError(`decodeHeader needs ${8 + headerLength} bytes, got ${prefix.length}`);
  }
  let text: string;
  try {
    text = utf8.decode(prefix.subarray(8, 8 + headerLength));
  } catch (cause) {
    throw new SafetensorsError('E_HEADER_NOT_UTF8', `the ${headerLength}-byte header is not valid UTF-8`, {
      cause,
    });
  }
  let root: JsonValue;
  try {
    root = parseJson(text);
  } catch (cause) {
    if (!(cause instanceof JsonSyntaxError)) throw cause;
    throw new SafetensorsError('E_HEADER_NOT_JSON', `the header is not valid JSON: ${cause.message}`, {
      cause,
    });
  }
  if (!(root instanceof JsonObject)) {
    throw new SafetensorsError('E_HEADER_NOT_JSON', `the header is ${describe(root)}, not a JSON object`);
  }
  const { metadata, entries } = splitEntries(root);
  const dataLength = validateLayout(entries);
  const dataStart = 8 + headerLength;
  if (dataStart + dataLength !== fileLength) {
    const actual = fileLength - dataStart;
    throw new SafetensorsError(
      'E_INCOMPLETE_BUFFER',
      actual > dataLength
        ? `the tensors cover ${dataLength} data bytes but the file has ${actual}: ${actual - dataLength} trailing bytes`
        : `the tensors need ${dataLength} data bytes but the file has only ${actual}: it is truncated`,
    );
  }
  const tensors = new Map<string, TensorInfo>();
  for (const entry of entries) {
    tensors.set(entry.name, {
      dtype: entry.dtype,
      shape: entry.shape.map((dim) => toSafeNumber(dim, entry.name)),
      byteOffset: Number(entry.begin),
      byteLength: Number(entry.end - entry.begin),
    });
  }
  return { tensors, metadata, headerLength, dataStart, dataLength };
}

/** Parses and validates a complete safetensors file held in memory. */
export function parseHeader(bytes: Uint8Array): SafetensorsHeader {
  return decodeHeader(bytes, bytes.length);
}

/** `parseHeader` that returns its error instead of throwing it. */
export function safeParseHeader(
  bytes: Uint8Array,
): { success: true; value: SafetensorsHeader } | { success: false; error: SafetensorsError } {
  try {
    return { success: true, value: parseHeader(bytes) };
  } catch (error) {
    if (error instanceof SafetensorsError) return { success: false, error };
    throw error;
  }
}

interface RawEntry {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly bigint[];
  readonly begin: bigint;
  readonly end: bigint;
}

function splitEntries(root: JsonObject): {
  metadata: Record<string, string>;
  entries: RawEntry[];
} {
  let metadata: Record<string, string> = {};
  const entries: RawEntry[] = [];
  const seen = new Set<string>();
  for (const [name, value] of root.entries) {
    if (seen.has(name)) {
      throw new SafetensorsError(
        'E_DUPLICATE_KEY',
        `the header lists ${JSON.stringify(name)} twice; rewrite the file with unique tensor names`,
      );
    }
    seen.add(name);
    if (name === '__metadata__') metadata = readMetadata(value);
    else entries.push(readEntry(name, value));
  }
  return { metadata, entries };
}

function readMetadata(value: JsonValue): Record<string, string> {
  // serde reads `Option<HashMap<String, String>>`, so null means "no metadata".
  if (value === null) return {};
  if (!(value instanceof JsonObject)) {
    throw new SafetensorsError(
      'E_INVALID_METADATA',
      `__metadata__ is ${describe(value)}; it must be an object of string values`,
    );
  }
  const pairs: Array<[string, string]> = [];
  const seen = new Set<string>();
  for (const [key, item] of value.entries) {
    if (seen.has(key)) {
      throw new SafetensorsError('E_DUPLICATE_KEY', `__metadata__ lists ${JSON.stringify(key)} twice`);
    }
    seen.add(key);
    if (typeof item !== 'string') {
      throw new SafetensorsError(
        'E_INVALID_METADATA',
        `__metadata__[${JSON.stringify(key)}] is ${describe(item)}; every metadata value must be a string`,
      );
    }
    pairs.push([key, item]);
  }
  // fromEntries defines own properties, so a "__proto__" key stays data.
  return Object.fromEntries(pairs);
}

const FIELDS = ['dtype', 'shape', 'data_offsets'] as const;

function readEntry(name: string, value: JsonValue): RawEntry {
  const fields = new Map<string, JsonValue>();
  if (value instanceof JsonObject) {
    for (const [key, item] of value.entries) {
      if (fields.has(key)) {
        throw new SafetensorsError('E_DUPLICATE_KEY', `tensor ${JSON.stringify(name)} lists "${key}" twice`);
      }
      fields.set(key, item);
    }
  } else if (Array.isArray(value) && value.length === FIELDS.length) {
    // serde's derived Deserialize also accepts a struct written as a sequence of its fields.
    for (const [index, field] of FIELDS.entries()) fields.set(field, value[index] ?? null);
  } else {
    throw entryError(name, `is ${describe(value)}, not an object with dtype, shape and data_offsets`);
  }
  for (const field of FIELDS) {
    if (!fields.has(field)) throw entryError(name, `has no "${field}"`);
  }
  const dtype = fields.get('dtype');
  if (typeof dtype !== 'string') throw entryError(name, `has dtype ${describe(dtype ?? null)}, not a string`);
  if (!isDtype(dtype)) {
    throw new SafetensorsError(
      'E_UNKNOWN_DTYPE',
      `tensor ${JSON.stringify(name)} has unknown dtype ${JSON.stringify(dtype)}; known: BOOL, U8, F16, BF16, F32, … (see DTYPES)`,
    );
  }
  const shape = readIntegers(name, 'shape', fields.get('shape') ?? null);
  const offsets = readIntegers(name, 'data_offsets', fields.get('data_offsets') ?? null);
  const [begin, end] = offsets;
  if (offsets.length !== 2 || begin === undefined || end === undefined) {
    throw entryError(name, `has ${offsets.length} data_offsets; it needs exactly [begin, end]`);
  }
  return { name, dtype, shape, begin, end };
}

function readIntegers(name: string, field: string, value: JsonValue): bigint[] {
  if (!Array.isArray(value)) throw entryError(name, `has ${field} ${describe(value)}, not an array`);
  return value.map((item) => {
    if (!(item instanceof JsonNumber) || !/^-?\d+$/.test(item.raw)) {
      throw entryError(name, `has ${field} element ${describe(item)}; expected a non-negative integer`);
    }
    const number = BigInt(item.raw);
    if (number < 0n || number > U64_MAX) {
      throw entryError(name, `has ${field} element ${item.raw}, outside the unsigned 64-bit range`);
    }
    return number;
  });
}

/** The crate's `Metadata::validate`: contiguous offsets from 0, sizes matching shapes. */
function validateLayout(entries: RawEntry[]): number {
  entries.sort((a, b) => compare(a.begin, b.begin) || compare(a.end, b.end));
  let start = 0n;
  for (const entry of entries) {
    const { name, begin, end } = entry;
    if (begin !== start || end < begin) {
      throw new SafetensorsError(
        'E_INVALID_OFFSET',
        `tensor ${JSON.stringify(name)} has data_offsets [${begin}, ${end}] but the previous tensor ends at ${start}; ` +
          'offsets must be contiguous from 0 with no gap or overlap',
      );
    }
    start = end;
    let elements = 1n;
    for (const dim of entry.shape) {
      elements *= dim;
      if (elements > U64_MAX) throw overflow(entry);
    }
    const bits = elements * BigInt(dtypeBits(entry.dtype));
    if (bits > U64_MAX) throw overflow(entry);
    if (bits % 8n !== 0n) {
      throw new SafetensorsError(
        'E_MISALIGNED_SLICE',
        `tensor ${JSON.stringify(name)} (${entry.dtype} [${entry.shape.join(', ')}]) is ${bits} bits, not a whole number of bytes`,
      );
    }
    if (end - begin !== bits / 8n) {
      throw new SafetensorsError(
        'E_TENSOR_INVALID_INFO',
        `tensor ${JSON.stringify(name)} (${entry.dtype} [${entry.shape.join(', ')}]) needs ${bits / 8n} bytes ` +
          `but data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
  }
  // The caller compares this with the file length, itself below 2^53.
  return start > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(start);
}

function overflow(entry: RawEntry): SafetensorsError {
  return new SafetensorsError(
    'E_VALIDATION_OVERFLOW',
    `tensor ${JSON.stringify(entry.name)} has shape [${entry.shape.join(', ')}] whose ${entry.dtype} size overflows 64 bits`,
  );
}

function toSafeNumber(dim: bigint, name: string): number {
  if (dim > BigInt(Number.MAX_SAFE_INTEGER)) {
    // Only an empty tensor (another dimension is 0) can get here; JavaScript cannot index it.
    throw new SafetensorsError(
      'E_VALIDATION_OVERFLOW',
      `tensor ${JSON.stringify(name)} has dimension ${dim}, above 2^53 - 1, which JavaScript numbers cannot hold`,
    );
  }
  return Number(dim);
}

function compare(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function entryError(name: string, problem: string): SafetensorsError {
  return new SafetensorsError('E_INVALID_TENSOR_ENTRY', `tensor ${JSON.stringify(name)} ${problem}`);
}

function describe(value: JsonValue): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof JsonObject) return 'an object';
  if (value instanceof JsonNumber) return `the number ${value.raw}`;
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 40))}`;
  return `the boolean ${value}`;
}
