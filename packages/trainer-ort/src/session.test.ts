import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { add, Graph, hostTensor, mul, writeModel } from '@lora/engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCudaInstalled, Session } from './session.ts';

let folder: string;
let modelPath: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'session-'));
  const graph = new Graph();
  const x = graph.input('x', 'float32', ['n']);
  graph.output(add(mul(x, 2), 1), 'y');
  graph.output(mul(x, x), 'squared');
  modelPath = await writeModel(graph, folder);
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

const feed = { x: hostTensor('float32', [3], Float32Array.of(1, 2, 3)) };

describe('Session', () => {
  it('runs a model and returns the outputs asked for', async () => {
    const session = await Session.create(modelPath, { device: 'cpu', threads: 1 });
    expect(session.device).toBe('cpu');
    expect(session.inputNames).toEqual(['x']);
    expect(session.outputNames).toEqual(['y', 'squared']);
    const all = await session.run(feed);
    expect(Array.from(all['y']!.data as Float32Array)).toEqual([3, 5, 7]);
    const some = await session.run(feed, ['squared']);
    expect(Object.keys(some)).toEqual(['squared']);
    expect(some['squared']).toMatchObject({ dtype: 'float32', shape: [3] });
    await session.dispose();
    await expect(session.run(feed)).rejects.toMatchObject({
      code: 'E_RUN_FAILED',
      message: expect.stringMatching(/disposed/),
    });
  });

  it.runIf(!isCudaInstalled())('turns a provider that does not start into DEVICE_UNAVAILABLE', async () => {
    await expect(Session.create(modelPath, { device: 'cuda' })).rejects.toMatchObject({
      code: 'E_DEVICE_UNAVAILABLE',
      message: expect.stringMatching(/device 'cuda' failed to start for .*model.*lora doctor/),
    });
  });

  it('dumps the optimised model when asked', async () => {
    const dump = join(folder, 'optimized.onnx');
    const session = await Session.create(modelPath, {
      device: 'cpu',
      optimization: 'extended',
      optimizedModelPath: dump,
    });
    await session.dispose();
    expect(existsSync(dump)).toBe(true);
  });

  it.each([
    [
      'feeds whose data does not fill the shape',
      { x: hostTensor('float32', [4], Float32Array.of(1)) },
      /1 values for shape \[4\]/,
    ],
    ['feeds of the wrong type', { x: hostTensor('float64', [1], Float64Array.of(1)) }, /running .* failed/],
    ['missing feeds', {}, /running .* failed/],
  ])('reports %s as RUN_FAILED', async (_, feeds, message) => {
    const session = await Session.create(modelPath, { device: 'cpu' });
    await expect(session.run(feeds)).rejects.toMatchObject({
      code: 'E_RUN_FAILED',
      message: expect.stringMatching(message),
    });
    await session.dispose();
  });

  it('reports a model onnxruntime refuses as SESSION_FAILED, naming the file', async () => {
    const broken = join(folder, 'broken.onnx');
    await writeFile(broken, 'not a model');
    await expect(Session.create(broken, { device: 'cpu' })).rejects.toMatchObject({
      code: 'E_SESSION_FAILED',
      message: expect.stringContaining(broken),
    });
  });
});
