/**
 * Real-size key check without real weights: for Llama-3.2-1B, Qwen2-0.5B and Mistral-7B-v0.1,
 * a model folder whose safetensors files have the published tensor names, BF16 dtypes and
 * shapes, and no data (sparse files: the headers are real, the gigabytes are holes). Each full
 * training graph is built (not run): every tensor is consumed and every target
 * module gets its LoRA pair.
 */
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph, gradients } from '@lora/engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLlamaCheckpoint } from './checkpoint.ts';
import { parseLlamaConfig } from './config.ts';
import { LlamaModel } from './model.ts';
import { REAL_CONFIGS } from './real-configs.ts';
import { sparseSafetensors } from './testing.ts';
import { linearModulePath, llamaTensorShapes } from './weights.ts';

/** The model folder as published: Mistral-7B-v0.1 in two shards with an index, the others in one file. */
async function realFolder(root: string, name: keyof typeof REAL_CONFIGS): Promise<string> {
  const folder = join(root, name);
  await mkdir(folder);
  const config = REAL_CONFIGS[name];
  await writeFile(join(folder, 'config.json'), JSON.stringify(config));
  const shapes = llamaTensorShapes(parseLlamaConfig(config));
  if (name !== 'Mistral-7B-v0.1') {
    await sparseSafetensors(join(folder, 'model.safetensors'), shapes);
    return folder;
  }
  const names = [...shapes.keys()];
  const half = Math.ceil(names.length / 2);
  const weightMap: Record<string, string> = {};
  for (const [i, part] of [names.slice(0, half), names.slice(half)].entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    for (const tensor of part) weightMap[tensor] = file;
    await sparseSafetensors(join(folder, file), new Map(part.map((tensor) => [tensor, shapes.get(tensor)!])));
  }
  await writeFile(join(folder, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
  return folder;
}

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'llama-real-size-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe.each([
  ['Llama-3.2-1B', 146],
  ['Qwen2-0.5B', 290],
  ['Mistral-7B-v0.1', 291],
] as const)('%s at full size (headers only)', (name, tensorCount) => {
  it.each([
    ['q_proj, v_proj', ['q_proj', 'v_proj'] as const],
    ['all-linear', 'all-linear' as const],
  ])(
    'builds the training graph with LoRA on %s: every tensor consumed, every target found',
    async (label, targetModules) => {
      const folder = join(scratch, label.replace(/\W+/g, '-'));
      await mkdir(folder, { recursive: true });
      const checkpoint = await openLlamaCheckpoint(await realFolder(folder, name));
      const files = new Set([...checkpoint.tensors.values()].map((info) => info.path));
      const sizes = new Map(
        await Promise.all([...files].map(async (path) => [path, (await stat(path)).size] as const)),
      );
      expect(files.size).toBe(name === 'Mistral-7B-v0.1' ? 2 : 1);
      expect(checkpoint.tensors.size).toBe(tensorCount);
      const model = new LlamaModel(checkpoint, { targetModules, rank: 16, alpha: 32 });
      const graph = new Graph(name);
      const built = model.build(graph, { computeDtype: 'float16' });
      const grads = gradients(
        built.lossSum,
        built.parameters.map((p) => p.tensor),
      );
      expect(grads.every((g) => g.producer !== undefined)).toBe(true);

      const consumed = [...graph.initializers].flatMap(([tensor, data]) =>
        data.kind === 'external' ? [tensor] : [],
      );
      expect(consumed.map((t) => t.name).sort()).toEqual([...checkpoint.tensors.keys()].sort());
      expect(new Set(consumed.map((t) => t.dtype))).toEqual(new Set(['bfloat16']));

      const { spec } = checkpoint;
      const expected = Array.from({ length: spec.numLayers }, (_, layer) =>
        model.targets.flatMap((module) => {
          const path = linearModulePath(layer, module);
          return [`${path}.lora_A.weight`, `${path}.lora_B.weight`];
        }),
      ).flat();
      expect(model.targets.length).toBe(targetModules === 'all-linear' ? 7 : 2);
      expect(built.parameters.map((p) => p.name)).toEqual(expected);
      expect(built.parameters.map((p) => p.shape)).toEqual([...model.loraShapes().values()]);

      // Every external range lies inside its (sparse) file.
      for (const data of graph.initializers.values()) {
        if (data.kind === 'external')
          expect(data.offset + data.length).toBeLessThanOrEqual(sizes.get(data.path)!);
      }
    },
  );
});
