/**
 * Test helpers: the tiny LLaMA / Qwen2 / Mistral fixtures and their PyTorch golden values, and
 * header-only safetensors files for real sizes.
 */
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DType, HostTensor } from '@lora/engine';
import { cast, Graph } from '@lora/engine';
import { runGraph, valuesOf } from '../../testing.ts';

export { relativeError } from '../../testing.ts';

import type { LlamaBatch, LlamaModel } from './model.ts';
import type { LlamaLinearModule } from './weights.ts';

/** `lora_start` / `lora_grads` / `lora_after_3_steps`: flat A and B values per module path. */
export type GoldenLora = Record<string, { A: number[]; B: number[] }>;

/** What tools/golden/llm_reference.py writes to `golden.json`. */
export interface Golden {
  rank: number;
  alpha: number;
  target_modules: LlamaLinearModule[];
  input_ids: number[][];
  attention_mask: number[][];
  labels: number[][];
  logits_shape: number[];
  logits: number[];
  loss: number;
  lora_start: GoldenLora;
  lora_grads: GoldenLora;
  adamw: {
    lr: number;
    betas: [number, number];
    eps: number;
    weight_decay: number;
    losses: number[];
    lora_after_3_steps: GoldenLora;
  };
}

export const FIXTURES = ['llama', 'qwen2', 'mistral'] as const;

export const fixtureFolder = (name: string): string =>
  fileURLToPath(new URL(`../__fixtures__/${name}`, import.meta.url));

export const readGolden = (name: string): Golden =>
  JSON.parse(readFileSync(join(fixtureFolder(name), 'golden.json'), 'utf8'));

/** The golden A / B values by parameter name (`<module>.lora_A.weight`, `<module>.lora_B.weight`). */
export function byParameter(values: GoldenLora): Map<string, Float32Array> {
  return new Map(
    Object.entries(values).flatMap(([module, { A, B }]) => [
      [`${module}.lora_A.weight`, Float32Array.from(A)],
      [`${module}.lora_B.weight`, Float32Array.from(B)],
    ]),
  );
}

export function goldenBatch(golden: Golden): LlamaBatch {
  const [batchSize, seqLen] = [golden.input_ids.length, golden.input_ids[0]!.length];
  return {
    batchSize,
    seqLen,
    inputIds: Int32Array.from(golden.input_ids.flat()),
    labels: Int32Array.from(golden.labels.flat()),
    attentionMask: Int32Array.from(golden.attention_mask.flat()),
  };
}

/** Runs the model's forward graph once on the CPU and returns the mean loss and the logits. */
export async function forward(
  model: LlamaModel,
  batch: LlamaBatch,
  computeDtype: DType = 'float32',
): Promise<{ loss: number; logits: number[]; graph: Graph }> {
  const graph = new Graph('llama_forward');
  const built = model.build(graph, { computeDtype });
  graph.output(cast(built.logits, 'float32'), 'logits');
  graph.output(built.lossSum, 'loss_sum');
  graph.output(built.weight, 'weight');
  const feeds: Record<string, HostTensor> = model.feeds(batch);
  for (const p of built.parameters) feeds[p.name] = { dtype: 'float32', shape: p.shape, data: p.initial };
  const out = await runGraph(graph, feeds);
  return {
    loss: valuesOf(out['loss_sum'])[0]! / valuesOf(out['weight'])[0]!,
    logits: valuesOf(out['logits']),
    graph,
  };
}

/** A safetensors file with this header and a data section of holes. */
export async function sparseSafetensors(
  path: string,
  tensors: ReadonlyMap<string, readonly number[]>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of tensors) {
    const length = 2 * shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + length] };
    offset += length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const prefix = Buffer.alloc(8 + json.length);
  prefix.writeBigUInt64LE(BigInt(json.length));
  prefix.write(json, 8, 'utf8');
  const file = await open(path, 'w');
  try {
    await file.write(prefix);
    await file.truncate(prefix.length + offset);
  } finally {
    await file.close();
  }
}
