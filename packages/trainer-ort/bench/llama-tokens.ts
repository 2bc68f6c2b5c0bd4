/**
 * Training throughput of the LLaMA graph on the CPU: tokens per second of one micro-batch step
 * (forward, causal-LM loss, backward toward LoRA q_proj/v_proj rank 8; the optimizer update is
 * the loop's and costs little next to it), for a tiny quick-start-sized model and a ~25M-parameter
 * one, random F32 weights. Run: `npx jiti bench/llama-tokens.ts`.
 */

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Graph, gradients, type HostTensor, writeModel } from '@lora/engine';
import { writeSafetensors } from '@lora/safetensors';
import { openLlamaCheckpoint } from '../src/models/llama/checkpoint.ts';
import { parseLlamaConfig } from '../src/models/llama/config.ts';
import { type LlamaBatch, LlamaModel } from '../src/models/llama/model.ts';
import { llamaTensorShapes } from '../src/models/llama/weights.ts';
import { Session } from '../src/session.ts';

const CONFIGS = {
  'tiny (quick-start size)': {
    hidden_size: 64,
    intermediate_size: 172,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 512,
    tie_word_embeddings: true,
  },
  '~25M parameters': {
    hidden_size: 512,
    intermediate_size: 1408,
    num_hidden_layers: 6,
    num_attention_heads: 8,
    num_key_value_heads: 4,
    vocab_size: 8192,
    tie_word_embeddings: false,
  },
};
const [BATCH, SEQ] = [4, 128];

let seed = 1;
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31 - 0.5;
};

const root = await mkdtemp(join(tmpdir(), 'bench-llama-'));
try {
  for (const [label, sizes] of Object.entries(CONFIGS)) {
    const config = { architectures: ['LlamaForCausalLM'], rms_norm_eps: 1e-5, rope_theta: 10000, ...sizes };
    const shapes = llamaTensorShapes(parseLlamaConfig(config));
    const folder = join(root, label.replace(/\W+/g, '-'));
    await mkdir(folder);
    await writeFile(join(folder, 'config.json'), JSON.stringify(config));
    const tensors = new Map(
      [...shapes].map(([name, shape]) => {
        const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => random() * 0.1);
        if (name.endsWith('norm.weight')) data.fill(1);
        return [name, { dtype: 'F32' as const, shape, data }];
      }),
    );
    await writeSafetensors(join(folder, 'model.safetensors'), tensors);
    const parameters = [...shapes.values()].reduce((sum, s) => sum + s.reduce((a, b) => a * b, 1), 0);

    const model = new LlamaModel(await openLlamaCheckpoint(folder), {
      targetModules: ['q_proj', 'v_proj'],
      rank: 8,
      alpha: 16,
    });
    const graph = new Graph('bench');
    const built = model.build(graph, { computeDtype: 'float32' });
    graph.output(built.lossSum, 'loss_sum');
    gradients(
      built.lossSum,
      built.parameters.map((p) => p.tensor),
    ).forEach((g, i) => {
      graph.output(g, `grad_${i}`);
    });
    const session = await Session.create(await writeModel(graph, join(folder, 'run')), { device: 'cpu' });
    const ids = Int32Array.from({ length: BATCH * SEQ }, (_, i) => (i * 7919) % sizes.vocab_size);
    const batch: LlamaBatch = {
      batchSize: BATCH,
      seqLen: SEQ,
      inputIds: ids,
      labels: ids,
      attentionMask: new Int32Array(BATCH * SEQ).fill(1),
    };
    const feeds: Record<string, HostTensor> = model.feeds(batch);
    for (const p of built.parameters) feeds[p.name] = { dtype: 'float32', shape: p.shape, data: p.initial };
    for (let i = 0; i < 3; i++) await session.run(feeds);
    const runs = parameters > 1e7 ? 10 : 50;
    const start = performance.now();
    for (let i = 0; i < runs; i++) await session.run(feeds);
    const seconds = (performance.now() - start) / 1000 / runs;
    console.log(
      `${label.padEnd(24)} ${(parameters / 1e6).toFixed(2).padStart(6)}M params  batch ${BATCH}×${SEQ}  ${(seconds * 1000).toFixed(1)} ms/step  ${Math.round((BATCH * SEQ) / seconds)} tokens/s`,
    );
    await session.dispose();
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
