/** What went wrong, as a string a caller can switch on. */
export type AdapterErrorCode =
  /** Tensors that do not form the modules of a known variant in a known layout. */
  | 'E_INVALID_LORA'
  /** A module that has no matching weight in the base checkpoint, or mismatched shapes. */
  | 'E_MERGE_MISMATCH';

const MARKER = Symbol.for('@lora/adapters.error');

/** A LoRA file or adapter that cannot be read, written or merged as asked: retrying will not help. */
export class AdapterError extends Error {
  override readonly name = 'AdapterError';
  /** Survives two copies of this package in one process, where `instanceof` fails. */
  readonly [MARKER] = true;
  constructor(
    readonly code: AdapterErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  static isInstance(error: unknown): error is AdapterError {
    return typeof error === 'object' && error !== null && MARKER in error;
  }
}
