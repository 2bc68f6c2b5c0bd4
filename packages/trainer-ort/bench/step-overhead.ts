/**
 * Per-step overhead of onnxruntime-node for tiny graphs, and one small LoRA training step.
 * Run: `npx jiti bench/step-overhead.ts` (Node 20 has no --experimental-strip-types).
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createRng } from '@lora/dataset';
import {
  add,
  Graph,
  gradients,
  type HostTensor,
  hostTensor,
  mseLoss,
  mul,
  sub,
  tanh,
  writeModel,
} from '@lora/engine';
import { loraLayer } from '../src/lora.ts';
import { Session } from '../src/session.ts';

const rng = createRng(1);
const random = (n: number) => Float32Array.from({ length: n }, () => -1 + 2 * rng.next());

async function measure(
  name: string,
  graph: Graph,
  feeds: Record<string, HostTensor>,
  runs: number,
): Promise<void> {
  const folder = await mkdtemp(join(tmpdir(), 'bench-'));
  const path = await writeModel(graph, folder);
  const created = performance.now();
  const session = await Session.create(path, { device: 'cpu', threads: 2 });
  const createMs = performance.now() - created;
  for (let i = 0; i < 50; i++) await session.run(feeds);
  const start = performance.now();
  for (let i = 0; i < runs; i++) await session.run(feeds);
  const perStep = (performance.now() - start) / runs;
  console.log(
    `${name.padEnd(58)} ${perStep.toFixed(3)} ms/step   (session ${createMs.toFixed(1)} ms, ${graph.nodes.length} nodes)`,
  );
  await session.dispose();
  await rm(folder, { recursive: true, force: true });
}

/** One LoRA layer with tanh and SGD: N×D inputs, D→I frozen weight, rank 8 (as in refs/measured.md). */
function loraStep(n: number, d: number, i: number): { graph: Graph; feeds: Record<string, HostTensor> } {
  const graph = new Graph('step');
  const x = graph.input('x', 'float32', [n, d]);
  const target = graph.input('t', 'float32', [n, i]);
  const layer = loraLayer(x, graph.constant(random(i * d), 'float32', [i, d]), 'fc', { rank: 8, alpha: 8 });
  const loss = graph.output(mseLoss(tanh(layer.output), target), 'loss');
  const params = [...layer.parameters];
  gradients(
    loss,
    params.map((p) => p.tensor),
  ).forEach((g, k) => {
    graph.output(sub(params[k]!.tensor, mul(g, 0.1)), `${params[k]!.name}.next`);
  });
  const feeds: Record<string, HostTensor> = {
    x: hostTensor('float32', [n, d], random(n * d)),
    t: hostTensor('float32', [n, i], random(n * i)),
  };
  for (const p of params) feeds[p.name] = hostTensor('float32', p.shape, random(p.initial.length));
  return { graph, feeds };
}

const tiny = new Graph('tiny');
tiny.output(add(tiny.input('x', 'float32', [4]), 1), 'y');
await measure(
  'x + 1, 4 floats (pure call overhead)',
  tiny,
  { x: hostTensor('float32', [4], random(4)) },
  5000,
);
for (const [n, d, i] of [
  [32, 64, 128],
  [512, 256, 1024],
  [2048, 512, 2048],
] as const) {
  const { graph, feeds } = loraStep(n, d, i);
  await measure(`LoRA step fwd+bwd+SGD, N×D×I = ${n}×${d}×${i}, rank 8`, graph, feeds, n > 1000 ? 20 : 200);
}
