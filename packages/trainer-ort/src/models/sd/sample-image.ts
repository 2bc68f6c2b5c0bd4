/**
 * Text to image with an SD 1.x, 2.x or XL checkpoint and LoRAs, as `lora sample` runs it: LoRAs
 * merged into a temporary copy of the base at their strengths (every variant, by its own formula;
 * strength 0 leaves the base untouched), the prompt and negative prompt stripped of structured
 * markup and `<lora:…>` tags and conditioned as A1111 does (`conditioning.ts`; SDXL's size ids as
 * A1111's defaults: original = target = the image size, crop 0, 0), latents sampled with guidance
 * (`text-to-latent.ts`) from seeded noise, decoded by the VAE in float32, and written as a PNG
 * whose `parameters` text A1111's PNG Info reads back.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { mergeLora } from '@lora/adapters';
import { stripMarkup } from '@lora/caption-markup';
import type { PredictionType } from '@lora/config';
import { createRng } from '@lora/dataset';
import { Graph, writeModel } from '@lora/engine';
import { openSafetensors } from '@lora/safetensors';
import { chooseDevice, type Device } from '../../device.ts';
import { Session } from '../../session.ts';
import { ModelError } from '../model-error.ts';
import { openSdCheckpoint, type SdCheckpoint } from './checkpoint.ts';
import { a1111TimeIds, promptConditions } from './conditioning.ts';
import type { SdModelConfig } from './config.ts';
import { singleFileConfig } from './model-files.ts';
import { encodePng } from './png.ts';
import { sdPrediction } from './prediction.ts';
import type { PromptTokenizer } from './prompt.ts';
import { A1111_SAMPLER_NAMES, type SamplerName } from './samplers.ts';
import { SdTextToLatent } from './text-to-latent.ts';
import { buildVaeDecoder } from './vae.ts';

export interface SampleLora {
  /** A LoRA file in any layout (kohya, diffusers, PEFT). */
  readonly path: string;
  readonly strength: number;
}

export interface SampleImageOptions {
  prompt: string;
  negativePrompt: string;
  sampler: SamplerName;
  steps: number;
  cfgScale: number;
  seed: number;
  width: number;
  height: number;
  clipSkip?: number;
  loras?: readonly SampleLora[];
  /** The checkpoint's sizes; default: from the `config.json` files beside a single file, else its shapes. */
  modelConfig?: SdModelConfig;
  device?: Device;
  /** What the UNet predicts; default: what the model's files say (`prediction_type: auto`). */
  prediction?: PredictionType;
}

export interface SampledImage {
  /** The PNG file's bytes, `parameters` text included. */
  png: Uint8Array;
  /** The pixels, 8-bit RGB row-major. */
  rgb: Uint8Array;
  /** A1111's generation parameters, as written into the PNG. */
  parameters: string;
}

