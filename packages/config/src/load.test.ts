import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, type ConfigIssue } from './errors.ts';
import {
  loadConfig,
  loadConfigText,
  MAX_CONFIG_BYTES,
  MAX_ISSUES,
  parseConfig,
  safeLoadConfig,
  safeLoadConfigText,
  safeParseConfig,
} from './load.ts';

const SEED = `train_data_dir: "./data/style_train"
metadata_path: "./data/style_train/metadata.csv"
base_model: "./models/sd-v1-5-pruned.safetensors"
lora_rank: 16
target_modules: ["q_proj", "v_proj"]
batch_size: 4
epochs: 15
learning_rate: 2e-4
output_dir: "./output/cyberpunk_lora"
`;

/** Three lines every sd case starts from; a case's own lines begin at line 4. */
const BASE = 'train_data_dir: ./data\nbase_model: ./model.safetensors\noutput_dir: ./out\n';

function issuesOf(text: string, overrides?: string[]): ConfigIssue[] {
  const result = safeParseConfig(text, '/work/cfg/run.yaml', { overrides, cwd: '/work/cwd' });
  if (result.success) throw new Error('expected the config to fail');
  return result.error.issues;
}

const pick = ({ code, path, line, column }: ConfigIssue) => ({ code, path, line, column });

describe('parseConfig', () => {
  it('accepts the seed example and resolves its defaults and paths', () => {
    const config = parseConfig(SEED, '/work/configs/cyberpunk.yaml');
    expect(config).toMatchObject({
      task: 'sd',
      backend: 'ort',
      train_data_dir: '/work/configs/data/style_train',
      metadata_path: '/work/configs/data/style_train/metadata.csv',
      base_model: '/work/configs/models/sd-v1-5-pruned.safetensors',
      output_dir: '/work/configs/output/cyberpunk_lora',
      output_name: 'cyberpunk_lora',
      lora_rank: 16,
      lora_alpha: 16,
      target_modules: ['q_proj', 'v_proj'],
      batch_size: 4,
      gradient_accumulation_steps: 2,
      epochs: 15,
      learning_rate: 0.0002,
      mixed_precision: 'auto',
      resolution: [512, 512],
      clip_skip: 1,
      flip_aug: false,
      random_crop: false,
    });
    expect(config).not.toHaveProperty('max_steps');
    expect(config).not.toHaveProperty('train_data');
  });

  it('takes sample_prompts as a list or as a file beside the config, and refuses a schedule without them', () => {
    const base = 'base_model: m\noutput_dir: o\ntrain_data: d.jsonl\n';
    expect(parseConfig(`${base}sample_prompts: prompts.txt\n`, '/c/run.yaml').sample_prompts).toBe(
      '/c/prompts.txt',
    );
    expect(
      parseConfig(`${base}sample_prompts: [Hi, Name a colour.]\nsample_every_n_steps: 50\n`, '/c/run.yaml'),
    ).toMatchObject({ sample_prompts: ['Hi', 'Name a colour.'], sample_every_n_steps: 50 });
    expect(
      issuesOf(`${base}sample_every_n_epochs: 2\n`).map(({ code, path, message }) => ({
        code,
        path,
        message,
      })),
    ).toEqual([
      {
        code: 'conflict',
        path: ['sample_every_n_epochs'],
        message: 'sample_every_n_epochs says when to sample; set sample_prompts to say what',
      },
    ]);
  });

  it('takes validation_split or validation_data (paths beside the config), not both, and refuses a schedule without either', () => {
    const base = 'base_model: m\noutput_dir: o\ntrain_data: d.jsonl\n';
    expect(parseConfig(`${base}validation_data: held.jsonl\n`, '/c/run.yaml').validation_data).toEqual([
      '/c/held.jsonl',
    ]);
    expect(
      parseConfig(`${base}validation_split: 0.1\nvalidation_every_n_steps: 20\n`, '/c/run.yaml'),
    ).toMatchObject({ validation_split: 0.1, validation_every_n_steps: 20 });
    const issues = (extra: string) =>
      issuesOf(`${base}${extra}`).map(({ code, path, message }) => ({ code, path, message }));
    expect(issues('validation_every_n_steps: 5\n')).toEqual([
      {
        code: 'conflict',
        path: ['validation_every_n_steps'],
        message:
          'validation_every_n_steps says when to evaluate; set validation_split or validation_data to say on what',
      },
    ]);
    expect(issues('validation_split: 0.1\nvalidation_data: [a.jsonl]\n')).toEqual([
      {
        code: 'conflict',
        path: ['validation_data'],
        message: 'set either validation_split or validation_data, not both',
      },
    ]);
    expect(issues('validation_split: 1\n').map((i) => i.path)).toEqual([['validation_split']]);
  });

  it.each([
    ['train_data_dir only', 'train_data_dir: ./images', 'sd'],
    ['metadata_path only', 'metadata_path: ./images/metadata.csv', 'sd'],
    ['train_data', 'train_data: ./chat.jsonl', 'llm'],
    ['explicit task', 'task: llm\ntrain_data: [a.jsonl, b.json]', 'llm'],
  ])('infers the task from %s', (_, data, task) => {
    const config = parseConfig(`${data}\nbase_model: m\noutput_dir: o\n`, '/c/run.yaml');
    expect(config.task).toBe(task);
  });

  it('uses the metadata folder for images when train_data_dir is absent', () => {
    const config = parseConfig('metadata_path: imgs/meta.csv\nbase_model: m\noutput_dir: o\n', '/c/run.yaml');
    expect(config.task === 'sd' && config.train_data_dir).toBe('/c/imgs');
  });

  it('resolves an llm config with its own defaults', () => {
    const config = parseConfig(
      'train_data: chat.jsonl\nbase_model: ~/llama\noutput_dir: /abs/out\n',
      '/c/x.yaml',
    );
    expect(config).toMatchObject({
      task: 'llm',
      train_data: ['/c/chat.jsonl'],
      base_model: join(homedir(), 'llama'),
      output_dir: '/abs/out',
      target_modules: ['q_proj', 'v_proj'],
      max_seq_len: 2048,
      dataset_format: 'auto',
    });
    expect(config).not.toHaveProperty('resolution');
  });

  it.each([
    ['max_steps: 500', { max_steps: 500 }, 'epochs'],
    ['epochs: 3', { epochs: 3 }, 'max_steps'],
    ['lora_alpha: 32', { lora_alpha: 32, lora_rank: 16 }, ''],
    ['target_modules: [to_q, to_q, to_v]', { target_modules: ['to_q', 'to_v'] }, ''],
    ['train_text_encoder: true', { text_encoder_lr: 1e-4 }, ''],
    ['resume: auto', { resume: 'auto' }, ''],
    ['resume: ckpt/step-100', { resume: '/work/cfg/ckpt/step-100' }, ''],
    ['resolution: [768, 512]', { resolution: [768, 512] }, ''],
    ['clip_skip: 2', { clip_skip: 2 }, ''],
    ['flip_aug: true', { flip_aug: true, cache_latents: true }, ''],
    ['random_crop: true\ncache_latents: false', { random_crop: true, cache_latents: false }, ''],
  ])('resolves %s', (line, expected, absent) => {
    const config = parseConfig(`${BASE}${line}\n`, '/work/cfg/run.yaml');
    expect(config).toMatchObject(expected);
    if (absent) expect(config).not.toHaveProperty(absent);
  });

  it('reads all-linear in a list that has only it', () => {
    expect(parseConfig(`${BASE}target_modules: [all-linear]\n`, '/c/r.yaml').target_modules).toBe(
      'all-linear',
    );
  });

  it('throws a ConfigError that lists every issue with file:line:column', () => {
    const text = `${BASE}lora_rank: 0\nnetwork_alpha: 8\nmixed_precision: fp32\n`;
    let caught: unknown;
    try {
      parseConfig(text, '/work/cfg/run.yaml');
    } catch (error) {
      caught = error;
    }
    expect(ConfigError.isInstance(caught)).toBe(true);
    const error = caught as ConfigError;
    expect(error.code).toBe('E_CONFIG_INVALID');
    expect(error.issues.map(pick)).toEqual([
      { code: 'out_of_range', path: ['lora_rank'], line: 4, column: 12 },
      { code: 'unknown_key', path: ['network_alpha'], line: 5, column: 1 },
      { code: 'invalid_value', path: ['mixed_precision'], line: 6, column: 18 },
    ]);
    expect(error.message).toContain('/work/cfg/run.yaml:4:12 lora_rank: must be at least 1, got 0');
    expect(error.message).toContain('did you mean "lora_alpha"?');
    expect(error.message).toContain('did you mean no?');
    expect(error.message).not.toMatch(/\n\s+at /);
  });
});

