import type { DType, Graph, HostTensor, Tensor } from '@lora/engine';
import type { LoraParameter } from '../lora.ts';

/** What a model's micro-batch graph computes. */
export interface MicroBatchLoss {
  /** float32 scalar: the SUM of per-token (LLM) or per-example (SD) losses of this micro-batch. */
  lossSum: Tensor;
  /**
   * float32 scalar: what `lossSum` is a sum over (label tokens ≠ -100, or examples). The loop
   * divides the accumulated sums by the accumulated weights, so an optimizer step averages over
   * the whole effective batch exactly as one large batch would.
   */
  weight: Tensor;
  /** Every LoRA parameter the graph reads (graph inputs), in a stable order. */
  parameters: readonly LoraParameter[];
}

export interface BuildOptions {
  /** Element type of the frozen model's compute: float32 on CPU, float16 (or bfloat16) on CUDA. */
  computeDtype: DType;
  /**
   * The shape key of the micro-batches this graph will run (`TrainableModel.shapeKey`); absent
   * for models without `shapeKey`.
   */
  shapeKey?: string;
}

/**
 * The contract between a model (LLaMA, SD UNet, …) and the training loop. The model declares its
 * batch inputs on `graph` and returns the loss; the loop adds gradients, the optimizer and
 * everything else.
 */
export interface TrainableModel<Batch> {
  build(graph: Graph, options: BuildOptions): MicroBatchLoss;
  /**
   * Feeds for one micro-batch: every graph input the model declared except the LoRA parameters
   * (and `LORA_DROPOUT_SEED`, which LoRA layers with dropout declare and the loop feeds).
   */
  feeds(batch: Batch): Record<string, HostTensor>;
  /**
   * For models whose graph has static sizes that differ between micro-batches (SD latents of
   * each aspect bucket): the key of the graph `batch` needs, a name of 1–64 characters from
   * `[A-Za-z0-9_.-]` (it names the graph file). The loop builds one gradients graph per key on
   * first use (`build` gets the key) and keeps its session; every key's graph must declare the
   * same LoRA parameters. Without `shapeKey` one graph serves every micro-batch.
   */
  shapeKey?(batch: Batch): string;
}
