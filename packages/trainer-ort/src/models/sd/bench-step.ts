/**
 * Seconds per training step (loss forward + backward to the LoRA tensors) on the CPU provider,
 * measured once, with the peak resident memory of the process:
 *   npx jiti src/models/sd/bench-step.ts tiny   # the golden fixture's tiny UNet + CLIP, batch 2, 8×8 latents
 *   npx jiti src/models/sd/bench-step.ts sd15   # SD 1.5-size UNet, random F16 weights, batch 1, 64×64 latents
 * The sd15 run writes a 1.7 GB random checkpoint to the temp folder first (removed afterwards).
 */
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRng } from '@lora/dataset';
import { Graph, gradients, type HostTensor, hostTensor, toFloat16Bits, writeModel } from '@lora/engine';
import { writeSafetensors } from '@lora/safetensors';
import { Session } from '../../session.ts';
import { openSdCheckpoint } from './checkpoint.ts';
import { parseClipTextConfig, parseUnetConfig, parseVaeConfig, SD15, type SdModelConfig } from './config.ts';
import { ldmUnet } from './ldm-layout.ts';
import { buildSdLoss, type SdLossOptions } from './loss.ts';

const rng = createRng(3);
const randn = (n: number, scale = 1) => Float32Array.from({ length: n }, () => rng.normal() * scale);
const seconds = (from: number) => ((performance.now() - from) / 1000).toFixed(2);

/** A random F16 SD 1.5 UNet in the LDM layout (values repeat a 1 Mi pool: speed matters, not statistics). */
async function writeRandomSd15Unet(path: string): Promise<void> {
  const pool = Uint16Array.from(randn(1 << 20, 0.02), toFloat16Bits);
  const tensors = new Map(
    ldmUnet().map(([key, shape]) => {
      const size = shape.reduce((a, b) => a * b, 1);
      const data = () => {
        const out = new Uint16Array(size);
        for (let at = 0; at < size; at += pool.length)
          out.set(pool.subarray(0, Math.min(pool.length, size - at)), at);
        return out;
      };
      return [`model.diffusion_model.${key}`, { dtype: 'F16' as const, shape, data }];
    }),
  );
  await writeSafetensors(path, tensors);
}

async function measure(
  label: string,
  weights: string,
  config: SdModelConfig,
  options: SdLossOptions,
  batch: number,
  steps: number,
): Promise<void> {
  const folder = join(weights, '..');
  const { checkpoint, close } = await openSdCheckpoint(weights, config);
  let start = performance.now();
  const graph = new Graph('sd_loss');
  const built = buildSdLoss(graph, checkpoint, { ...options, batch });
  const params = built.parameters;
  gradients(
    built.loss,
    params.map((p) => p.tensor),
  ).forEach((g, i) => {
    graph.output(g, `grad.${params[i]!.name}`);
  });
  await close();
  const nodes = graph.nodes.length;
  const buildTime = seconds(start);
  start = performance.now();
  const model = await writeModel(graph, folder);
  const writeTime = seconds(start);
  start = performance.now();
  const session = await Session.create(model, { device: 'cpu' });
  const loadTime = seconds(start);
  const [h, w] = options.latentSize;
  const { unet, textEncoder } = config;
  const latent = [batch, unet.inChannels, h, w];
  const tokens = options.tokens ?? textEncoder.maxPositions;
  const feeds: Record<string, HostTensor> = {
    latents: hostTensor('float32', latent, randn(batch * unet.inChannels * h * w)),
    noise: hostTensor('float32', latent, randn(batch * unet.inChannels * h * w)),
    timesteps: hostTensor(
      'int64',
      [batch],
      BigInt64Array.from({ length: batch }, (_, i) => BigInt(100 + 300 * i)),
    ),
    loss_weights: hostTensor('float32', [batch], new Float32Array(batch).fill(1)),
    ...(options.text === 'ids'
      ? { input_ids: hostTensor('int64', [batch, tokens], new BigInt64Array(batch * tokens).fill(1n)) }
      : {
          encoder_hidden_states: hostTensor(
            'float32',
            [batch, tokens, unet.crossAttentionDim],
            randn(batch * tokens * unet.crossAttentionDim),
          ),
        }),
  };
  for (const p of params) feeds[p.name] = hostTensor('float32', p.shape, p.initial);
  start = performance.now();
  await session.run(feeds);
  const first = seconds(start);
  start = performance.now();
  for (let s = 0; s < steps; s++) await session.run(feeds);
  const perStep = steps ? seconds(start) : first;
  await session.dispose();
  const peak = (process.resourceUsage().maxRSS / 2 ** 20).toFixed(2);
  console.log(
    `${label}: ${nodes} nodes, ${params.length} LoRA tensors; build ${buildTime} s, write ${writeTime} s, ` +
      `session ${loadTime} s, first step ${first} s, ${steps ? `${perStep} s / ${steps} steps` : 'one step measured'}; ` +
      `peak RSS ${peak} GiB`,
  );
}

const which = process.argv[2] ?? 'tiny';
const folder = await mkdtemp(join(tmpdir(), 'sd-bench-'));
try {
  if (which === 'tiny') {
    const fixtures = join(import.meta.dirname, '__fixtures__');
    const golden = JSON.parse(await readFile(join(fixtures, 'golden.json'), 'utf8'));
    const config = {
      unet: parseUnetConfig(golden.unet_config),
      textEncoder: parseClipTextConfig(golden.text_encoder_config),
      vae: parseVaeConfig(golden.vae_config),
    };
    await copyFile(join(fixtures, 'model.safetensors'), join(folder, 'model.safetensors'));
    await measure(
      'tiny UNet + CLIP (batch 2, 8×8 latents, LoRA on every UNet and text-encoder target)',
      join(folder, 'model.safetensors'),
      config,
      {
        latentSize: [8, 8],
        text: 'ids',
        tokens: 8,
        prediction: 'epsilon',
        lora: {
          rank: 4,
          alpha: 4,
          unet: ['to_q', 'to_k', 'to_v', 'to_out', 'proj_in', 'proj_out', 'ff'],
          textEncoder: ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'],
        },
      },
      2,
      10,
    );
  } else {
    const path = join(folder, 'sd15-unet.safetensors');
    let start = performance.now();
    await writeRandomSd15Unet(path);
    console.log(`wrote a random F16 SD 1.5 UNet in ${seconds(start)} s`);
    start = performance.now();
    await measure(
      'SD 1.5 UNet (batch 1, 64×64 latents, cached text states, LoRA rank 16 on to_q/to_k/to_v/to_out)',
      path,
      SD15,
      {
        latentSize: [64, 64],
        text: 'states',
        prediction: 'epsilon',
        lora: { rank: 16, alpha: 16, unet: ['to_q', 'to_k', 'to_v', 'to_out'] },
      },
      1,
      0,
    );
  }
} finally {
  await rm(folder, { recursive: true, force: true });
}
