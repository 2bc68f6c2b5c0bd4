import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cast, Graph } from '@lora/engine';
import { fromFloat32, openSafetensors, writeSafetensors } from '@lora/safetensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGraph, valuesOf } from './testing.ts';
import { safetensorsWeight } from './weights.ts';

let folder: string;
let path: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'weights-'));
  path = join(folder, 'w.safetensors');
  await writeSafetensors(path, {
    a: { dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) },
    b: { dtype: 'BF16', shape: [3], data: fromFloat32(Float32Array.of(0.5, -3, 1.25), 'BF16') },
    c: { dtype: 'F8_E4M3', shape: [1], data: new Uint8Array(1) },
  });
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

describe('safetensorsWeight', () => {
  it('points an initializer at the tensor bytes in place, keeping the dtype', async () => {
    const file = await openSafetensors(path);
    const graph = new Graph();
    const b = safetensorsWeight(graph, file, 'b', 'model.b');
    expect(b).toMatchObject({ name: 'model.b', dtype: 'bfloat16', shape: [3] });
    expect(graph.initializers.get(b)).toEqual({
      kind: 'external',
      path,
      offset: file.dataStart + file.info('b').byteOffset,
      length: 6,
    });
    graph.output(cast(b, 'float32'), 'y');
    await file.close();
    // runGraph writes the model to a temp folder: the weights are hard-linked there.
    expect(valuesOf((await runGraph(graph))['y'])).toEqual([0.5, -3, 1.25]);
  });

  it.each([
    ['missing', /tensor 'missing' is not in/],
    ['c', /F8_E4M3, which the graph cannot hold/],
  ])('refuses tensor %s', async (key, message) => {
    const file = await openSafetensors(path);
    expect(() => safetensorsWeight(new Graph(), file, key)).toThrow(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT', message: expect.stringMatching(message) }),
    );
    await file.close();
  });
});
