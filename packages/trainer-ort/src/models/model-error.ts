export type ModelErrorCode =
  | 'E_MODEL_CONFIG'
  | 'E_MODEL_ARCHITECTURE'
  | 'E_MODEL_TENSOR'
  /** The model folder lacks a file the model needs (config.json, the weights). */
  | 'E_MODEL_FILES'
  /** An adapter to start from does not fit the model or the LoRA settings. */
  | 'E_MODEL_ADAPTER'
  /** A batch does not fit the model (sizes, token ids outside the vocabulary). */
  | 'E_MODEL_BATCH';

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
