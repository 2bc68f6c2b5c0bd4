/**
 * Where the loop's micro-batches come from. Random access by (epoch, index) lets a resumed run
 * start mid-epoch without replaying what came before; the dataset packages derive each epoch's
 * order from `createRng(seed, …, epoch)`, which gives exactly that.
 */

/** What one micro-batch holds, for throughput: examples, and tokens (text) or images. */
export type BatchCount = { examples: number; tokens: number } | { examples: number; images: number };

export interface BatchSource<Batch> {
  /** Micro-batches per epoch (≥ 1). */
  readonly microBatchesPerEpoch: number;
  /** Micro-batch `index` of `epoch` (both 0-based); the same arguments must give the same batch. */
  batch(epoch: number, index: number): Promise<Batch>;
  count(batch: Batch): BatchCount;
}
