import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type LoraAdapter, loraModule, toKohya } from '@lora/adapters';
import { type TensorData, writeSafetensors } from '@lora/safetensors';
import sharp from 'sharp';

// Small generated inputs shared by the CLI tests: images, a base checkpoint and LoRAs.

export function tempDir(prefix = 'lora-cli-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function writeImage(path: string, color: string, width = 32, height = 24): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  await sharp({ create: { width, height, channels: 3, background: color } })
    .png()
    .toFile(path);
}

export function f32(shape: readonly number[], values: (index: number) => number): TensorData {
  const size = shape.reduce((product, dim) => product * dim, 1);
  return { dtype: 'F32', shape, data: Float32Array.from({ length: size }, (_, i) => values(i)) };
}

/** Two attention projections of a tiny "UNet": the module paths the LoRAs below adapt. */
export const UNET_MODULES = [
  'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q',
  'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v',
] as const;

export const WIDTH = 8;

/** A base checkpoint with diffusers UNet keys: the two adapted weights plus one bias. */
export async function writeBase(path: string): Promise<Record<string, TensorData>> {
  const tensors: Record<string, TensorData> = {};
  for (const module of UNET_MODULES) {
    tensors[`${module.slice('unet.'.length)}.weight`] = f32([WIDTH, WIDTH], (i) => (i % 7) / 10);
  }
  tensors['conv_in.bias'] = f32([WIDTH], (i) => i);
  await writeSafetensors(path, tensors, { format: 'pt' });
  return tensors;
}

/** A rank-2 adapter over UNET_MODULES whose values depend on `seed`. */
export function adapter(seed: number, alpha = 1): LoraAdapter {
  return new Map(
    UNET_MODULES.map((module, m) => [
      module,
      loraModule(
        f32([2, WIDTH], (i) => Math.sin(seed + m + i) / 4),
        f32([WIDTH, 2], (i) => Math.cos(seed * 2 + m + i) / 4),
        alpha,
      ),
    ]),
  );
}

export async function writeKohyaLora(
  path: string,
  seed: number,
  metadata: Record<string, string> = {},
): Promise<LoraAdapter> {
  const lora = adapter(seed);
  await writeSafetensors(path, toKohya(lora), metadata);
  return lora;
}

export function floats(tensor: TensorData): Float32Array {
  return new Float32Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength / 4);
}