/** The image of `options.prompt` from the single-file checkpoint at `model`. */
export async function sampleImage(
  model: string,
  tokenizer: PromptTokenizer,
  options: SampleImageOptions,
): Promise<SampledImage> {
  const scratch = await mkdtemp(join(tmpdir(), 'lora-sample-'));
  try {
    const base = await withLoras(model, options.loras ?? [], scratch);
    // The sizes come from the config.json files beside the user's file (the merged copy has none).
    const config = options.modelConfig ?? (await singleFileConfig(model));
    const { checkpoint, close } = await openSdCheckpoint(base, config);
    try {
      const { vae } = checkpoint.config;
      // The VAE scales by 2 per level, and the UNet's latents must halve evenly at each of its levels.
      const factor = 2 ** (vae.blockOutChannels.length - 1);
      const multiple = factor * 2 ** (checkpoint.config.unet.blockOutChannels.length - 1);
      if (options.width % multiple || options.height % multiple) {
        throw new ModelError(
          'E_MODEL_CONFIG',
          `width ${options.width} and height ${options.height} must be multiples of ${multiple} for this model`,
        );
      }
      const latentSize = [options.height / factor, options.width / factor] as const;
      const prediction = options.prediction ?? (await sdPrediction('auto', model, checkpoint.family)).type;
      const text = await SdTextToLatent.open(checkpoint, latentSize, {
        ...(options.clipSkip === undefined ? {} : { clipSkip: options.clipSkip }),
        ...(options.device === undefined ? {} : { device: options.device }),
        prediction,
      });
      let latents: Float32Array;
      try {
        const [cond, uncond] = await promptConditions(
          text,
          tokenizer,
          [stripMarkup(options.prompt), stripMarkup(options.negativePrompt)],
          checkpoint.family === 'sdxl',
        );
        const rng = createRng(options.seed);
        const size = checkpoint.config.unet.inChannels * latentSize[0] * latentSize[1];
        latents = await text.latents(cond, uncond, {
          sampler: options.sampler,
          steps: options.steps,
          cfgScale: options.cfgScale,
          noise: () => Float32Array.from({ length: size }, () => rng.normal()),
          ...(checkpoint.family === 'sdxl' ? { timeIds: a1111TimeIds(options.width, options.height) } : {}),
        });
      } finally {
        await text.dispose();
      }
      const pixels = await decodeLatents(checkpoint, latents, latentSize, scratch, options.device);
      const parameters = await a1111Parameters(model, options);
      const rgb = toRgb(pixels, options.width, options.height);
      return { png: encodePng(options.width, options.height, rgb, { parameters }), rgb, parameters };
    } finally {
      await close();
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The base, or a copy in `scratch` with each LoRA of non-zero strength merged in turn. */
async function withLoras(model: string, loras: readonly SampleLora[], scratch: string): Promise<string> {
  let current = model;
  for (const [i, lora] of loras.entries()) {
    if (lora.strength === 0) continue;
    const output = join(scratch, `merged-${i}.safetensors`);
    await mergeLora(current, lora.path, { output, multiplier: lora.strength });
    if (current !== model) await rm(current, { force: true });
    current = output;
  }
  return current;
}

/**
 * The image `[3, height, width]` (about −1 to 1) of `latents [channels, h, w]`: the VAE decoder,
 * in float32 (SDXL's VAE overflows in fp16), its graph written to `folder`.
 */
export async function decodeLatents(
  checkpoint: SdCheckpoint,
  latents: Float32Array,
  latentSize: readonly [number, number],
  folder: string,
  device: Device = 'cpu',
): Promise<Float32Array> {
  const shape = [1, checkpoint.config.unet.inChannels, ...latentSize];
  const graph = new Graph('vae_decoder');
  const input = graph.input('latents', 'float32', shape);
  graph.output(buildVaeDecoder({ checkpoint, component: 'vae' }, checkpoint.config.vae, input), 'image');
  const session = await Session.create(await writeModel(graph, folder, { fileName: 'vae_decoder.onnx' }), {
    device: (await chooseDevice(device)).device,
  });
  try {
    const out = await session.run({ latents: { dtype: 'float32', shape, data: latents } });
    return out['image']!.data as Float32Array;
  } finally {
    await session.dispose();
  }
}

/** A1111's decode to 8-bit RGB: clamp((x + 1) / 2, 0, 1) · 255, truncated, channels last. */
function toRgb(pixels: Float32Array, width: number, height: number): Uint8Array {
  const plane = width * height;
  const rgb = new Uint8Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      const v = Math.min(1, Math.max(0, (pixels[c * plane + i]! + 1) / 2));
      rgb[3 * i + c] = Math.trunc(255 * v);
    }
  }
  return rgb;
}

/**
 * A1111's infotext: the prompt (with its `<lora:…>` tags), the negative prompt, then the settings;
 * `Model hash` is the checkpoint's SHA-256 cut to 10 characters, `Lora hashes` each LoRA's
 * tensor-data SHA-256 cut to 12, as A1111 computes them.
 */
async function a1111Parameters(model: string, options: SampleImageOptions): Promise<string> {
  const settings: [string, string | number][] = [
    ['Steps', options.steps],
    ['Sampler', A1111_SAMPLER_NAMES[options.sampler]],
    ['CFG scale', options.cfgScale],
    ['Seed', options.seed],
    ['Size', `${options.width}x${options.height}`],
    ['Model hash', (await sha256(model, 0)).slice(0, 10)],
    ['Model', basename(model, extname(model))],
  ];
  if ((options.clipSkip ?? 1) > 1) settings.push(['Clip skip', options.clipSkip!]);
  const loras = options.loras ?? [];
  if (loras.length > 0) {
    const hashes = await Promise.all(
      loras.map(
        async (l) =>
          `${basename(l.path, extname(l.path))}: ${(await sha256(l.path, await dataStart(l.path))).slice(0, 12)}`,
      ),
    );
    settings.push(['Lora hashes', `"${hashes.join(', ')}"`]);
  }
  const line = settings.map(([key, value]) => `${key}: ${value}`).join(', ');
  return `${options.prompt}\n${options.negativePrompt === '' ? '' : `Negative prompt: ${options.negativePrompt}\n`}${line}`;
}

/** Where a safetensors file's tensor data starts (A1111 hashes a LoRA's data, not its header). */
async function dataStart(path: string): Promise<number> {
  const file = await openSafetensors(path);
  try {
    return file.dataStart;
  } finally {
    await file.close();
  }
}

async function sha256(path: string, start: number): Promise<string> {
  const hash = createHash('sha256');
  for await (const piece of createReadStream(path, { start })) hash.update(piece as Buffer);
  return hash.digest('hex');
}
