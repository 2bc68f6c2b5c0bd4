export type CliErrorCode =
  | 'E_UNKNOWN_COMMAND'
  | 'E_USAGE'
  | 'E_NOT_FOUND'
  | 'E_EXISTS'
  | 'E_NOT_A_LORA'
  | 'E_EMPTY_DATASET'
  | 'E_TOO_LARGE'
  | 'E_INVALID_FILE'
  | 'E_OUTPUT_NOT_EMPTY'
  | 'E_OUTPUT_FOREIGN'
  | 'E_OUTPUT_IN_MODEL'
  | 'E_OUTPUT_UNWRITABLE'
  | 'E_RUN_LOCKED'
  | 'E_WRITE_FAILED'
  | 'E_BACKEND_NOT_FOUND'
  | 'E_BACKEND_INVALID';

/** A user-facing CLI failure: printed as one message, never with a stack trace. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly code: CliErrorCode,
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}

/** Exit code of failures that are not usage mistakes: bad files, nothing to train on. */
export const EXIT_FAILURE = 1;

/**
 * A library error whose message does not name the file it is about (a safetensors header
 * problem, say): the same code, the message prefixed with the path.
 */
export class FileError extends Error {
  override readonly name = 'FileError';
  constructor(
    readonly code: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Runs `action`; a typed error from it comes back with `path` in front of its message. */
export async function aboutFile<T>(path: string, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    if (error instanceof Error && 'code' in error && typeof error.code === 'string') {
      if (error.code === 'ENOENT') {
        const missing = 'path' in error && typeof error.path === 'string' ? error.path : path;
        throw new CliError('E_NOT_FOUND', `${missing} does not exist; check the path.`, EXIT_FAILURE);
      }
      if (!error.message.includes(path)) {
        throw new FileError(error.code, `${path}: ${error.message}`, { cause: error });
      }
    }
    throw error;
  }
}
