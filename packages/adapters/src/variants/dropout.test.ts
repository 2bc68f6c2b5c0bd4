import { estimateMemory, Graph, hostTensor } from '@lora/engine';
import { runGraph, valuesOf } from '@lora/engine/testing';
import { describe, expect, it } from 'vitest';
import { LORA_DROPOUT_SEED, loraDropout } from './dropout.ts';

/** The dropout of a ones tensor of `shape` (dims named where a string), as fed with `sizes`. */
async function mask(shape: (number | string)[], sizes: number[], seed: bigint): Promise<number[]> {
  const graph = new Graph('dropout');
  const x = graph.input('x', 'float32', shape);
  graph.output(loraDropout(x, 0.5, 1234), 'y');
  const count = sizes.reduce((a, b) => a * b, 1);
  const feeds = {
    x: hostTensor('float32', sizes, new Float32Array(count).fill(1)),
    [LORA_DROPOUT_SEED]: hostTensor('int64', [], BigInt64Array.of(seed)),
  };
  return valuesOf((await runGraph(graph, feeds))['y']);
}

describe('loraDropout', () => {
  it('masks by row-major element position: the same mask whatever the shape', async () => {
    const flat = await mask([24], [24], 7n);
    expect(await mask([2, 3, 4], [2, 3, 4], 7n)).toEqual(flat);
    expect(await mask(['batch', 'seq', 4], [2, 3, 4], 7n)).toEqual(flat);
    expect(flat.every((v) => v === 0 || v === 2)).toBe(true);
    expect(await mask([24], [24], 8n)).not.toEqual(flat);
  });

  it('keeps about 1 − p of the elements', async () => {
    const kept = (await mask([64, 64], [64, 64], 3n)).filter((v) => v !== 0).length / 4096;
    expect(Math.abs(kept - 0.5)).toBeLessThan(0.03);
  });

  it('adds no dim of its own, so the memory estimate sizes it from the input dims', () => {
    const graph = new Graph('dropout');
    const x = graph.input('x', 'float32', ['batch', 'seq', 8]);
    graph.output(loraDropout(x, 0.1, 99), 'y');
    expect(estimateMemory(graph, { batch: 2, seq: 5 }).peakActivations).toBeGreaterThan(0);
  });
});
