export type CliErrorCode = 'E_UNKNOWN_COMMAND' | 'E_USAGE';

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
