import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRng } from '@lora/dataset';
import {
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
import { fromFloat32, openSafetensors, toFloat32, writeSafetensors } from '@lora/safetensors';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loraLayer } from './lora.ts';
import { Session } from './session.ts';
import { safetensorsWeight } from './weights.ts';

const [IN, HIDDEN, OUT, BATCH, RANK] = [16, 32, 8, 64, 4];
const rng = createRng(42);
const randn = (n: number, scale: number) => Float32Array.from({ length: n }, () => rng.normal() * scale);

/** a [m, k] · b [k, n] */
function matmulRef(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a[i * k + t]! * b[t * n + j]!;
      out[i * n + j] = s;
    }
  return out;
}
const transposeRef = (a: Float32Array, m: number, n: number) =>
  Float32Array.from({ length: m * n }, (_, i) => a[(i % m) * n + Math.floor(i / m)]!);
const addRef = (a: Float32Array, b: Float32Array) => a.map((v, i) => v + b[i]!);

let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'lora-e2e-'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

it('fits a low-rank target with LoRA on a frozen 2-layer MLP read from safetensors (loss ÷ ≥ 100 in 200 SGD steps)', async () => {
  // Frozen base: W1 stored as F32, W2 as F16 (kept on disk as F16, cast in the graph).
  const w1 = randn(HIDDEN * IN, 0.3);
  const w2 = toFloat32(fromFloat32(randn(OUT * HIDDEN, 0.3), 'F16'), 'F16');
  const weightsPath = join(folder, 'base', 'mlp.safetensors');
  await mkdir(join(folder, 'base'));
  await writeSafetensors(weightsPath, {
    'fc1.weight': { dtype: 'F32', shape: [HIDDEN, IN], data: w1 },
    'fc2.weight': { dtype: 'F16', shape: [OUT, HIDDEN], data: fromFloat32(w2, 'F16') },
  });

  // Teacher: the same MLP with a rank-2 change in each layer.
  const delta = (out: number, inp: number) =>
    matmulRef(randn(out * 2, 0.4), randn(2 * inp, 0.4), out, 2, inp);
  const t1 = addRef(w1, delta(HIDDEN, IN));
  const t2 = addRef(w2, delta(OUT, HIDDEN));
  const x = randn(BATCH * IN, 1);
  const hidden = matmulRef(x, transposeRef(t1, HIDDEN, IN), BATCH, IN, HIDDEN).map(Math.tanh);
  const target = matmulRef(hidden, transposeRef(t2, OUT, HIDDEN), BATCH, HIDDEN, OUT);

  // The step graph: forward, MSE, gradients toward the LoRA parameters only, SGD update.
  const file = await openSafetensors(weightsPath);
  const graph = new Graph('mlp_step');
  const input = graph.input('x', 'float32', ['batch', IN]);
  const wanted = graph.input('target', 'float32', ['batch', OUT]);
  const lr = graph.input('lr', 'float32', []);
  const options = { rank: RANK, alpha: 2 * RANK, seed: 1 };
  const fc1 = loraLayer(input, safetensorsWeight(graph, file, 'fc1.weight'), 'fc1', options);
  const fc2 = loraLayer(tanh(fc1.output), safetensorsWeight(graph, file, 'fc2.weight'), 'fc2', {
    ...options,
    network: 'dora',
    seed: 2,
  });
  await file.close();
  const loss = graph.output(mseLoss(fc2.output, wanted), 'loss');
  const params = [...fc1.parameters, ...fc2.parameters];
  const grads = gradients(
    loss,
    params.map((p) => p.tensor),
  );
  params.forEach((p, i) => {
    graph.output(sub(p.tensor, mul(grads[i]!, lr)), `${p.name}.next`);
  });

  const runFolder = join(folder, 'run');
  const modelPath = await writeModel(graph, runFolder);
  // The weights were hard-linked next to the model, not copied or embedded.
  const [linked, original, model] = await Promise.all([
    stat(join(runFolder, 'mlp.safetensors')),
    stat(weightsPath),
    stat(modelPath),
  ]);
  expect(linked.ino).toBe(original.ino);
  expect(model.size).toBeLessThan(20_000);

  const session = await Session.create(modelPath, { device: 'cpu', threads: 2 });
  const state = new Map(params.map((p) => [p.name, p.initial]));
  const feeds = (): Record<string, HostTensor> => ({
    x: hostTensor('float32', [BATCH, IN], x),
    target: hostTensor('float32', [BATCH, OUT], target),
    lr: hostTensor('float32', [], Float32Array.of(0.5)),
    ...Object.fromEntries(params.map((p) => [p.name, hostTensor('float32', p.shape, state.get(p.name)!)])),
  });
  const losses: number[] = [];
  for (let step = 0; step < 200; step++) {
    const out = await session.run(feeds());
    losses.push((out['loss']!.data as Float32Array)[0]!);
    for (const p of params) state.set(p.name, out[`${p.name}.next`]!.data as Float32Array);
  }
  await session.dispose();
  expect(losses[0]! / losses.at(-1)!).toBeGreaterThanOrEqual(100);
  console.log(
    `MLP LoRA: loss ${losses[0]!.toExponential(3)} → ${losses.at(-1)!.toExponential(3)} in 200 steps`,
  );
});
