import { mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { writeSafetensors } from '@lora/safetensors';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from './main.ts';
import { tempDir, writeBase, writeImage, writeKohyaLora } from './test-fixtures.ts';

// Every error path of the commands, run through main() as the binary runs them: the message
// (what failed, where, what to do), the [code], the exit code, and no stack trace.

let dir = '';
const at = (...parts: string[]) => join(dir, ...parts);

beforeAll(async () => {
  dir = tempDir();
  await writeBase(at('base.safetensors'));
  await writeKohyaLora(at('a.safetensors'), 1);
  await writeKohyaLora(at('b.safetensors'), 2);
  writeFileSync(at('garbage.safetensors'), 'not a safetensors file at all');
  writeFileSync(at('out.safetensors'), 'already here');
  mkdirSync(at('empty'));
  await writeImage(at('broken', 'ok.png'), '#fff');
  writeFileSync(at('broken', 'ok.png'), 'truncated');
  await writeImage(at('images', 'cat.png'), '#fff');
  writeFileSync(at('notes.txt'), 'hello');
  writeFileSync(
    at('bad.yaml'),
    'base_model: ./base.safetensors\ntrain_data_dir: ./images\noutput_dir: ./out\nlora_rank: x\n',
  );
  writeFileSync(
    at('no-csv.yaml'),
    'base_model: ./base.safetensors\nmetadata_path: ./images/metadata.csv\noutput_dir: ./out\n',
  );
  writeFileSync(
    at('llm.yaml'),
    'base_model: ./base.safetensors\ntrain_data: ./train.jsonl\noutput_dir: ./out\n',
  );
  writeFileSync(at('train.jsonl'), '{"nothing": "useful"}\n');
  writeFileSync(at('huge.yaml'), '');
  truncateSync(at('huge.yaml'), 2 * 1024 * 1024);
  writeFileSync(at('huge.safetensors'), '');
  truncateSync(at('huge.safetensors'), 2 * 1024 ** 3 + 1); // sparse: no disk used
  mkdirSync(at('peft'));
  await writeSafetensors(at('peft', 'adapter_model.safetensors'), {
    'base_model.model.x.lora_A.weight': { dtype: 'F32', shape: [1, 2], data: new Float32Array(2) },
    'base_model.model.x.lora_B.weight': { dtype: 'F32', shape: [2, 1], data: new Float32Array(2) },
  });
  writeFileSync(at('peft', 'adapter_config.json'), '{ broken');
  mkdirSync(at('project', 'configs'), { recursive: true });
  writeFileSync(at('project', 'configs', 'project_style_v1.yaml'), 'mine');
});

afterEach(() => vi.restoreAllMocks());

async function run(argv: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  const stderr: string[] = [];
  const stdout: string[] = [];
  vi.spyOn(console, 'error').mockImplementation(
    (...args) =>
      void stderr.push(args.map((arg) => (typeof arg === 'string' ? arg : inspect(arg))).join(' ')),
  );
  vi.spyOn(console, 'info').mockImplementation((...args) => void stdout.push(args.join(' ')));
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    stdout.push(String(chunk));
    return true;
  });
  const code = await main(argv);
  vi.restoreAllMocks();
  return { code, stderr: stderr.join('\n'), stdout: stdout.join('') };
}

type Case = [name: string, argv: () => string[], code: string, message: RegExp, exit: number];

