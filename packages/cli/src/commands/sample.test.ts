import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { loraModule, toKohya } from '@lora/adapters';
import { writeSafetensors } from '@lora/safetensors';
import { writeTinySdModel } from '@lora/trainer-ort';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { f32, tempDir } from '../test-fixtures.ts';
import { sample } from './sample.ts';

let root: string;
let model: string;

beforeAll(async () => {
  root = tempDir('lora-sample-');
  model = (await writeTinySdModel(join(root, 'tiny'))).checkpoint;
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
  await writeSafetensors(join(root, 'shapes.safetensors'), toKohya(adapter));
});

afterEach(() => {
  vi.restoreAllMocks();
});

const quiet = () => vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
const base = { steps: 2, width: 64, height: 64, cfg: 4, seed: 3, sampler: 'dpmpp_2m' };

describe('lora sample', () => {
  it('writes the PNG, finding <lora:name> tags in --lora-dir; strength 0 is the base image', async () => {
    quiet();
    const plain = join(root, 'plain.png');
    await sample({ ...base, model, prompt: 'red circle', output: plain });
    const tagged = join(root, 'tagged.png');
    const report = await sample({
      ...base,
      model,
      prompt: 'red circle <lora:shapes:0.9>',
      loraDir: root,
      output: tagged,
    });
    expect(report.loras).toEqual([{ path: join(root, 'shapes.safetensors'), strength: 0.9 }]);
    expect(report.parameters).toMatch(/Sampler: DPM\+\+ 2M Karras, .*Lora hashes: "shapes: [0-9a-f]{12}"$/);
    expect(readFileSync(tagged).subarray(1, 4).toString()).toBe('PNG');
    // The image bytes (IDAT) of strength 0 equal the plain base's; the text differs by the tag.
    const idat = (file: string) => {
      const bytes = readFileSync(file);
      const at = bytes.indexOf('IDAT');
      return bytes.subarray(at, at + 4 + bytes.readUInt32BE(at - 4));
    };
    const off = join(root, 'off.png');
    await sample({
      ...base,
      model,
      prompt: 'red circle',
      lora: `${join(root, 'shapes.safetensors')}:0`,
      output: off,
    });
    expect(idat(off).equals(idat(plain))).toBe(true);
    expect(idat(tagged).equals(idat(plain))).toBe(false);
    // --compare: before | after in one image, twice as wide, each half its own render.
    const compared = join(root, 'compare.png');
    await sample({
      ...base,
      model,
      prompt: 'red circle <lora:shapes:0.9>',
      loraDir: root,
      output: compared,
      sampler: 'dpmpp_2m',
      compare: true,
    });
    const header = readFileSync(compared);
    expect([header.readUInt32BE(16), header.readUInt32BE(20)]).toEqual([128, 64]);
    const rows = (file: string) => {
      const bytes = readFileSync(file);
      const at = bytes.indexOf('IDAT');
      return inflateSync(bytes.subarray(at + 4, at + 4 + bytes.readUInt32BE(at - 4)));
    };
    const [wide, left, right] = [rows(compared), rows(plain), rows(tagged)];
    for (const y of [0, 31, 63]) {
      const line = wide.subarray(y * (1 + 384) + 1, (y + 1) * (1 + 384));
      expect(line.subarray(0, 192).equals(left.subarray(y * 193 + 1, (y + 1) * 193))).toBe(true);
      expect(line.subarray(192).equals(right.subarray(y * 193 + 1, (y + 1) * 193))).toBe(true);
    }
    await expect(
      sample({ ...base, model, prompt: 'x', compare: true, output: join(root, 'c.png') }),
    ).rejects.toThrow(/--compare shows the image without and with the LoRAs/);
  });

  it('refuses an existing output without --overwrite, a tag without a file, and a bad sampler', async () => {
    const existing = join(root, 'exists.png');
    writeFileSync(existing, 'mine');
    await expect(sample({ ...base, model, prompt: 'x', output: existing })).rejects.toThrow(
      /exists\.png already exists; pass --overwrite/,
    );
    expect(readFileSync(existing, 'utf8')).toBe('mine');
    await expect(
      sample({ ...base, model, prompt: 'x <lora:nowhere:1>', loraDir: root, output: join(root, 'n.png') }),
    ).rejects.toThrow(
      /<lora:nowhere> names no file: looked for nowhere and .*nowhere\.safetensors; pass --lora-dir/,
    );
    await expect(
      sample({ ...base, model, prompt: 'x', sampler: 'heun', output: join(root, 'h.png') }),
    ).rejects.toThrow(/--sampler heun: use one of euler, euler_a, ddim, dpmpp_2m/);
    await expect(sample({ model, prompt: 'x' })).rejects.toThrow(/needs --model .*--output <file\.png>/);
  });
});
