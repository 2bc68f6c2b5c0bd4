import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors } from '@lora/safetensors';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { floats, tempDir, writeBase, writeImage, writeKohyaLora } from './test-fixtures.ts';

// The built binary, run the way users run it, through a whole project in a temporary folder.

const bin = fileURLToPath(new URL('../bin.js', import.meta.url));
const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));

/** Each run starts a Node process; on a busy 2-core machine a dozen of them take seconds. */
const TIMEOUT = 60_000;

let cwd = '';

function lora(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [bin, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, CI: '1' },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function ok(...args: string[]): string {
  const result = lora(...args);
  expect(result.stderr, `lora ${args.join(' ')}`).toBe('');
  expect(result.status, `lora ${args.join(' ')}`).toBe(0);
  return result.stdout;
}

beforeAll(() => {
  if (!existsSync(dist)) throw new Error('dist/index.js is missing: run `npx tsdown` in packages/cli first');
  cwd = tempDir('lora-e2e-');
});

describe('lora, end to end (built binary)', { timeout: TIMEOUT }, () => {
  it('init → dataset check → label → tags → config validate → inspect → convert → merge', async () => {
    expect(ok('--version')).toMatch(/^lora\/\d+\.\d+\.\d+/);

    // init: a project with a config whose paths point back into it.
    expect(ok('init', 'neon')).toContain('configs/neon_style_v1.yaml');
    const config = join('neon', 'configs', 'neon_style_v1.yaml');
    expect(readFileSync(join(cwd, 'neon', '.gitignore'), 'utf8')).toContain('/models/');

    const data = join('neon', 'data', 'style_train');
    await writeImage(join(cwd, data, '10_neon city', 'rainy_street.png'), '#c03', 64, 64);
    await writeImage(join(cwd, data, '10_neon city', 'night_market.png'), '#30c', 48, 64);
    await writeImage(join(cwd, data, '10_neon city', 'alley-cat.png'), '#3c3', 64, 48);

    // dataset check before labelling: the config's metadata.csv is missing, and the message says what to do.
    const before = lora('dataset', 'check', config);
    expect(before.status).toBe(1);
    expect(before.stderr).toMatch(/^lora: metadata_path .* does not exist\. Write it with "lora label/);
    expect(before.stderr).toContain('#captions-not-found');

    // label: captions from the names, through the default template.
    expect(ok('label', '--input', data, '--model', 'none')).toMatch(/^wrote 3 captions to .*metadata\.csv/);
    const csv = readFileSync(join(cwd, data, 'metadata.csv'), 'utf8');
    expect(csv).toContain(
      '10_neon city/rainy_street.png,"**rainy street**, **neon city**, high quality, detailed"',
    );
    // A second run keeps them.
    expect(JSON.parse(ok('label', '--input', data, '--json'))).toMatchObject({ kept: 3, written: [] });

    // dataset check: everything usable now.
    const check = JSON.parse(ok('dataset', 'check', config, '--json'));
    expect(check.summary).toMatchObject({
      imagesFound: 3,
      imagesUsed: 3,
      uncaptioned: 0,
      samplesPerEpoch: 30,
    });

    // tags: per-role counts and a keyword cloud.
    expect(ok('tags', join(data, 'metadata.csv'), '--svg', 'cloud.svg', '--png', 'cloud.png')).toMatch(
      /neon city\s+3\s+3\s+0\s+0/,
    );
    expect(readFileSync(join(cwd, 'cloud.svg'), 'utf8')).toContain('font-weight="bold"');
    expect(await sharp(join(cwd, 'cloud.png')).metadata()).toMatchObject({ format: 'png', width: 800 });

    // config validate: fails until the base model is there, then passes.
    const missing = lora('config', 'validate', config);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/neon_style_v1\.yaml:\d+:\d+ base_model: /);
    const base = join(cwd, 'neon', 'models', 'sd-v1-5-pruned.safetensors');
    const baseTensors = await writeBase(base);
    expect(ok('config', 'validate', config)).toMatch(/valid \(task sd/);
    expect(JSON.parse(ok('config', 'schema'))).toHaveProperty('properties.lora_rank');

    // inspect, convert and merge a LoRA.
    const adapter = await writeKohyaLora(join(cwd, 'style.safetensors'), 5, {
      ss_output_name: 'neon',
      ss_network_dim: '2',
    });
    const inspected = ok('inspect', 'style.safetensors');
    expect(inspected).toContain('layout: kohya LoRA');
    expect(inspected).toMatch(/rank\s+2/);
    expect(JSON.parse(ok('inspect', 'style.safetensors', '--json'))).toMatchObject({
      layout: 'kohya',
      lora: { modules: 2 },
    });

    ok('convert', 'style.safetensors', 'style_diffusers.safetensors', '--to', 'diffusers');
    expect(JSON.parse(ok('inspect', 'style_diffusers.safetensors', '--json')).layout).toBe('diffusers');

    expect(
      ok(
        'merge',
        '--base',
        base,
        '--lora',
        'style_diffusers.safetensors:0.5',
        '--output',
        'merged.safetensors',
      ),
    ).toMatch(/merged\.safetensors: .* with\n\s+style_diffusers\.safetensors ×0\.5: 2 modules/);
    const merged = await readSafetensors(join(cwd, 'merged.safetensors'));
    const key = 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight';
    const module = adapter.get('unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q')!;
    const [down, up] = [floats(module.tensors.down!), floats(module.tensors.up!)];
    // One element by hand: W[0,0] + 0.5 · (alpha 1 / rank 2) · Σ_r up[0,r] · down[r,0].
    const want = floats(baseTensors[key]!)[0]! + 0.5 * 0.5 * (up[0]! * down[0]! + up[1]! * down[8]!);
    expect(floats(merged.tensors.get(key)!)[0]).toBeCloseTo(want, 6);
    expect(JSON.parse(ok('inspect', 'merged.safetensors', '--json'))).toMatchObject({
      layout: 'checkpoint',
      checkpoint: 'diffusers UNet',
    });
  });

  it('fails with one line, a code and exit 2 for an unknown command; help exits 0 with examples', () => {
    const unknown = lora('trian');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr.trim()).toBe(
      'lora: Unknown command "trian" (did you mean "train"?). Run "lora --help" for the list of commands. [E_UNKNOWN_COMMAND]',
    );
    for (const command of ['init', 'dataset', 'label', 'tags', 'config', 'inspect', 'convert', 'merge']) {
      expect(ok(command, '--help'), command).toMatch(/Examples:\n\s+\$ lora /);
    }
  });
});
