/**
 * Peak memory and step time of one LLaMA training step (forward, loss, backward toward LoRA on all
 * seven linears, rank 16) with and without gradient checkpointing, each in its own process so the
 * peak resident size is that variant's alone. A 12-layer, 512-wide model with random F32 weights,
 * batch 4 × 512 tokens: activations, not weights, fill the memory.
 * Run: `npx jiti bench/checkpointing-memory.ts` (spawns itself with `kept` and `recomputed`).
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Graph, gradients, type HostTensor, writeModel } from '@lora/engine';
import { writeSafetensors } from '@lora/safetensors';
import { openLlamaCheckpoint } from '../src/models/llama/checkpoint.ts';
import { parseLlamaConfig } from '../src/models/llama/config.ts';
import { LlamaModel } from '../src/models/llama/model.ts';
import { llamaTensorShapes } from '../src/models/llama/weights.ts';
import { Session } from '../src/session.ts';

const CONFIG = {
  architectures: ['LlamaForCausalLM'],
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  hidden_size: 512,
  intermediate_size: 1408,
  num_hidden_layers: 12,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  vocab_size: 4096,
  tie_word_embeddings: false,
};
const [BATCH, SEQ] = [4, 512];
const variant = process.argv[2];

if (variant === undefined) {
  const root = await mkdtemp(join(tmpdir(), 'bench-checkpointing-'));
  try {
    let seed = 1;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31 - 0.5;
    };
    const shapes = llamaTensorShapes(parseLlamaConfig(CONFIG));
    await mkdir(join(root, 'model'));
    await writeFile(join(root, 'model', 'config.json'), JSON.stringify(CONFIG));
    await writeSafetensors(
      join(root, 'model', 'model.safetensors'),
      new Map(
        [...shapes].map(([name, shape]) => {
          const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => random() * 0.1);
          if (name.endsWith('norm.weight')) data.fill(1);
          return [name, { dtype: 'F32' as const, shape, data }];
        }),
      ),
    );
    const self = fileURLToPath(import.meta.url);
    for (const which of ['kept', 'recomputed']) {
      const run = spawnSync('npx', ['jiti', self, which, root], { encoding: 'utf8' });
      process.stdout.write(run.stdout);
      if (run.status !== 0) process.stderr.write(run.stderr);
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
} else {
  const root = process.argv[3]!;
  const model = new LlamaModel(await openLlamaCheckpoint(join(root, 'model')), {
    targetModules: 'all-linear',
    rank: 16,
    alpha: 16,
    gradientCheckpointing: variant === 'recomputed',
  });
  const graph = new Graph('step');
  const built = model.build(graph, { computeDtype: 'float32' });
  graph.output(built.lossSum, 'loss');
  gradients(
    built.lossSum,
    built.parameters.map((p) => p.tensor),
  ).forEach((g, i) => {
    graph.output(g, `grad:${built.parameters[i]!.name}`);
  });
  const session = await Session.create(await writeModel(graph, join(root, variant)), { device: 'cpu' });
  const ids = Int32Array.from({ length: BATCH * SEQ }, (_, i) => (i * 7919) % CONFIG.vocab_size);
  const feeds: Record<string, HostTensor> = model.feeds({
    batchSize: BATCH,
    seqLen: SEQ,
    inputIds: ids,
    labels: ids,
    attentionMask: new Int32Array(BATCH * SEQ).fill(1),
  });
  for (const p of built.parameters) feeds[p.name] = { dtype: 'float32', shape: p.shape, data: p.initial };
  const times: number[] = [];
  let loss = 0;
  for (let step = 0; step < 3; step++) {
    const start = performance.now();
    const out = await session.run(feeds);
    times.push(performance.now() - start);
    loss = Number((out['loss']!.data as Float32Array)[0]);
  }
  await session.dispose();
  const peak = process.resourceUsage().maxRSS / 2 ** 20;
  console.log(
    `${variant.padEnd(10)} peak RSS ${peak.toFixed(2)} GiB, step ${(Math.min(...times) / 1000).toFixed(2)} s (best of 3), loss sum ${loss.toFixed(3)}`,
  );
}
