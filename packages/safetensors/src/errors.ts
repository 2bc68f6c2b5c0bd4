/**
 * Why a safetensors operation failed. The first group mirrors the reference crate's
 * `SafeTensorError` variants (named in each comment); the crate folds several header
 * problems into `InvalidHeaderDeserialization`, which this package splits so callers can
 * tell a typo in a dtype from a broken file.
 */
export type SafetensorsErrorCode =
  /** `HeaderTooSmall`: fewer than 8 bytes, so there is no header length. */
  | 'E_HEADER_TOO_SMALL'
  /** `HeaderTooLarge`: the header length exceeds `MAX_HEADER_SIZE` (read or write). */
  | 'E_HEADER_TOO_LARGE'
  /** `InvalidHeaderLength`: 8 + header length runs past the end of the file. */
  | 'E_INVALID_HEADER_LENGTH'
  /** `InvalidHeader`: the header bytes are not UTF-8. */
  | 'E_HEADER_NOT_UTF8'
  /** `InvalidHeaderDeserialization`: not JSON, or not a JSON object. */
  | 'E_HEADER_NOT_JSON'
  /** `InvalidHeaderDeserialization`: a key appears twice (the crate keeps one silently). */
  | 'E_DUPLICATE_KEY'
  /** `InvalidHeaderDeserialization`: a dtype name this format does not define. */
  | 'E_UNKNOWN_DTYPE'
  /** `InvalidHeaderDeserialization`: `__metadata__` is not a string → string map. */
  | 'E_INVALID_METADATA'
  /** `InvalidHeaderDeserialization`: a tensor entry lacks or mistypes dtype / shape / data_offsets. */
  | 'E_INVALID_TENSOR_ENTRY'
  /** `InvalidOffset`: a gap, an overlap, or the first tensor not starting at 0. */
  | 'E_INVALID_OFFSET'
  /** `ValidationOverflow`: shape product × dtype bits overflows 64 bits (or JS's 2^53 for indices). */
  | 'E_VALIDATION_OVERFLOW'
  /** `MisalignedSlice`: a sub-byte dtype whose bit count is not a whole number of bytes. */
  | 'E_MISALIGNED_SLICE'
  /** `TensorInvalidInfo`: data_offsets span ≠ shape × dtype size. */
  | 'E_TENSOR_INVALID_INFO'
  /** `MetadataIncompleteBuffer`: the data section has trailing or missing bytes. */
  | 'E_INCOMPLETE_BUFFER'
  /** `TensorNotFound`. */
  | 'E_TENSOR_NOT_FOUND'
  /** `InvalidTensorView` (write): the bytes given for a tensor do not match its shape and dtype. */
  | 'E_INVALID_TENSOR_VIEW'
  /** Write: a tensor named `__metadata__`, which no reader could load back (crate issue #849). */
  | 'E_RESERVED_NAME'
  /** Write: a name or metadata string that is not well-formed Unicode (cannot be UTF-8). */
  | 'E_INVALID_STRING'
  /** A tensor too large for one JavaScript buffer, or `readInto` given a target of the wrong size. */
  | 'E_BUFFER_SIZE'
  /** A dtype conversion this package does not implement. */
  | 'E_UNSUPPORTED_CONVERSION'
  /** `model.safetensors.index.json` is malformed or disagrees with its shards. */
  | 'E_INVALID_INDEX'
  /** The file handle was used after `close()`. */
  | 'E_CLOSED';

const MARKER = Symbol.for('@lora/safetensors.error');

/**
 * A malformed file or invalid argument: retrying will not help. I/O failures (ENOENT, EACCES …)
 * are passed through as Node's own errors.
 */
export class SafetensorsError extends Error {
  override readonly name = 'SafetensorsError';
  /** Survives two copies of this package in one process, where `instanceof` fails. */
  readonly [MARKER] = true;
  constructor(
    readonly code: SafetensorsErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  static isInstance(error: unknown): error is SafetensorsError {
    return typeof error === 'object' && error !== null && MARKER in error;
  }
}
