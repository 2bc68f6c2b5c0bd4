/**
 * Peak memory and step time of one SD 1.5 training step at 512 px (64×64 latents), batch 1:
 * the text encoder and the UNet in float32 from a random F16 single file (UNet + CLIP text
 * encoder, the LDM layout), LoRA rank 16 on the UNet's to_q/to_k/to_v/to_out and the text
 * encoder's q/k/v/out_proj, loss forward and backward to every LoRA tensor, CPU provider. Each
 * variant runs in its own process, so the peak resident size is that variant's alone:
 *   npx jiti bench/sd15-memory.ts                  # kept, checkpointed, checkpointed + chunked attention
 *   npx jiti bench/sd15-memory.ts <variant> <file> # one variant on an existing file
 * Writes a 1.9 GB random checkpoint to the temp folder first (removed afterwards).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createRng } from '@lora/dataset';
import {
  estimateMemory,
  Graph,
  gradients,
  type HostTensor,
  hostTensor,
  toFloat16Bits,
  writeModel,
} from '@lora/engine';
import { writeSafetensors } from '@lora/safetensors';
import { ATTENTION_QUERY_CHUNK, type MemoryOptions } from '../src/models/memory.ts';
import { openSdCheckpoint } from '../src/models/sd/checkpoint.ts';
import { SD15 } from '../src/models/sd/config.ts';
import { clipTextModel, ldmUnet } from '../src/models/sd/ldm-layout.ts';
import { buildSdLoss } from '../src/models/sd/loss.ts';
import { Session } from '../src/session.ts';

const VARIANTS: Record<string, MemoryOptions> = {
  kept: {},
  checkpointed: { checkpointBlocks: true },
  'checkpointed+chunked': { checkpointBlocks: true, attentionQueryChunk: ATTENTION_QUERY_CHUNK },
};
const TOKENS = 77;
const [variant, file] = process.argv.slice(2);

/** A random F16 SD 1.5 UNet and text encoder (values repeat a 1 Mi pool: memory and speed matter, not statistics). */
async function writeRandomSd15(path: string): Promise<void> {
  const rng = createRng(3);
  const pool = Uint16Array.from({ length: 1 << 20 }, () => toFloat16Bits(rng.normal() * 0.02));
  const tensor = (shape: readonly number[]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = () => {
      const out = new Uint16Array(size);
      for (let at = 0; at < size; at += pool.length)
        out.set(pool.subarray(0, Math.min(pool.length, size - at)), at);
      return out;
    };
    return { dtype: 'F16' as const, shape, data };
  };
  await writeSafetensors(
    path,
    new Map([
      ...ldmUnet().map(([key, shape]) => [`model.diffusion_model.${key}`, tensor(shape)] as const),
      ...clipTextModel().map(
        ([key, shape]) => [`cond_stage_model.transformer.${key}`, tensor(shape)] as const,
      ),
    ]),
  );
}

async function measure(memory: MemoryOptions, weights: string): Promise<string> {
  const { checkpoint, close } = await openSdCheckpoint(weights, SD15);
  const graph = new Graph('sd_loss');
  const built = buildSdLoss(graph, checkpoint, {
    latentSize: [64, 64],
    batch: 1,
    text: 'ids',
    tokens: TOKENS,
    prediction: 'epsilon',
    lora: {
      rank: 16,
      alpha: 16,
      unet: ['to_q', 'to_k', 'to_v', 'to_out'],
      textEncoder: ['q_proj', 'k_proj', 'v_proj', 'out_proj'],
    },
    memory,
  });
  const params = built.parameters;
  for (const [i, g] of gradients(
    built.loss,
    params.map((p) => p.tensor),
  ).entries()) {
    graph.output(g, `grad.${params[i]!.name}`);
  }
  graph.output(built.loss, 'loss');
  await close();
  const estimate = estimateMemory(graph, {});
  const gib = (bytes: number) => (bytes / 2 ** 30).toFixed(2);
  const estimated = `estimate: weights ${gib(estimate.weights)} GiB, activations ${gib(estimate.peakActivations)} GiB`;
  if (process.env.ESTIMATE_ONLY) return estimated;
  const folder = await mkdtemp(join(tmpdir(), 'sd15-memory-graph-'));
  try {
    let start = performance.now();
    const session = await Session.create(await writeModel(graph, folder), { device: 'cpu' });
    const load = (performance.now() - start) / 1000;
    const loaded = process.memoryUsage().rss / 2 ** 30;
    const rng = createRng(5);
    const latent = [1, 4, 64, 64];
    const randn = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
    const feeds: Record<string, HostTensor> = {
      latents: hostTensor('float32', latent, randn(4 * 64 * 64)),
      noise: hostTensor('float32', latent, randn(4 * 64 * 64)),
      timesteps: hostTensor('int64', [1], BigInt64Array.of(500n)),
      loss_weights: hostTensor('float32', [1], Float32Array.of(1)),
      input_ids: hostTensor(
        'int64',
        [1, TOKENS],
        BigInt64Array.from({ length: TOKENS }, (_, i) => BigInt((i * 7919) % 49408)),
      ),
    };
    for (const p of params) feeds[p.name] = hostTensor('float32', p.shape, p.initial);
    const times: number[] = [];
    let loss = 0;
    for (let step = 0; step < 2; step++) {
      start = performance.now();
      const out = await session.run(feeds);
      times.push((performance.now() - start) / 1000);
      loss = Number((out['loss']!.data as Float32Array)[0]);
    }
    await session.dispose();
    const peak = process.resourceUsage().maxRSS / 2 ** 20;
    return (
      `peak RSS ${peak.toFixed(2)} GiB (${loaded.toFixed(2)} once loaded), session ${load.toFixed(1)} s, steps ${times.map((t) => t.toFixed(1)).join(' / ')} s, ` +
      `${graph.nodes.length} nodes, ${params.length} LoRA tensors, loss ${loss.toFixed(6)}; ${estimated}`
    );
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

if (variant === undefined) {
  const root = await mkdtemp(join(tmpdir(), 'bench-sd15-memory-'));
  try {
    const path = join(root, 'sd15.safetensors');
    await writeRandomSd15(path);
    const self = fileURLToPath(import.meta.url);
    for (const name of Object.keys(VARIANTS)) {
      const run = spawnSync('npx', ['jiti', self, name, path], { encoding: 'utf8' });
      process.stdout.write(run.stdout);
      if (run.status !== 0) process.stderr.write(run.stderr);
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
} else if (variant === 'write') {
  await writeRandomSd15(file!);
} else {
  const memory = VARIANTS[variant];
  if (!memory) throw new Error(`variants: ${Object.keys(VARIANTS).join(', ')}, or write <file>`);
  console.log(`${variant.padEnd(22)} ${await measure(memory, file!)}`);
}