describe('error kinds, each with its line and column', () => {
  it.each([
    // [name, text after BASE, code, path, line, column, message fragment]
    ['syntax: duplicate key', 'base_model: again', 'syntax', [], 4, 1, 'unique'],
    ['syntax: unclosed flow list', 'target_modules: [to_q\nbatch_size: 2', 'syntax', [], 5, 1, ']'],
    ['syntax: unresolved alias', 'output_name: *name', 'syntax', [], 4, 14, 'no anchor &name'],
    ['syntax: tab indentation', 'betas:\n\t- 0.9', 'syntax', [], 5, 1, 'Tabs'],
    [
      'wrong type: quoted number',
      'learning_rate: "2e-4"',
      'invalid_type',
      ['learning_rate'],
      4,
      16,
      'remove them',
    ],
    [
      'wrong type: yes as boolean',
      'cache_latents: yes',
      'invalid_type',
      ['cache_latents'],
      4,
      16,
      'true and false',
    ],
    [
      'wrong type: fraction for integer',
      'batch_size: 2.5',
      'invalid_type',
      ['batch_size'],
      4,
      13,
      'whole number',
    ],
    ['wrong type: list for number', 'lora_rank: [8]', 'invalid_type', ['lora_rank'], 4, 12, 'got a list'],
    ['out of range: rank 0', 'lora_rank: 0', 'out_of_range', ['lora_rank'], 4, 12, 'at least 1'],
    ['out of range: dropout 1', 'lora_dropout: 1', 'out_of_range', ['lora_dropout'], 4, 15, 'below 1'],
    [
      'out of range: list item',
      'resolution: [512, 500]',
      'out_of_range',
      ['resolution', 1],
      4,
      19,
      'multiple of 64',
    ],
    [
      'out of range: short tuple',
      'betas: [0.9]',
      'out_of_range',
      ['betas'],
      4,
      8,
      'at least 2 entries, got 1',
    ],
    [
      'unknown key: kohya name',
      'network_dim: 32',
      'unknown_key',
      ['network_dim'],
      4,
      1,
      '"lora_rank"? ("network_dim" is the kohya name)',
    ],
    [
      'unknown key: LLaMA-Factory name',
      'cutoff_len: 1024',
      'unknown_key',
      ['cutoff_len'],
      4,
      1,
      '"max_seq_len"',
    ],
    ['unknown key: typo', 'lora_rnak: 8', 'unknown_key', ['lora_rnak'], 4, 1, 'did you mean "lora_rank"?'],
    [
      'unknown key: wrong case',
      'Batch_Size: 8',
      'unknown_key',
      ['Batch_Size'],
      4,
      1,
      'did you mean "batch_size"?',
    ],
    ['enum: peer value', 'optimizer: AdamW8bit', 'invalid_value', ['optimizer'], 4, 12, 'did you mean adamw'],
    ['enum: typo', 'lr_scheduler: cosin', 'invalid_value', ['lr_scheduler'], 4, 15, 'did you mean cosine?'],
    [
      'enum: all for all-linear',
      'target_modules: all',
      'invalid_value',
      ['target_modules'],
      4,
      17,
      'did you mean all-linear?',
    ],
    [
      'format: extension without dot',
      'caption_extension: txt',
      'invalid_value',
      ['caption_extension'],
      4,
      20,
      'start with a dot',
    ],
    ['output_name ..', "output_name: '..'", 'invalid_value', ['output_name'], 4, 14, 'not . or ..'],
    [
      'output_name with a NUL',
      'output_name: "a\\0b"',
      'invalid_value',
      ['output_name'],
      4,
      14,
      'control characters',
    ],
    ['output_name with a separator', 'output_name: a/b', 'invalid_value', ['output_name'], 4, 14, 'no / \\'],
    [
      'out of range: empty list',
      'target_modules: []',
      'out_of_range',
      ['target_modules'],
      4,
      17,
      'at least 1 entry, got 0',
    ],
    [
      'wrong task: llm key in sd',
      'max_seq_len: 512',
      'wrong_task',
      ['max_seq_len'],
      4,
      1,
      'inferred from train_data_dir',
    ],
    [
      'module of the other task',
      'target_modules: [to_q, gate_proj]',
      'invalid_value',
      ['target_modules', 1],
      4,
      24,
      'LLaMA-family',
    ],
    [
      'text-encoder module without it',
      'target_modules: [to_q, fc1]',
      'invalid_value',
      ['target_modules', 1],
      4,
      24,
      'train_text_encoder: true',
    ],
    [
      'conflict: epochs and max_steps',
      'epochs: 3\nmax_steps: 9',
      'conflict',
      ['max_steps'],
      5,
      1,
      'not both',
    ],
    ['conflict: device_ids on cpu', 'device: cpu\ndevice_ids: [1]', 'conflict', ['device_ids'], 5, 1, 'CUDA'],
    [
      'conflict: device_ids on webgpu',
      'device: webgpu\ndevice_ids: [0, 1]',
      'conflict',
      ['device_ids'],
      5,
      1,
      'takes no adapter choice',
    ],
    [
      'conflict: num_workers on webgpu',
      'device: webgpu\nnum_workers: 2',
      'conflict',
      ['num_workers'],
      5,
      1,
      'device is webgpu',
    ],
    [
      'conflict: num_workers and device_ids',
      'device_ids: [0, 1]\nnum_workers: 2',
      'conflict',
      ['num_workers'],
      5,
      1,
      'set one of them',
    ],
    [
      'conflict: num_workers on cuda',
      'device: cuda\nnum_workers: 2',
      'conflict',
      ['num_workers'],
      5,
      1,
      'list device_ids',
    ],
    [
      'conflict: random_crop with cached latents',
      'random_crop: true',
      'conflict',
      ['random_crop'],
      4,
      1,
      'cache_latents: false',
    ],
    ['out of range: clip_skip', 'clip_skip: 13', 'out_of_range', ['clip_skip'], 4, 12, 'at most 12'],
    [
      'bucket range',
      'resolution: 1024\nmax_bucket_reso: 768',
      'out_of_range',
      ['resolution'],
      4,
      13,
      'above max_bucket_reso',
    ],
  ] as const)('%s', (_, lines, code, path, line, column, fragment) => {
    const issues = issuesOf(`${BASE}${lines}\n`);
    expect(issues.map(pick)).toEqual([{ code, path, line, column }]);
    expect(issues[0]!.message).toContain(fragment);
  });

  it.each([
    ['base_model', 'train_data_dir: d\noutput_dir: o\n', 'base_model', 'missing required key base_model'],
    ['any training data', 'base_model: m\noutput_dir: o\n', undefined, 'no training data'],
    [
      'train_data for task llm',
      'task: llm\nbase_model: m\noutput_dir: o\n',
      'train_data',
      'task llm needs train_data',
    ],
  ])('missing %s is reported at the top of the mapping', (_, text, key, fragment) => {
    const issues = issuesOf(`# a comment\n${text}`);
    expect(issues.map(pick)).toEqual([{ code: 'missing_key', path: key ? [key] : [], line: 2, column: 1 }]);
    expect(issues[0]!.message).toContain(fragment);
  });

  it.each([
    ['an empty file', '', 'the file is empty'],
    ['a list', '- a\n- b\n', 'got a list'],
    ['a single value', 'hello\n', 'got a single value'],
  ])('rejects %s', (_, text, fragment) => {
    const [issue, ...rest] = issuesOf(text);
    expect(rest).toEqual([]);
    expect(issue).toMatchObject({ code: 'invalid_type', path: [], line: 1, column: 1 });
    expect(issue!.message).toContain(fragment);
  });

  it('reports every problem of a file at once', () => {
    const text = `${BASE}lora_rank: x\nepochs: 0\nnetwork_dim: 4\nmixed_precision: fp32\nmax_seq_len: 512\n`;
    expect(issuesOf(text).map((issue) => [issue.line, issue.code])).toEqual([
      [4, 'invalid_type'],
      [5, 'out_of_range'],
      [6, 'unknown_key'],
      [7, 'invalid_value'],
      [8, 'wrong_task'],
    ]);
  });
});

