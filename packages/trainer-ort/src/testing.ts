/**
 * Test helper: run a graph once on the CPU provider from a temporary folder. Optimisation stays
 * `basic` so tests see this package's graph, not onnxruntime's fusions (which, for one, turn
 * x·sigmoid(x) into a float32-only QuickGelu and fold scales into float32 attributes).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Graph } from '@lora/engine';
import { type HostTensor, writeModel } from '@lora/engine';
import { Session } from './session.ts';

export async function runGraph(
  graph: Graph,
  feeds: Record<string, HostTensor> = {},
): Promise<Record<string, HostTensor>> {
  const folder = await mkdtemp(join(tmpdir(), 'run-graph-'));
  const session = await Session.create(await writeModel(graph, folder), {
    device: 'cpu',
    threads: 1,
    optimization: 'basic',
  });
  try {
    return await session.run(feeds);
  } finally {
    await session.dispose();
    await rm(folder, { recursive: true, force: true });
  }
}

/** Float values of an output as plain numbers. */
export function valuesOf(tensor: HostTensor | undefined): number[] {
  if (!tensor) throw new Error('missing output');
  return Array.from(tensor.data as ArrayLike<number | bigint>, Number);
}

/** max |actual − expected| / max |expected|: relative error of a whole tensor, defined near zeros too. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length)
    throw new Error(`${actual.length} values, expected ${expected.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return diff / scale;
}
