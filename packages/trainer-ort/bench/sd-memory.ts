/**
 * Peak memory and step time of one SD training step, batch 1: SD 1.5 at 512 px (64×64 latents) or
 * SDXL 1.0 at 1024 px (128×128 latents), from a random F16 single file of the real layout (UNet
 * and text encoders; latents are given, the VAE does not run), frozen weights kept in F16 and
 * widened where used. LoRA rank 16 on the UNet's to_q/to_k/to_v/to_out, and for SD 1.5 on the
 * text encoder's q/k/v/out_proj (SDXL LoRAs usually train the UNet alone); the loss forward and
 * backward to every LoRA tensor on the CPU provider. Each variant runs in its own process, so the
 * peak resident size is that variant's alone:
 *   npx jiti bench/sd-memory.ts [sd15|sdxl] [variant…]    # default: sd15, every variant
 *   npx jiti bench/sd-memory.ts <family> <variant> <file>  # one variant on an existing file
 * The random checkpoint goes to the temp folder first (1.9 GB for SD 1.5, 6.9 GB for SDXL) and is
 * removed afterwards. `ESTIMATE_ONLY=1` prints the static estimate alone.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
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
import { SD15, SDXL, type SdModelConfig } from '../src/models/sd/config.ts';
import { LDM_PREFIXES, SDXL_CLIP_PREFIX } from '../src/models/sd/keys.ts';
import { clipTextModel, ldmUnet, openClipTextModel, type Shapes } from '../src/models/sd/ldm-layout.ts';
import { buildSdLoss } from '../src/models/sd/loss.ts';
import { Session } from '../src/session.ts';

const VARIANTS: Record<string, MemoryOptions> = {
  kept: {},
  checkpointed: { checkpointBlocks: true },
  'checkpointed+chunked': { checkpointBlocks: true, attentionQueryChunk: ATTENTION_QUERY_CHUNK },
};
const TOKENS = 77;

interface Family {
  config: SdModelConfig;
  /** The single file's tensors, by key. */
  tensors(): Shapes;
  latentSide: number;
  /** The text encoders' LoRA targets. */
  textEncoder: string[];
}

const prefixed = (prefix: string, shapes: Shapes): Shapes =>
  shapes.map(([key, shape]) => [prefix + key, shape]);

const FAMILIES: Record<string, Family> = {
  sd15: {
    config: SD15,
    tensors: () => [
      ...prefixed(LDM_PREFIXES.unet, ldmUnet()),
      ...prefixed(LDM_PREFIXES.text_encoder, clipTextModel()),
    ],
    latentSide: 64,
    textEncoder: ['q_proj', 'k_proj', 'v_proj', 'out_proj'],
  },
  sdxl: {
    config: SDXL,
    tensors: () => [
      ...prefixed(LDM_PREFIXES.unet, ldmUnet(SDXL.unet)),
      ...prefixed(SDXL_CLIP_PREFIX, clipTextModel(SDXL.textEncoder)),
      ...prefixed('conditioner.embedders.1.model.', openClipTextModel(SDXL.textEncoder2!)),
    ],
    latentSide: 128,
    textEncoder: [],
  },
};

/** A random F16 checkpoint (values repeat a 1 Mi pool: memory and speed matter, not statistics). */
async function writeRandom(family: Family, path: string): Promise<void> {
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
    new Map(family.tensors().map(([key, shape]) => [key, tensor(shape)] as const)),
  );
}

async function measure(family: Family, memory: MemoryOptions, weights: string): Promise<string> {
  const { checkpoint, close } = await openSdCheckpoint(weights, family.config);
  const side = family.latentSide;
  const graph = new Graph('sd_loss');
  const built = buildSdLoss(graph, checkpoint, {
    latentSize: [side, side],
    batch: 1,
    text: 'ids',
    tokens: TOKENS,
    prediction: 'epsilon',
    lora: { rank: 16, alpha: 16, unet: ['to_q', 'to_k', 'to_v', 'to_out'], textEncoder: family.textEncoder },
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
  const folder = await mkdtemp(join(tmpdir(), 'sd-memory-graph-'));
  try {
    let start = performance.now();
    const session = await Session.create(await writeModel(graph, folder), { device: 'cpu' });
    const load = (performance.now() - start) / 1000;
    const loaded = process.memoryUsage().rss / 2 ** 30;
    const rng = createRng(5);
    const latent = [1, 4, side, side];
    const randn = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
    const ids = () =>
      hostTensor(
        'int64',
        [1, TOKENS],
        BigInt64Array.from({ length: TOKENS }, (_, i) => BigInt((i * 7919) % 49408)),
      );
    const feeds: Record<string, HostTensor> = {
      latents: hostTensor('float32', latent, randn(4 * side * side)),
      noise: hostTensor('float32', latent, randn(4 * side * side)),
      timesteps: hostTensor('int64', [1], BigInt64Array.of(500n)),
      loss_weights: hostTensor('float32', [1], Float32Array.of(1)),
      input_ids: ids(),
      ...(family.config.textEncoder2
        ? {
            input_ids_2: ids(),
            // A 1024² image, uncropped: original size, crop top-left, target size.
            time_ids: hostTensor('int64', [1, 6], BigInt64Array.of(1024n, 1024n, 0n, 0n, 1024n, 1024n)),
          }
        : {}),
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

const [familyName = 'sd15', ...rest] = process.argv.slice(2);
const family = FAMILIES[familyName];
if (!family) throw new Error(`families: ${Object.keys(FAMILIES).join(', ')}`);
const [variant, file] = rest;
if (file !== undefined && existsSync(file)) {
  const memory = VARIANTS[variant!];
  if (!memory) throw new Error(`variants: ${Object.keys(VARIANTS).join(', ')}`);
  console.log(`${familyName} ${variant!.padEnd(22)} ${await measure(family, memory, file)}`);
} else {
  const chosen = rest.length > 0 ? rest : Object.keys(VARIANTS);
  const unknown = chosen.filter((name) => !(name in VARIANTS));
  if (unknown.length > 0) throw new Error(`variants: ${Object.keys(VARIANTS).join(', ')}`);
  const root = await mkdtemp(join(tmpdir(), 'bench-sd-memory-'));
  try {
    const path = join(root, `${familyName}.safetensors`);
    await writeRandom(family, path);
    const self = fileURLToPath(import.meta.url);
    for (const name of chosen) {
      const run = spawnSync('npx', ['jiti', self, familyName, name, path], { encoding: 'utf8' });
      process.stdout.write(run.stdout);
      if (run.status !== 0) process.stderr.write(run.stderr);
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
