/**
 * The tiny SD fixture of the PyTorch reference (tools/golden/sd_reference.py): its weights file
 * in `__fixtures__`, the model sizes, inputs and reference outputs, for the tests that run it.
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

export interface Golden {
  unet_config: unknown;
  text_encoder_config: unknown;
  vae_config: unknown;
  rank: number;
  alpha: number;
  alphas_cumprod: number[];
  input_ids: number[][];
  timesteps: number[];
  loss_weights: number[];
  latents: number[];
  noise: number[];
  image: number[];
  vae_noise: number[];
  text_states: number[];
  text_states_clip_skip_2: number[];
  unet_output: number[];
  vae_latents_mean: number[];
  vae_latents_sample: number[];
  vae_decoded: number[];
  loss_epsilon: number;
  loss_v_prediction: number;
  lora: Record<string, LoraGolden>;
}

export const FIXTURES = join(import.meta.dirname, '__fixtures__');
export const golden = JSON.parse(await readFile(join(FIXTURES, 'golden.json'), 'utf8')) as Golden;
export const config: SdModelConfig = {
  unet: parseUnetConfig(golden.unet_config),
  textEncoder: parseClipTextConfig(golden.text_encoder_config),
  vae: parseVaeConfig(golden.vae_config),
};
export const BATCH = golden.timesteps.length;
export const TOKENS = golden.input_ids[0]!.length;
export const LATENT = [BATCH, config.unet.inChannels, 8, 8];
export const IMAGE = [BATCH, config.vae.inChannels, 16, 16];
