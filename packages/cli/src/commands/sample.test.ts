import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { loraModule, toKohya } from '@lora/adapters';
import { writeSafetensors } from '@lora/safetensors';
import { writeTinySdModel } from '@lora/trainer-ort';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../main.ts';
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

  it('samples the tiny SDXL demo model `lora init --task sd --demo --base sdxl` writes, with an SDXL LoRA tag', async () => {
    quiet();
    const project = join(root, 'xl');
    expect(await main(['init', project, '--task', 'sd', '--demo', '--base', 'sdxl'])).toBe(0);
    const xl = join(project, 'models', 'tiny-sdxl', 'tiny-sdxl.safetensors');
    // kohya's SDXL names: the UNet by LDM path (input block 3 is the tiny model's attention level), bigG as lora_te2_.
    const modules: [string, number][] = [
      ['lora_unet_input_blocks_3_1_transformer_blocks_0_attn2_to_k', 64],
      ['lora_te2_text_model_encoder_layers_1_self_attn_v_proj', 32],
    ];
    await writeSafetensors(
      join(root, 'xl-style.safetensors'),
      new Map(
        modules.flatMap(([name, width]) => [
          [`${name}.lora_down.weight`, f32([4, width], (i) => Math.sin(i))],
          [`${name}.lora_up.weight`, f32([width, 4], (i) => Math.cos(i))],
          [`${name}.alpha`, f32([], () => 4)],
        ]),
      ),
    );
    const run = async (prompt: string, output: string) =>
      main([
        'sample',
        '--model',
        xl,
        '--prompt',
        prompt,
        '--negative',
        'blue',
        '--lora-dir',
        root,
        '--steps',
        '2',
        '--width',
        '64',
        '--height',
        '64',
        '--seed',
        '3',
        '--sampler',
        'dpmpp_2m',
        '--output',
        join(root, output),
      ]);
    expect(await run('a red circle', 'xl-plain.png')).toBe(0);
    expect(await run('a red circle <lora:xl-style:0>', 'xl-off.png')).toBe(0);
    expect(await run('a red circle <lora:xl-style:1>', 'xl-on.png')).toBe(0);
    const png = readFileSync(join(root, 'xl-on.png'));
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([64, 64]);
    const text = png.subarray(png.indexOf('tEXt') + 4, png.indexOf('IDAT') - 8).toString('latin1');
    expect(text).toMatch(
      /^parameters\0a red circle <lora:xl-style:1>\nNegative prompt: blue\nSteps: 2, Sampler: DPM\+\+ 2M Karras, CFG scale: 7, Seed: 3, Size: 64x64, Model hash: [0-9a-f]{10}, Model: tiny-sdxl, Lora hashes: "xl-style: [0-9a-f]{12}"$/,
    );
    const idat = (file: string) => {
      const bytes = readFileSync(join(root, file));
      const at = bytes.indexOf('IDAT');
      return bytes.subarray(at, at + 4 + bytes.readUInt32BE(at - 4));
    };
    expect(idat('xl-off.png').equals(idat('xl-plain.png'))).toBe(true);
    expect(idat('xl-on.png').equals(idat('xl-plain.png'))).toBe(false);
  }, 180_000);
});
