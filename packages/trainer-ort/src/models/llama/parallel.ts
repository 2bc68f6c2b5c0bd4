/**
 * LLaMA-family models (LLaMA, Qwen2, Mistral) in worker processes: each worker reopens the
 * checkpoint folder (headers only: the weights stay external data in the user's files), and a
 * micro-batch splits by rows.
 */
import { type ParallelModel, shardRanges } from '../../train/parallel/recipe.ts';
import { openLlamaCheckpoint } from './checkpoint.ts';
import { type LlamaBatch, type LlamaLoraOptions, LlamaModel } from './model.ts';

export interface LlamaWorkerOptions {
  /** The Hugging Face model folder (`config.json` + safetensors). */
  folder: string;
  /** The LoRA settings, `initial` values included (they travel by structured clone). */
  lora: LlamaLoraOptions;
}

/** The `parallel` option of `runTrainingLoop` for `new LlamaModel(await openLlamaCheckpoint(folder), lora)`. */
export function llamaParallelModel(folder: string, lora: LlamaLoraOptions): ParallelModel<LlamaBatch> {
  const options: LlamaWorkerOptions = { folder, lora };
  return {
    // This module, or the package bundle it is built into, which exports the factory by that name.
    recipe: { module: import.meta.url, export: 'createLlamaWorkerModel', options },
    shard: shardLlamaBatch,
  };
}

/** The factory a worker calls with the recipe's options. */
export async function createLlamaWorkerModel({ folder, lora }: LlamaWorkerOptions): Promise<LlamaModel> {
  return new LlamaModel(await openLlamaCheckpoint(folder), lora);
}

/** Consecutive row shards (copies, as they cross to other processes), each at the batch's `seqLen`. */
export function shardLlamaBatch(batch: LlamaBatch, parts: number): LlamaBatch[] {
  const { seqLen } = batch;
  return shardRanges(batch.batchSize, parts).map(([start, end]) => ({
    batchSize: end - start,
    seqLen,
    inputIds: batch.inputIds.slice(start * seqLen, end * seqLen),
    labels: batch.labels.slice(start * seqLen, end * seqLen),
    attentionMask: batch.attentionMask.slice(start * seqLen, end * seqLen),
  }));
}
