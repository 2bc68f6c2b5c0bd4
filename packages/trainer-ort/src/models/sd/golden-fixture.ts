/**
 * The tiny SD fixtures of the PyTorch references (tools/golden/sd_reference.py for SD 1.x,
 * sd2_reference.py for SD 2.x, sdxl_reference.py for SDXL): their weights files in `__fixtures__`, the model sizes, inputs and
 * reference outputs, for the tests that run them.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseClipTextConfig, parseUnetConfig, parseVaeConfig, type SdModelConfig } from './config.ts';

export interface LoraGolden {
  A_shape: number[];
  B_shape: number[];
  A: number[];
  B: number[];
  A_grad: number[];
  B_grad: number[];
}

/** What both references write. */
export interface GoldenCore {
  unet_config: unknown;
  text_encoder_config: unknown;
  vae_config: unknown;
  rank: number;
  alpha: number;
  input_ids: number[][];
  timesteps: number[];
  loss_weights: number[];
  latents: number[];
  noise: number[];
  text_states: number[];
  text_states_clip_skip_2: number[];
  unet_output: number[];
  loss_epsilon: number;
  loss_v_prediction: number;
  lora: Record<string, LoraGolden>;
}

export interface Golden extends GoldenCore {
  alphas_cumprod: number[];
  image: number[];
  vae_noise: number[];
  vae_latents_mean: number[];
  vae_latents_sample: number[];
  vae_decoded: number[];
}

export const FIXTURES = join(import.meta.dirname, '__fixtures__');

/** A reference's golden file and the model sizes its configs give. */
export async function readGolden<T extends GoldenCore>(
  name: string,
): Promise<{ golden: T; config: SdModelConfig }> {
  const golden = JSON.parse(await readFile(join(FIXTURES, name), 'utf8')) as T;
  const second = (golden as { text_encoder_2_config?: unknown }).text_encoder_2_config;
  const config = {
    unet: parseUnetConfig(golden.unet_config),
    textEncoder: parseClipTextConfig(golden.text_encoder_config),
    ...(second === undefined
      ? {}
      : { textEncoder2: parseClipTextConfig(second, 'text_encoder_2/config.json') }),
    vae: parseVaeConfig(golden.vae_config),
  };
  return { golden, config };
}

export const { golden, config } = await readGolden<Golden>('golden.json');
export const BATCH = golden.timesteps.length;
export const TOKENS = golden.input_ids[0]!.length;
export const LATENT = [BATCH, config.unet.inChannels, 8, 8];
export const IMAGE = [BATCH, config.vae.inChannels, 16, 16];
