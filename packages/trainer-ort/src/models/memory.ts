/**
 * How a model trades compute for memory: `gradient_checkpointing` recomputes each block's
 * activations in the backward pass, `memory_efficient_attention` attends in blocks of queries.
 */
import { checkpoint, type Tensor } from '@lora/engine';

export interface MemoryOptions {
  /** Keep only each block's input through the step; recompute the block in the backward pass. */
  readonly checkpointBlocks?: boolean;
  /** Attend in blocks of this many queries, each recomputed in the backward pass. */
  readonly attentionQueryChunk?: number;
}

/**
 * Query rows per attention block: at SD 1.5's 64×64 latents (4096 tokens, 8 heads) one block's
 * float32 scores take 128 MiB instead of 512 MiB for the whole matrix.
 */
export const ATTENTION_QUERY_CHUNK = 1024;

/** The memory options a config asks for. */
export function memoryOptions(config: {
  readonly gradient_checkpointing: boolean;
  readonly memory_efficient_attention?: boolean;
}): MemoryOptions {
  return {
    ...(config.gradient_checkpointing ? { checkpointBlocks: true } : {}),
    ...(config.memory_efficient_attention ? { attentionQueryChunk: ATTENTION_QUERY_CHUNK } : {}),
  };
}

/** `build(x)`, as a gradient checkpoint when the options ask for checkpointed blocks. */
export function block(memory: MemoryOptions | undefined, x: Tensor, build: (x: Tensor) => Tensor): Tensor {
  return memory?.checkpointBlocks ? checkpoint(x, build) : build(x);
}
