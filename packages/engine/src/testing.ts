/**
 * `@lora/engine/testing`: runs graphs on onnxruntime's CPU provider, for tests (it needs
 * onnxruntime-node, an optional peer dependency; the main entry imports no runtime).
 * Optimisation stays `basic` so tests see this package's graph, not onnxruntime's fusions
 * (which, for one, turn x·sigmoid(x) into a float32-only QuickGelu).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import type { Graph } from './graph/graph.ts';
import { readDataRoot, writeModel } from './graph/model-file.ts';
import type { GraphLoader, HostArray, HostDType, HostTensor, LoadedGraph } from './host-tensor.ts';

/** Loads an ONNX file the way the tests run every graph. */
export async function loadModel(path: string): Promise<LoadedGraph> {
  const options: InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'basic',
    intraOpNumThreads: 1,
  };
  const dataRoot = await readDataRoot(path);
  const session =
    dataRoot === undefined
      ? await InferenceSession.create(path, options)
      : await InferenceSession.create(dataRoot.bytes, {
          ...options,
          extra: { session: { model_external_initializers_file_folder_path: dataRoot.folder } },
        });
  return {
    async run(feeds, outputs) {
      const ortFeeds = Object.fromEntries(
        Object.entries(feeds).map(([name, t]) => [name, new Tensor(t.dtype, t.data, [...t.shape])]),
      );
      const results = await (outputs ? session.run(ortFeeds, [...outputs]) : session.run(ortFeeds));
      return Object.fromEntries(
        Object.entries(results).map(([name, t]) => [
          name,
          { dtype: t.type as HostDType, shape: [...t.dims], data: t.data as HostArray },
        ]),
      );
    },
    dispose: () => session.release(),
  };
}

/** Writes `graph` (external data linked) into a temporary folder and loads it. */
export const loadGraph: GraphLoader = async (graph) => {
  const folder = await mkdtemp(join(tmpdir(), 'engine-test-'));
  const loaded = await loadModel(await writeModel(graph, folder));
  return {
    run: loaded.run,
    async dispose() {
      await loaded.dispose();
      await rm(folder, { recursive: true, force: true });
    },
  };
};

export async function runGraph(
  graph: Graph,
  feeds: Record<string, HostTensor> = {},
): Promise<Record<string, HostTensor>> {
  const loaded = await loadGraph(graph);
  try {
    return await loaded.run(feeds);
  } finally {
    await loaded.dispose();
  }
}

/** Float values of an output as plain numbers. */
export function valuesOf(tensor: HostTensor | undefined): number[] {
  if (!tensor) throw new Error('missing output');
  return Array.from(tensor.data as ArrayLike<number | bigint>, Number);
}