const cases: Case[] = [
  [
    'inspect: missing file',
    () => ['inspect', at('nope.safetensors')],
    'E_NOT_FOUND',
    /nope\.safetensors does not exist; check the path/,
    1,
  ],
  [
    'inspect: a folder',
    () => ['inspect', at('empty')],
    'E_USAGE',
    /empty is a folder without adapter_model\.safetensors in it; lora inspect takes one \.safetensors file/,
    2,
  ],
  [
    'inspect: not safetensors',
    () => ['inspect', at('garbage.safetensors')],
    'E_HEADER_TOO_LARGE',
    /garbage\.safetensors: header length \d+ exceeds the limit/,
    1,
  ],
  [
    'convert: unknown layout',
    () => ['convert', at('a.safetensors'), at('x.safetensors'), '--to', 'a1111'],
    'E_USAGE',
    /--to must be one of kohya, diffusers, peft \(got "a1111"\)/,
    2,
  ],
  [
    'convert: no --to',
    () => ['convert', at('a.safetensors'), at('x.safetensors')],
    'E_USAGE',
    /--to must be one of kohya, diffusers, peft: kohya for A1111/,
    2,
  ],
  [
    'convert: a checkpoint',
    () => ['convert', at('base.safetensors'), at('x.safetensors'), '--to', 'peft'],
    'E_NOT_A_LORA',
    /base\.safetensors has no LoRA tensors .*"lora inspect/,
    1,
  ],
  [
    'convert: output exists',
    () => ['convert', at('a.safetensors'), at('out.safetensors'), '--to', 'diffusers'],
    'E_EXISTS',
    /out\.safetensors already exists; pass --overwrite/,
    2,
  ],
  [
    'convert: peft for an SD LoRA',
    () => ['convert', at('a.safetensors'), at('p', 'adapter_model.safetensors'), '--to', 'peft'],
    'E_USAGE',
    /a\.safetensors is a Stable Diffusion LoRA .*Use --to kohya .* or --to diffusers/,
    2,
  ],
  [
    'convert: a folder',
    () => ['convert', at('empty'), at('x.safetensors'), '--to', 'kohya'],
    'E_USAGE',
    /empty is a folder without adapter_model\.safetensors in it; lora convert takes a LoRA \.safetensors file/,
    2,
  ],
  [
    'convert: huge file',
    () => ['convert', at('huge.safetensors'), at('x.safetensors'), '--to', 'kohya'],
    'E_TOO_LARGE',
    /above MAX_ADAPTER_BYTES .*probably a full checkpoint/,
    1,
  ],
  [
    'convert: broken adapter_config.json',
    () => ['convert', at('peft', 'adapter_model.safetensors'), at('x.safetensors'), '--to', 'kohya'],
    'E_INVALID_FILE',
    /adapter_config\.json is not valid JSON/,
    1,
  ],
  [
    'convert: option twice',
    () => ['convert', at('a.safetensors'), at('x.safetensors'), '--to', 'kohya', '--to', 'peft'],
    'E_USAGE',
    /--to was given 2 times; give it once/,
    2,
  ],
  [
    'merge: no --base',
    () => ['merge', '--lora', at('a.safetensors'), '--output', at('m.safetensors')],
    'E_USAGE',
    /--base is required: lora merge --base/,
    2,
  ],
  [
    'merge: no --lora',
    () => ['merge', '--base', at('base.safetensors'), '--output', at('m.safetensors')],
    'E_USAGE',
    /--lora is required/,
    2,
  ],
  [
    'merge: bad strength',
    () => ['merge', '--base', at('base.safetensors'), '--lora', ':0.5', '--output', at('m.safetensors')],
    'E_USAGE',
    /--lora ":0\.5" is not <path>\[:<strength>\]/,
    2,
  ],
  [
    'merge: missing LoRA',
    () => [
      'merge',
      '--base',
      at('base.safetensors'),
      '--lora',
      `${at('gone.safetensors')}:0.5`,
      '--output',
      at('m.safetensors'),
    ],
    'E_NOT_FOUND',
    /gone\.safetensors does not exist/,
    1,
  ],
  [
    'merge: LoRA that does not fit',
    () => [
      'merge',
      '--base',
      at('a.safetensors'),
      '--lora',
      at('b.safetensors'),
      '--output',
      at('m.safetensors'),
    ],
    'E_MERGE_MISMATCH',
    /b\.safetensors: 2 LoRA module\(s\) have no weight in .*check that the LoRA was trained on this base model/,
    1,
  ],
  [
    'merge: base is a folder',
    () => ['merge', '--base', at('empty'), '--lora', at('a.safetensors'), '--output', at('m.safetensors')],
    'E_USAGE',
    /empty is a folder; --base takes one checkpoint file/,
    2,
  ],
  [
    'merge: output exists',
    () => [
      'merge',
      '--base',
      at('base.safetensors'),
      '--lora',
      at('a.safetensors'),
      '--output',
      at('out.safetensors'),
    ],
    'E_EXISTS',
    /--overwrite/,
    2,
  ],
  [
    'config validate: invalid',
    () => ['config', 'validate', at('bad.yaml')],
    'E_CONFIG_INVALID',
    /bad\.yaml:4:\d+ lora_rank: expected integer/,
    1,
  ],
  [
    'config validate: no file',
    () => ['config', 'validate'],
    'E_USAGE',
    /Which config\? Usage: lora config validate/,
    2,
  ],
  [
    'config: unknown action',
    () => ['config', 'check', at('bad.yaml')],
    'E_USAGE',
    /Unknown config action "check"/,
    2,
  ],
  ['config schema: with a file', () => ['config', 'schema', at('bad.yaml')], 'E_USAGE', /takes no file/, 2],
  [
    'dataset: unknown action',
    () => ['dataset', 'fix', at('images')],
    'E_USAGE',
    /Unknown dataset action "fix"; use "lora dataset check/,
    2,
  ],
  [
    'dataset check: missing folder',
    () => ['dataset', 'check', at('nowhere')],
    'E_NOT_FOUND',
    /nowhere does not exist/,
    1,
  ],
  [
    'dataset check: a text file',
    () => ['dataset', 'check', at('notes.txt')],
    'E_USAGE',
    /neither a folder of images, a \.jsonl\/\.json text dataset nor a \.yaml config/,
    2,
  ],
  [
    'dataset check: no images',
    () => ['dataset', 'check', at('empty')],
    'E_EMPTY_DATASET',
    /has no images .*troubleshooting\.md#images-skipped/,
    1,
  ],
  [
    'dataset check: every image broken',
    () => ['dataset', 'check', at('broken')],
    'E_EMPTY_DATASET',
    /all 1 images in .* were skipped.*#images-skipped/,
    1,
  ],
  [
    'dataset check: metadata_path missing',
    () => ['dataset', 'check', at('no-csv.yaml')],
    'E_NOT_FOUND',
    /metadata_path .*metadata\.csv \(in .*no-csv\.yaml\) does not exist\. Write it with "lora label.*#captions-not-found/,
    1,
  ],
  [
    'dataset check: no valid text example',
    () => ['dataset', 'check', at('llm.yaml')],
    'E_EMPTY_DATASET',
    /no valid training example in .*train\.jsonl/,
    1,
  ],
  [
    'dataset check: huge config',
    () => ['dataset', 'check', at('huge.yaml')],
    'E_TOO_LARGE',
    /larger than a config can be/,
    2,
  ],
  ['label: no --input', () => ['label', '--model', 'none'], 'E_USAGE', /--input is required/, 2],
  [
    'label: a file not an image as input',
    () => ['label', '--input', at('notes.txt')],
    'E_USAGE',
    /notes\.txt is neither a folder nor an image \(\.jpg, .*\); pass the folder of images, or one image\./,
    2,
  ],
  [
    'label: no images',
    () => ['label', '--input', at('empty')],
    'E_EMPTY_DATASET',
    /has no images to label.*#images-skipped/,
    1,
  ],
  [
    'label: wd14 without its tag list',
    () => ['label', '--input', at('images'), '--model', 'wd14', '--model-path', at('tagger.onnx')],
    'E_USAGE',
    /--model wd14 needs the tagger and its tag list: --model-path <model\.onnx> --tags <selected_tags\.csv>/,
    2,
  ],
  [
    'label: a file that is not a tag list',
    () => [
      'label',
      '--input',
      at('images'),
      '--model',
      'wd14',
      '--model-path',
      at('tagger.onnx'),
      '--tags',
      at('notes.txt'),
    ],
    'E_LABEL_TAGS_INVALID',
    /notes\.txt:1: the header needs "name" and "category" columns/,
    1,
  ],
  [
    'label: missing CLIP folder',
    () => ['label', '--input', at('images'), '--model', 'clip', '--model-path', at('no-clip')],
    'E_LABEL_FILE_NOT_FOUND',
    /no-clip has no CLIP vision encoder/,
    1,
  ],
  [
    'tags: bad --top',
    () => ['tags', at('images'), '--top', '0'],
    'E_USAGE',
    /--top must be a whole number of tags ≥ 1 \(got "0"\)/,
    2,
  ],
  ['tags: missing source', () => ['tags', at('gone.csv')], 'E_NOT_FOUND', /gone\.csv does not exist/, 1],
  [
    'init: config exists',
    () => ['init', at('project')],
    'E_EXISTS',
    /project_style_v1\.yaml already exists; pass --overwrite/,
    2,
  ],
  [
    'init: unknown task',
    () => ['init', at('new'), '--task', 'sdxl'],
    'E_USAGE',
    /--task must be sd or llm \(got "sdxl"\)/,
    2,
  ],
];

