/**
 * How a model trades compute for memory: `gradient_checkpointing` recomputes each block's
 * activations in the backward pass, `memory_efficient_attention` attends in blocks of queries,
 * `base_precision` holds the frozen weights in another type than the file's.
 */
import type { BasePrecision } from '@lora/config';
import { checkpoint, type DType, type Tensor } from '@lora/engine';

export interface MemoryOptions {
  /** The type frozen weights are held in (converted once, when the session loads); default: as stored. */
  readonly weightDtype?: DType;
  /** Keep only each block's input through the step; recompute the block in the backward pass. */
  readonly checkpointBlocks?: boolean;
  /** Attend in blocks of this many queries, each recomputed in the backward pass. */
  readonly attentionQueryChunk?: number;
  /** Vocabulary rows of a half-precision LM head converted at a time; default `VOCABULARY_CHUNK`. */
  readonly vocabularyChunk?: number;
}

/** Rows of a half-precision LM head converted at a time: 128 MiB of float32 at hidden size 2048. */
export const VOCABULARY_CHUNK = 16384;

/**
 * Query rows per attention block: at SD 1.5's 64×64 latents (4096 tokens, 8 heads) one block's
 * float32 scores take 128 MiB instead of 512 MiB for the whole matrix.
 */
export const ATTENTION_QUERY_CHUNK = 1024;

const WEIGHT_DTYPES: Readonly<Record<BasePrecision, DType>> = {
  fp16: 'float16',
  bf16: 'bfloat16',
  fp32: 'float32',
};

/** The memory options a config asks for. */
export function memoryOptions(config: {
  readonly gradient_checkpointing: boolean;
  readonly memory_efficient_attention?: boolean;
  readonly base_precision?: BasePrecision;
}): MemoryOptions {
  return {
    ...(config.base_precision ? { weightDtype: WEIGHT_DTYPES[config.base_precision] } : {}),
    ...(config.gradient_checkpointing ? { checkpointBlocks: true } : {}),
    ...(config.memory_efficient_attention ? { attentionQueryChunk: ATTENTION_QUERY_CHUNK } : {}),
  };
}

/** `build(x)`, as a gradient checkpoint when the options ask for checkpointed blocks. */
export function block(memory: MemoryOptions | undefined, x: Tensor, build: (x: Tensor) => Tensor): Tensor {
  return memory?.checkpointBlocks ? checkpoint(x, build) : build(x);
}
