/** What went wrong, as a string a caller can switch on. */
export type EngineErrorCode =
  /** Operand shapes do not fit the op (the message names the op, the shapes and the scope). */
  | 'E_SHAPE_MISMATCH'
  /** Operand element types do not fit the op. */
  | 'E_DTYPE_MISMATCH'
  /** An argument is out of range or malformed (axis, name, attribute, data length, op domain). */
  | 'E_INVALID_ARGUMENT'
  /** A tensor from one graph was used in another. */
  | 'E_FOREIGN_TENSOR'
  /** A graph input, output or initializer name is used twice. */
  | 'E_DUPLICATE_NAME'
  /** Autodiff met an op with no entry in the VJP table on a path to a trainable tensor. */
  | 'E_NO_GRADIENT_RULE'
  /** The op has a VJP rule, but not for this configuration (e.g. grouped Conv weight gradient). */
  | 'E_GRADIENT_UNSUPPORTED'
  /** The serialised model would pass protobuf's 2 GiB limit. */
  | 'E_MODEL_TOO_LARGE'
  /** External data does not fit the file it points into. */
  | 'E_EXTERNAL_DATA_INVALID'
  /** The weights file is on another filesystem than the model folder, so it cannot be hard-linked. */
  | 'E_EXTERNAL_DATA_CROSS_DEVICE'
  /** A different file of the same name already sits in the model folder. */
  | 'E_EXTERNAL_DATA_NAME_CLASH';

const MARKER = Symbol.for('@lora/engine.error');

/**
 * A graph that cannot be built, differentiated or written as asked: a bug in the code building
 * it, or (for the external-data codes) a file the user must move. `code` says which.
 */
export class EngineError extends Error {
  override readonly name = 'EngineError';
  /** Survives two copies of this package in one process, where `instanceof` fails. */
  readonly [MARKER] = true;
  constructor(
    readonly code: EngineErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  static isInstance(error: unknown): error is EngineError {
    return typeof error === 'object' && error !== null && MARKER in error;
  }
}