describe('error paths', () => {
  it.each(cases)('%s', async (_, argv, code, message, exit) => {
    const result = await run(argv());
    expect(result.stderr).toMatch(/^lora: /);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toContain(`[${code}]`);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.code).toBe(exit);
  });

  it('shows the stack trace with --debug', async () => {
    const result = await run(['inspect', at('nope.safetensors'), '--debug']);
    expect(result.stderr).toMatch(/\n\s+at /);
    expect(result.code).toBe(1);
  });

  it('config validate --json prints the problems as data and exits 1', async () => {
    const result = await run(['config', 'validate', at('bad.yaml'), '--json']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toMatchObject({
      valid: false,
      code: 'E_CONFIG_INVALID',
      issues: expect.arrayContaining([expect.objectContaining({ path: ['lora_rank'], line: 4 })]),
    });
  });

  it('--json puts a failure on stdout as JSON too, for the script that reads it', async () => {
    const result = await run(['inspect', at('nope.safetensors'), '--json']);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toEqual({
      error: { code: 'E_NOT_FOUND', message: expect.stringMatching(/nope\.safetensors does not exist/) },
    });
    expect(result.stderr).toMatch(/\[E_NOT_FOUND\]/);
    // A usage error from the argument parser is one too.
    const usage = await run(['inspect', '--json']);
    expect(JSON.parse(usage.stdout)).toMatchObject({ error: { code: 'E_USAGE' } });
  });
});

describe('help', () => {
  it.each([
    ['inspect', 'x.safetensors', '--help'],
    ['dataset', 'check', 'x', '--help'],
    ['merge', '--help'],
  ])('lora %s … --help prints the command help with an example and exits 0', async (...argv) => {
    const result = await run(argv);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain(`$ lora ${argv[0]}`);
    expect(result.stdout).toContain('Examples:');
  });
});