describe('hostile input', () => {
  it('stops alias expansion bombs', () => {
    const levels = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let index = 1; index < 8; index++) {
      const previous = String.fromCharCode(96 + index);
      const name = String.fromCharCode(97 + index);
      levels.push(`${name}: &${name} [${Array(10).fill(`*${previous}`).join(', ')}]`);
    }
    const [issue] = issuesOf(`${levels.join('\n')}\n`);
    expect(issue).toMatchObject({ code: 'syntax' });
    expect(issue!.message).toContain('alias');
  });

  it('refuses text over MAX_CONFIG_BYTES', () => {
    const result = safeParseConfig(`# ${'x'.repeat(MAX_CONFIG_BYTES)}\n`, '/c/big.yaml');
    expect(!result.success && result.error.code).toBe('E_CONFIG_TOO_LARGE');
  });

  it.each(['__proto__', 'constructor'])('reports %s as an unknown key without touching prototypes', (key) => {
    const [issue] = issuesOf(`${BASE}${key}: {polluted: true}\n`);
    expect(issue).toMatchObject({ code: 'unknown_key', path: [key], line: 4, column: 1 });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('rejects collection keys', () => {
    expect(issuesOf(`${BASE}? [a, b]\n: 1\n`).map(pick)).toEqual([
      { code: 'syntax', path: [], line: 4, column: 3 },
    ]);
  });

  it(`caps the list at MAX_ISSUES and says how many more`, () => {
    const text = `${BASE}${Array.from({ length: MAX_ISSUES + 5 }, (_, index) => `junk_${index}: 1`).join('\n')}\n`;
    const issues = issuesOf(text);
    expect(issues).toHaveLength(MAX_ISSUES + 1);
    expect(issues.at(-1)!.message).toBe('… and 5 more problems');
  });
});

describe('overrides (--set)', () => {
  const load = (overrides: string[]) =>
    parseConfig(SEED, '/work/cfg/run.yaml', { overrides, cwd: '/work/cwd' });

  it.each([
    [['lora_rank=8'], { lora_rank: 8, lora_alpha: 8 }],
    [['target_modules=[to_q, to_v]'], { target_modules: ['to_q', 'to_v'] }],
    [['learning_rate=1e-4', 'learning_rate=3e-4'], { learning_rate: 3e-4 }],
    [['mixed_precision=no'], { mixed_precision: 'no' }],
    [['base_model=./other.safetensors'], { base_model: '/work/cwd/other.safetensors' }],
    [['epochs=', 'max_steps=100'], { max_steps: 100 }],
  ])('applies %j', (overrides, expected) => {
    expect(load(overrides)).toMatchObject(expected);
  });

  it('keeps file paths relative to the config while --set paths are relative to the cwd', () => {
    const config = load(['output_dir=runs/a']);
    expect(config.output_dir).toBe('/work/cwd/runs/a');
    expect(config.base_model).toBe('/work/cfg/models/sd-v1-5-pruned.safetensors');
  });

  it.each([
    ['lora_rank=abc', 'invalid_type', ['lora_rank'], 11, 'integer 1–1024'],
    ['target_modules=[to_q, gate_proj]', 'invalid_value', ['target_modules', 1], 23, 'LLaMA-family'],
    ['network_dim=8', 'unknown_key', ['network_dim'], 1, 'did you mean "lora_rank"?'],
    ['max_seq_len=512', 'wrong_task', ['max_seq_len'], 1, 'task llm only'],
    ['seed', 'syntax', [], 1, 'key=value'],
    ['epochs=[1', 'syntax', ['epochs'], 10, ']'],
  ])('reports %s at its column', (override, code, path, column, fragment) => {
    const issues = issuesOf(SEED, [override]);
    expect(issues.map(pick)).toEqual([{ code, path, line: 1, column }]);
    expect(issues[0]!.file).toBe(`--set ${override}`);
    expect(issues[0]!.message).toContain(fragment);
  });

  it.each([
    ['max_steps=100', 'epochs'],
    ['warmup_ratio=0.1', 'warmup_steps'],
  ])('--set %s against the file says how to drop its %s', (override, inFile) => {
    const issues = issuesOf(`${BASE}epochs: 3\nwarmup_steps: 10\n`, [override]);
    expect(issues).toHaveLength(1);
    expect(issues[0]!.code).toBe('conflict');
    expect(issues[0]!.message).toContain(`add --set ${inFile}=null to drop the file's ${inFile}`);
  });

  it('gives no --set hint when both exclusive keys are in the file', () => {
    const [issue] = issuesOf(`${BASE}epochs: 3\nmax_steps: 10\n`);
    expect(issue!.message).toBe('set either epochs or max_steps, not both');
  });
});

describe('loadConfig', () => {
  const root = mkdtempSync(join(tmpdir(), 'lora-config-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'configs/data/style_train'), { recursive: true });
  mkdirSync(join(root, 'configs/models'), { recursive: true });
  writeFileSync(join(root, 'configs/data/style_train/metadata.csv'), 'file_name,text\n');
  writeFileSync(join(root, 'configs/models/sd-v1-5-pruned.safetensors'), '');
  writeFileSync(join(root, 'configs/seed.yaml'), SEED);

  it('loads the seed example with paths resolved against its folder, not the cwd', async () => {
    const config = await loadConfig('configs/seed.yaml', { cwd: root });
    expect(config.base_model).toBe(join(root, 'configs/models/sd-v1-5-pruned.safetensors'));
    expect(config.output_dir).toBe(join(root, 'configs/output/cyberpunk_lora'));
  });

  it('reports a missing config file as not_found', async () => {
    const result = await safeLoadConfig(join(root, 'nope.yaml'));
    expect(result.success).toBe(false);
    if (result.success) return;
    expect(result.error.code).toBe('E_CONFIG_NOT_FOUND');
    expect(result.error.issues.map(pick)).toEqual([{ code: 'file_not_found', path: [], line: 1, column: 1 }]);
    expect(result.error.message).toContain('lora init');
  });

  it('reports a folder passed as the config', async () => {
    const result = await safeLoadConfig(root);
    expect(!result.success && result.error.code).toBe('E_CONFIG_UNREADABLE');
  });

  it('reports every referenced input that is missing or of the wrong kind, with schema errors', async () => {
    const text = [
      'train_data_dir: ./data/style_train/metadata.csv',
      'metadata_path: ./data/style_train',
      'base_model: ./models/missing.safetensors',
      'init_adapter: /definitely/not/here',
      'output_dir: ./models/sd-v1-5-pruned.safetensors',
      'lora_rank: -1',
      '',
    ].join('\n');
    writeFileSync(join(root, 'configs/broken.yaml'), text);
    const result = await safeLoadConfig(join(root, 'configs/broken.yaml'));
    if (result.success) throw new Error('expected failure');
    expect(result.error.issues.map(pick)).toEqual([
      { code: 'invalid_value', path: ['train_data_dir'], line: 1, column: 17 },
      { code: 'invalid_value', path: ['metadata_path'], line: 2, column: 16 },
      { code: 'file_not_found', path: ['base_model'], line: 3, column: 13 },
      { code: 'file_not_found', path: ['init_adapter'], line: 4, column: 15 },
      { code: 'invalid_value', path: ['output_dir'], line: 5, column: 13 },
      { code: 'out_of_range', path: ['lora_rank'], line: 6, column: 12 },
    ]);
    expect(result.error.issues[2]!.message).toBe(
      `${join(root, 'configs/models/missing.safetensors')} (from "./models/missing.safetensors") does not exist`,
    );
  });

  it('says a path that goes through a file (an output_dir under a config file) is not a missing file', async () => {
    writeFileSync(
      join(root, 'configs/c.yaml'),
      'task: llm\nbase_model: models\ntrain_data: a.jsonl\noutput_dir: c.yaml/run\n',
    );
    writeFileSync(join(root, 'configs/a.jsonl'), '{}\n');
    const result = await safeLoadConfig(join(root, 'configs/c.yaml'));
    if (result.success) throw new Error('expected failure');
    const issue = result.error.issues.find((i) => i.path[0] === 'output_dir')!;
    expect(issue).toMatchObject({
      code: 'invalid_value',
      message: expect.stringMatching(/c\.yaml\/run.* goes through a file as if it were a folder/),
    });
  });

  it('checks each train_data file and --set paths against the cwd', async () => {
    writeFileSync(join(root, 'configs/a.jsonl'), '{}\n');
    writeFileSync(
      join(root, 'configs/llm.yaml'),
      'train_data: [a.jsonl, b.jsonl]\nbase_model: models\noutput_dir: out\n',
    );
    const result = await safeLoadConfig(join(root, 'configs/llm.yaml'), {
      cwd: root,
      overrides: ['init_adapter=configs/models'],
    });
    if (result.success) throw new Error('expected failure');
    expect(result.error.issues.map(pick)).toEqual([
      { code: 'file_not_found', path: ['train_data', 1], line: 1, column: 23 },
    ]);
  });

  it('throws the ConfigError from the throwing form', async () => {
    await expect(loadConfig(join(root, 'configs/broken.yaml'))).rejects.toSatisfy(ConfigError.isInstance);
  });

  it('loadConfigText checks unsaved text as if it were the file, referenced files included', async () => {
    const path = join(root, 'configs/broken.yaml');
    const fromFile = await safeLoadConfig(path);
    const fromText = await safeLoadConfigText(readFileSync(path, 'utf8'), path);
    if (fromFile.success || fromText.success) throw new Error('expected failure');
    expect(fromText.error.message).toBe(fromFile.error.message);
    // The text wins over what the file says: the same path, other contents.
    const config = await loadConfigText(SEED, 'configs/unsaved.yaml', { cwd: root });
    expect(config.base_model).toBe(join(root, 'configs/models/sd-v1-5-pruned.safetensors'));
    const big = await safeLoadConfigText(`# ${'x'.repeat(MAX_CONFIG_BYTES)}\n`, path);
    expect(!big.success && big.error.code).toBe('E_CONFIG_TOO_LARGE');
  });
});
