/**
 * Peak memory and step time of one LLaMA training step (forward, loss, backward toward LoRA on all
 * seven linears, rank 16) with and without gradient checkpointing, each in its own process so the
 * peak resident size is that variant's alone, beside the estimate `lora train` prints. Models:
 * - `12L` (default): 12 layers, 512 wide, random F32 weights, batch 4 × 512 tokens (activations,
 *   not weights, fill the memory);
 * - `Llama-3.2-1B`: the real layout and sizes, random BF16 weights, batch 1 × 512 tokens;
 * - `Qwen2-7B-1L`: Qwen2-7B's real layout with one of its 28 decoder layers, random BF16 weights,
 *   batch 1 × 512, scaled to the whole model by arithmetic: the measured peak plus what the
 *   estimate adds for the other 27 layers (built from a header-only file of the full model).
 * Run: `npx jiti bench/checkpointing-memory.ts [12L|Llama-3.2-1B|Qwen2-7B-1L]` (spawns itself per variant).
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import {
  estimateMemory,
  Graph,
  gradients,
  type HostTensor,
  type MemoryEstimate,
  writeModel,
} from '@lora/engine';
import { writeSafetensors } from '@lora/safetensors';
import { openLlamaCheckpoint } from '../src/models/llama/checkpoint.ts';
import { parseLlamaConfig } from '../src/models/llama/config.ts';
import { LlamaModel } from '../src/models/llama/model.ts';
import { REAL_CONFIGS } from '../src/models/llama/real-configs.ts';
import { sparseSafetensors } from '../src/models/llama/testing.ts';
import { llamaTensorShapes } from '../src/models/llama/weights.ts';
import { Session } from '../src/session.ts';

const MODELS = {
  '12L': {
    config: {
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
    },
    dtype: 'F32',
    batch: 4,
  },
  'Llama-3.2-1B': { config: REAL_CONFIGS['Llama-3.2-1B'], dtype: 'BF16', batch: 1 },
  'Qwen2-7B-1L': {
    config: { ...REAL_CONFIGS['Qwen2-7B'], num_hidden_layers: 1 },
    dtype: 'BF16',
    batch: 1,
    whole: REAL_CONFIGS['Qwen2-7B'],
  },
} as const;
const SEQ = 512;
const [name = '12L', variant, root] = process.argv.slice(2);
const model = MODELS[name as keyof typeof MODELS];
if (!model) throw new Error(`models: ${Object.keys(MODELS).join(', ')}`);

/** Random weights (a repeated pool: memory and speed matter, not statistics), norms at 1. */
async function writeRandomModel(folder: string): Promise<void> {
  let seed = 1;
  const pool = Float32Array.from({ length: 1 << 20 }, () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return (seed / 2 ** 31 - 0.5) * 0.1;
  });
  const bf16 = new Uint16Array(new Uint32Array(pool.buffer).map((bits) => bits >>> 16));
  await mkdir(folder);
  await writeFile(join(folder, 'config.json'), JSON.stringify(model.config));
  const shapes = llamaTensorShapes(parseLlamaConfig(model.config));
  const tensor = (tensorName: string, shape: readonly number[]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = () => {
      const out = model.dtype === 'F32' ? new Float32Array(size) : new Uint16Array(size);
      if (tensorName.endsWith('norm.weight')) return out.fill(model.dtype === 'F32' ? 1 : 0x3f80);
      const source = model.dtype === 'F32' ? pool : bf16;
      for (let at = 0; at < size; at += source.length) {
        out.set(source.subarray(0, Math.min(source.length, size - at)) as never, at);
      }
      return out;
    };
    return { dtype: model.dtype, shape, data };
  };
  await writeSafetensors(
    join(folder, 'model.safetensors'),
    new Map([...shapes].map(([key, shape]) => [key, tensor(key, shape)])),
  );
}

/** The step's graph: forward, loss, gradients toward every LoRA tensor. */
async function stepGraph(folder: string, recompute: boolean) {
  const llama = new LlamaModel(await openLlamaCheckpoint(folder), {
    targetModules: 'all-linear',
    rank: 16,
    alpha: 16,
    memory: { checkpointBlocks: recompute },
  });
  const graph = new Graph('step');
  const built = llama.build(graph, { computeDtype: 'float32' });
  graph.output(built.lossSum, 'loss');
  for (const [i, g] of gradients(
    built.lossSum,
    built.parameters.map((p) => p.tensor),
  ).entries()) {
    graph.output(g, `grad:${built.parameters[i]!.name}`);
  }
  return { llama, graph, built, estimate: estimateMemory(graph, { batch: model.batch, seq: SEQ }) };
}

const gib = (bytes: number) => (bytes / 2 ** 30).toFixed(2);

/** The whole model's estimate minus this one's, from a header-only file of the whole model. */
async function estimateOfTheRest(root: string, recompute: boolean, part: MemoryEstimate): Promise<number> {
  if (!('whole' in model)) return 0;
  const folder = join(root, 'whole');
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, 'config.json'), JSON.stringify(model.whole));
  await sparseSafetensors(
    join(folder, 'model.safetensors'),
    llamaTensorShapes(parseLlamaConfig(model.whole)),
  );
  const { estimate } = await stepGraph(folder, recompute);
  return (
    estimate.weights +
    estimate.peakActivations +
    estimate.inputs -
    (part.weights + part.peakActivations + part.inputs)
  );
}

async function measure(recompute: boolean, folder: string): Promise<string> {
  const { llama, built, graph, estimate } = await stepGraph(folder, recompute);
  const session = await Session.create(await writeModel(graph, join(folder, '..', String(recompute))), {
    device: 'cpu',
  });
  const vocab = model.config.vocab_size;
  const ids = Int32Array.from({ length: model.batch * SEQ }, (_, i) => (i * 7919) % vocab);
  const feeds: Record<string, HostTensor> = llama.feeds({
    batchSize: model.batch,
    seqLen: SEQ,
    inputIds: ids,
    labels: ids,
    attentionMask: new Int32Array(model.batch * SEQ).fill(1),
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
  const peak = process.resourceUsage().maxRSS * 1024;
  const rest = await estimateOfTheRest(join(folder, '..'), recompute, estimate);
  return (
    `peak RSS ${gib(peak)} GiB, step ${(Math.min(...times) / 1000).toFixed(2)} s (best of 3), ` +
    `loss sum ${loss.toFixed(3)}; estimate: weights ${gib(estimate.weights)} GiB, activations ${gib(estimate.peakActivations)} GiB` +
    (rest > 0 ? `; the whole model: about ${gib(peak + rest)} GiB (+${gib(rest)} GiB estimated)` : '')
  );
}

if (variant === undefined) {
  const scratch = await mkdtemp(join(tmpdir(), 'bench-checkpointing-'));
  try {
    await writeRandomModel(join(scratch, 'model'));
    const self = fileURLToPath(import.meta.url);
    for (const which of ['kept', 'recomputed']) {
      const run = spawnSync('npx', ['jiti', self, name, which, scratch], { encoding: 'utf8' });
      process.stdout.write(run.stdout);
      if (run.status !== 0) process.stderr.write(run.stderr);
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
} else {
  const line = await measure(variant === 'recomputed', join(root!, 'model'));
  console.log(`${name} ${variant.padEnd(10)} ${line}`);
}
