export type ModelErrorCode = 'E_MODEL_CONFIG' | 'E_MODEL_ARCHITECTURE' | 'E_MODEL_TENSOR';

/** A model folder or checkpoint that cannot be used as it is; the message names the file and key. */
export class ModelError extends Error {
  override readonly name = 'ModelError';
  constructor(
    readonly code: ModelErrorCode,
    message: string,
  ) {
    super(message);
  }
}
