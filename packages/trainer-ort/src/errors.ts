/** What went wrong, as a string a caller can switch on. */
export type TrainerOrtErrorCode =
  /** Operand shapes do not fit the op (the message names the op, the shapes and the scope). */
  | 'SHAPE_MISMATCH'
  /** Operand element types do not fit the op. */
  | 'DTYPE_MISMATCH'
  /** An argument is out of range or malformed (axis, name, attribute, data length). */
  | 'INVALID_ARGUMENT'
  /** A tensor from one graph was used in another. */
  | 'FOREIGN_TENSOR'
  /** A graph input, output or initializer name is used twice. */
  | 'DUPLICATE_NAME'
  /** Autodiff met an op with no entry in the VJP table on a path to a trainable tensor. */
  | 'NO_GRADIENT_RULE'
  /** The op has a VJP rule, but not for this configuration (e.g. grouped Conv weight gradient). */
  | 'GRADIENT_UNSUPPORTED'
  /** The serialised model would pass protobuf's 2 GiB limit. */
  | 'MODEL_TOO_LARGE'
  /** External data does not fit the file it points into. */
  | 'EXTERNAL_DATA_INVALID'
  /** The weights file is on another filesystem than the run folder, so it cannot be hard-linked. */
  | 'EXTERNAL_DATA_CROSS_DEVICE'
  /** A different file of the same name already sits in the run folder. */
  | 'EXTERNAL_DATA_NAME_CLASH'
  /** The requested execution provider is not installed or has no device. */
  | 'DEVICE_UNAVAILABLE'
  /** onnxruntime refused the model. */
  | 'SESSION_FAILED'
  /** onnxruntime failed while running the model, or the feeds do not match its inputs. */
  | 'RUN_FAILED'
  /** Training produced a NaN or infinite loss or gradient (the last good state was saved first). */
  | 'NON_FINITE_LOSS'
  /** A checkpoint's files are missing, malformed, or do not fit the model being trained. */
  | 'CHECKPOINT_INVALID'
  /** `resume` names a folder that holds no checkpoint. */
  | 'CHECKPOINT_NOT_FOUND';

const MARKER = Symbol.for('lora.trainer-ort.error');

/** Every error this package throws on purpose. `code` says what failed; the message says where and what to do. */
export class TrainerOrtError extends Error {
  readonly code: TrainerOrtErrorCode;
  readonly [MARKER] = true;

  constructor(code: TrainerOrtErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TrainerOrtError';
    this.code = code;
  }

  /** True for errors from any copy of this package (`instanceof` fails across duplicate installs). */
  static isInstance(error: unknown): error is TrainerOrtError {
    return typeof error === 'object' && error !== null && MARKER in error;
  }
}
