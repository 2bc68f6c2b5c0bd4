/**
 * `sampleImage` on the generated tiny SD model: a PNG an independent reader accepts (chunk CRCs,
 * size, the `parameters` text in A1111's form), the same image from the parameters read back, a
 * LoRA at strength 0 giving the base model's pixels exactly and at strength 1 other pixels. The
 * same on the tiny SDXL model, with kohya SDXL LoRAs on the UNet and on each text encoder.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { loraModule, toKohya } from '@lora/adapters';
import { type TensorData, writeSafetensors } from '@lora/safetensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipTokenizer } from './model-files.ts';
import { type SampleImageOptions, sampleImage } from './sample-image.ts';
import { type TinySdModel, writeTinySdModel } from './tiny.ts';

/** CRC-32 (ISO-HDLC) by its definition, bit by bit: independent of zlib. */
function crc(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** The chunks of a PNG, each CRC checked; text chunks decoded. */
function readPng(png: Uint8Array) {
  const view = Buffer.from(png);
  expect([...view.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const chunks: { type: string; data: Buffer }[] = [];
  for (let at = 8; at < view.length; ) {
    const length = view.readUInt32BE(at);
    const type = view.toString('latin1', at + 4, at + 8);
    const data = view.subarray(at + 8, at + 8 + length);
    expect(view.readUInt32BE(at + 8 + length), `${type} CRC`).toBe(
      crc(view.subarray(at + 4, at + 8 + length)),
    );
    chunks.push({ type, data });
    at += 12 + length;
  }
  const header = chunks[0]!.data;
  const text: Record<string, string> = {};
  for (const { data } of chunks.filter((c) => c.type === 'tEXt')) {
    const nul = data.indexOf(0);
    text[data.toString('latin1', 0, nul)] = data.toString('latin1', nul + 1);
  }
  const pixels = inflateSync(Buffer.concat(chunks.filter((c) => c.type === 'IDAT').map((c) => c.data)));
  return {
    types: chunks.map((c) => c.type),
    width: header.readUInt32BE(0),
    height: header.readUInt32BE(4),
    text,
    pixels,
  };
}

let root: string;
let model: TinySdModel;
let tokenizer: ClipTokenizer;
let lora: string;
const options: SampleImageOptions = {
  prompt: '**red** (circle:1.3) <lora:shape:0.8>',
  negativePrompt: 'blue',
  sampler: 'euler_a',
  steps: 3,
  cfgScale: 5,
  seed: 42,
  width: 64,
  height: 64,
};

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sd-sample-'));
  model = await writeTinySdModel(join(root, 'tiny'));
  tokenizer = await ClipTokenizer.forModel(model.checkpoint, model.config.textEncoder.maxPositions);
  options.modelConfig = model.config;
  const f32 = (shape: number[], at: (i: number) => number) => ({
    dtype: 'F32' as const,
    shape,
    data: Float32Array.from({ length: shape[0]! * shape[1]! }, (_, i) => at(i)),
  });
  const adapter = new Map([
    [
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q',
      loraModule(
        f32([4, 32], (i) => Math.sin(i)),
        f32([32, 4], (i) => Math.cos(i)),
        4,
      ),
    ],
  ]);
  lora = join(root, 'shape.safetensors');
  await writeSafetensors(lora, toKohya(adapter));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('sampleImage', () => {
  it("writes a PNG with A1111's parameters, and the parameters read back give the same bytes", async () => {
    const { png, parameters } = await sampleImage(model.checkpoint, tokenizer, options);
    const read = readPng(png);
    expect(read.types).toEqual(['IHDR', 'tEXt', 'IDAT', 'IEND']);
    expect([read.width, read.height]).toEqual([64, 64]);
    expect(read.pixels).toHaveLength(64 * (1 + 3 * 64));
    expect(read.text['parameters']).toBe(parameters);
    expect(parameters).toMatch(
      /^\*\*red\*\* \(circle:1\.3\) <lora:shape:0\.8>\nNegative prompt: blue\nSteps: 3, Sampler: Euler a, CFG scale: 5, Seed: 42, Size: 64x64, Model hash: [0-9a-f]{10}, Model: tiny-sd$/,
    );
    // A1111's PNG Info, read back: the settings line gives the options again.
    const line = Object.fromEntries(
      parameters
        .split('\n')
        .at(-1)!
        .split(', ')
        .map((pair) => pair.split(': ') as [string, string]),
    );
    const [width, height] = line['Size']!.split('x').map(Number);
    const again = await sampleImage(model.checkpoint, tokenizer, {
      ...options,
      steps: Number(line['Steps']),
      cfgScale: Number(line['CFG scale']),
      seed: Number(line['Seed']),
      width: width!,
      height: height!,
    });
    expect(Buffer.from(again.png).equals(Buffer.from(png))).toBe(true);
  });

  it('a LoRA at strength 0 gives the base pixels exactly; at 1 other pixels, and its hash in the parameters', async () => {
    const base = readPng((await sampleImage(model.checkpoint, tokenizer, options)).png).pixels;
    const off = await sampleImage(model.checkpoint, tokenizer, {
      ...options,
      loras: [{ path: lora, strength: 0 }],
    });
    expect(readPng(off.png).pixels.equals(base)).toBe(true);
    const on = await sampleImage(model.checkpoint, tokenizer, {
      ...options,
      loras: [{ path: lora, strength: 1 }],
    });
    expect(readPng(on.png).pixels.equals(base)).toBe(false);
    expect(on.parameters).toMatch(/, Lora hashes: "shape: [0-9a-f]{12}"$/);
  });

  it('refuses a size the model cannot halve evenly', async () => {
    await expect(sampleImage(model.checkpoint, tokenizer, { ...options, width: 72 })).rejects.toThrow(
      /width 72 and height 64 must be multiples of 16 for this model/,
    );
  });
});

describe('sampleImage on SDXL', () => {
  let xl: TinySdModel;
  let xlTokenizer: ClipTokenizer;
  const loras: Record<string, string> = {};
  const xlOptions: SampleImageOptions = { ...options, prompt: 'red (circle:1.2)', negativePrompt: '' };

  beforeAll(async () => {
    xl = await writeTinySdModel(join(root, 'tiny-xl'), 'tiny-sdxl', 0, 'sdxl');
    xlTokenizer = await ClipTokenizer.forModel(xl.checkpoint, 77, undefined, 'sdxl');
    xlOptions.modelConfig = xl.config;
    const tensor = (shape: number[], at: (i: number) => number): TensorData => ({
      dtype: 'F32',
      shape,
      data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => at(i)),
    });
    // kohya's SDXL names: the UNet by LDM path (input block 3 is level 1's attention), lora_te1_ / lora_te2_.
    const modules = {
      unet: ['lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q', 64],
      te1: ['lora_te1_text_model_encoder_layers_0_self_attn_q_proj', 32],
      te2: ['lora_te2_text_model_encoder_layers_0_self_attn_q_proj', 32],
    } as const;
    for (const [part, [name, width]] of Object.entries(modules)) {
      loras[part] = join(root, `xl-${part}.safetensors`);
      await writeSafetensors(
        loras[part]!,
        new Map([
          [`${name}.lora_down.weight`, tensor([4, width], (i) => Math.sin(i))],
          [`${name}.lora_up.weight`, tensor([width, 4], (i) => Math.cos(i))],
          [`${name}.alpha`, tensor([], () => 4)],
        ]),
      );
    }
  });

  it("writes A1111's parameters for the SDXL image, the same bytes again, and a LoRA at 0 gives the base pixels", async () => {
    const image = await sampleImage(xl.checkpoint, xlTokenizer, xlOptions);
    const read = readPng(image.png);
    expect([read.width, read.height]).toEqual([64, 64]);
    expect(read.text['parameters']).toBe(image.parameters);
    expect(image.parameters).toMatch(
      /^red \(circle:1\.2\)\nSteps: 3, Sampler: Euler a, CFG scale: 5, Seed: 42, Size: 64x64, Model hash: [0-9a-f]{10}, Model: tiny-sdxl$/,
    );
    const again = await sampleImage(xl.checkpoint, xlTokenizer, xlOptions);
    expect(Buffer.from(again.png).equals(Buffer.from(image.png))).toBe(true);
    const off = await sampleImage(xl.checkpoint, xlTokenizer, {
      ...xlOptions,
      loras: [{ path: loras['unet']!, strength: 0 }],
    });
    expect(readPng(off.png).pixels.equals(read.pixels)).toBe(true);
  });

  it.each(['unet', 'te1', 'te2'])('a LoRA on %s at strength 1 changes the pixels', async (part) => {
    const base = readPng((await sampleImage(xl.checkpoint, xlTokenizer, xlOptions)).png).pixels;
    const on = await sampleImage(xl.checkpoint, xlTokenizer, {
      ...xlOptions,
      loras: [{ path: loras[part]!, strength: 1 }],
    });
    expect(readPng(on.png).pixels.equals(base)).toBe(false);
  });

  it("refuses clip skip 2, which SDXL's conditioning has no use for", async () => {
    await expect(sampleImage(xl.checkpoint, xlTokenizer, { ...xlOptions, clipSkip: 2 })).rejects.toThrow(
      /SDXL conditions on the penultimate layer of both text encoders/,
    );
  });
});
