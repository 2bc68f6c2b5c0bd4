/**
 * The training loop's micro-batches for a LLaMA model, drawn from one or more tokenized
 * `TextDataset`s (one per `train_data` file) as if they were one dataset: each epoch shuffles
 * all their sequences together, from `createRng(seed, stream, epoch)` alone, so any (epoch,
 * index) can be loaded directly when a run resumes.
 */
import { createRng, padSequences, type TextDataset } from '@lora/dataset';
import type { BatchCount, BatchSource } from '../../train/data.ts';
import type { LlamaBatch } from './model.ts';

/** Stream key of the epoch order: `createRng(seed, ORDER_STREAM, epoch)`. */
const ORDER_STREAM = 0x4f726472; // 'Ordr'

export interface TextBatchesOptions {
  /** Examples per micro-batch. */
  batchSize: number;
  seed: number;
  /** Token id that fills the padding after shorter sequences. */
  padId: number;
}

export class TextBatches implements BatchSource<LlamaBatch> {
  readonly microBatchesPerEpoch: number;
  /** Sequences over all datasets. */
  readonly sequences: number;
  /** `starts[d]`: global index of dataset d's first sequence. */
  private readonly starts: number[] = [];
  private order: { epoch: number; indices: Uint32Array } | undefined;

  constructor(
    private readonly datasets: readonly TextDataset[],
    private readonly options: TextBatchesOptions,
  ) {
    let total = 0;
    for (const dataset of datasets) {
      this.starts.push(total);
      total += dataset.stats.sequences;
    }
    this.sequences = total;
    this.microBatchesPerEpoch = Math.ceil(total / options.batchSize);
  }

  async batch(epoch: number, index: number): Promise<LlamaBatch> {
    const { batchSize, padId } = this.options;
    const picked = this.epochOrder(epoch).subarray(index * batchSize, (index + 1) * batchSize);
    const loaded = await Promise.all(Array.from(picked, (global) => this.sequence(global)));
    return padSequences(loaded, padId);
  }

  count(batch: LlamaBatch): BatchCount {
    let tokens = 0;
    for (const value of batch.attentionMask) tokens += value;
    return { examples: batch.batchSize, tokens };
  }

  private epochOrder(epoch: number): Uint32Array {
    if (this.order?.epoch !== epoch) {
      const indices = Uint32Array.from({ length: this.sequences }, (_, i) => i);
      createRng(this.options.seed, ORDER_STREAM, epoch).shuffle(indices);
      this.order = { epoch, indices };
    }
    return this.order.indices;
  }

  private sequence(global: number) {
    let d = this.starts.length - 1;
    while (this.starts[d]! > global) d--;
    return this.datasets[d]!.sequence(global - this.starts[d]!);
  }
}
