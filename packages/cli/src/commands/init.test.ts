import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configWarnings, loadConfig, parseConfig } from '@lora/config';
import { checkDataset } from '@lora/dataset';
import { readSafetensors } from '@lora/safetensors';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { main } from '../main.ts';
import { tempDir } from '../test-fixtures.ts';
import { initProject, projectName } from './init.ts';

describe('initProject', () => {
  it.each([
    ['sd', 'My Style', 'my_style_v1.yaml', ['configs/', 'data/style_train/', 'models/']],
    ['sd', 'neon', 'neon_style_v1.yaml', ['configs/', 'data/style_train/', 'models/']],
    ['llm', 'My Style', 'my_style_llm_v1.yaml', ['configs/', 'data/', 'models/']],
    ['llm', 'chat-llm', 'chat_llm_v1.yaml', ['configs/', 'data/', 'models/']],
  ] as const)('--task %s in "%s" writes %s and its folders', async (task, folder, name, folders) => {
    const root = join(tempDir(), folder);
    const report = await initProject(root, { task });
    expect(report.config).toBe(join(root, 'configs', name));
    expect(report.created).toEqual([
      ...folders,
      `configs/${name}`,
      'configs/lora-config.schema.json',
      '.gitignore',
    ]);
    // Its relative paths start at configs/, so they must climb back to the project folder.
    const config = parseConfig(readFileSync(report.config, 'utf8'), report.config);
    expect(config.base_model.startsWith(join(root, 'models'))).toBe(true);
    expect(config.output_dir.startsWith(join(root, 'output'))).toBe(true);
    if (config.task === 'sd') expect(config.train_data_dir).toBe(join(root, 'data', 'style_train'));
    else expect(config.train_data).toEqual([join(root, 'data', 'train.jsonl')]);
  });

  it('writes a .gitignore that keeps configs and metadata.csv but not models/ and output/', async () => {
    const root = tempDir();
    await initProject(root, {});
    execFileSync('git', ['init', '-q'], { cwd: root });
    const ignored = (path: string) => {
      try {
        execFileSync('git', ['check-ignore', '-q', '--no-index', path], { cwd: root });
        return true;
      } catch {
        return false;
      }
    };
    expect(ignored('models/sd-v1-5-pruned.safetensors')).toBe(true);
    expect(ignored('output/style_lora/style_lora.safetensors')).toBe(true);
    expect(ignored('configs/x_style_v1.yaml')).toBe(false);
    expect(ignored('data/style_train/metadata.csv')).toBe(false);
    // The SD latent cache lora writes beside the images.
    expect(ignored('data/style_train/.cache/latents/a.safetensors')).toBe(true);
  });

  it('adds only the missing lines to an existing .gitignore', async () => {
    const root = tempDir();
    writeFileSync(join(root, '.gitignore'), 'node_modules\n/output/');
    const report = await initProject(root, {});
    expect(report.created).not.toContain('.gitignore');
    const lines = readFileSync(join(root, '.gitignore'), 'utf8').split('\n');
    expect(lines.filter((line) => !line.startsWith('#'))).toEqual([
      'node_modules',
      '/output/',
      '/models/',
      '.cache/',
      '',
    ]);
  });

  it.each([
    ['sd', {}],
    ['llm', {}],
    ['llm', { demo: true }],
    ['sd', { demo: true }],
  ] as const)(
    'points the %s config %j at the JSON Schema it writes beside it, which a JSON Schema validator accepts it by',
    async (task, options) => {
      const root = tempDir();
      const report = await initProject(root, { task, ...options });
      const text = readFileSync(report.config, 'utf8');
      const [, ref] = /^# yaml-language-server: \$schema=(\S+)$/m.exec(text)!;
      // The reference resolves against the config's folder, as the YAML language server reads it.
      const schema = JSON.parse(readFileSync(join(dirname(report.config), ref!), 'utf8'));
      const validate = new Ajv({ strict: true, allErrors: true }).compile(schema);
      const config = parse(text);
      expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
      expect(validate({ ...config, lora_rank: 'x', network_dim: 8 })).toBe(false);
      const errors = validate.errors?.map((e) => e.instancePath || JSON.stringify(e.params));
      expect(errors?.sort()).toEqual(['/lora_rank', '{"additionalProperty":"network_dim"}']);
    },
  );

  it('refuses to replace a config unless --overwrite', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'configs'));
    const config = join(root, 'configs', `${projectName(root)}_style_v1.yaml`);
    writeFileSync(config, 'mine');
    await expect(initProject(root, {})).rejects.toMatchObject({
      code: 'E_EXISTS',
      message: expect.stringContaining('--overwrite'),
    });
    expect(readFileSync(config, 'utf8')).toBe('mine');
    await initProject(root, { overwrite: true });
    expect(readFileSync(config, 'utf8')).toContain('task: sd');
    expect(existsSync(join(root, 'data', 'style_train'))).toBe(true);
  });

  it('rejects an unknown task', async () => {
    await expect(initProject(tempDir(), { task: 'sdxl' })).rejects.toMatchObject({
      code: 'E_USAGE',
      message: expect.stringContaining('--task must be sd or llm'),
    });
  });
});

describe('initProject --demo', () => {
  const demoFiles = [
    'configs/demo_project_demo_v1.yaml',
    'data/train.jsonl',
    'models/tiny-llama/config.json',
    'models/tiny-llama/model.safetensors',
    'models/tiny-llama/tokenizer.json',
    'models/tiny-llama/tokenizer_config.json',
    'configs/lora-config.schema.json',
  ];

  it('writes the model, the data and a config that loads (an llm project)', async () => {
    const root = join(tempDir(), 'Demo Project');
    const report = await initProject(root, { demo: true });
    expect(report.task).toBe('llm');
    expect(report.created).toEqual(['configs/', 'data/', 'models/', ...demoFiles, '.gitignore']);
    expect(report.next).toEqual([`lora train --config ${relative(process.cwd(), report.config)}`]);
    const config = await loadConfig(report.config);
    expect(config).toMatchObject({
      task: 'llm',
      base_model: join(root, 'models', 'tiny-llama'),
      train_data: [join(root, 'data', 'train.jsonl')],
      output_dir: join(root, 'output', 'tiny_llama_demo'),
      device: 'cpu',
    });
    // Quiet: nothing for configWarnings to advise about.
    expect(configWarnings(config).filter((w) => w.code !== 'module_mapping')).toEqual([]);
  });

  it('leaves files that already hold the same bytes, and refuses different ones unless --overwrite', async () => {
    const root = tempDir();
    await initProject(root, { demo: true });
    expect((await initProject(root, { demo: true })).created).toEqual([]);
    writeFileSync(join(root, 'data', 'train.jsonl'), '{"text": "mine"}\n');
    await expect(initProject(root, { demo: true })).rejects.toMatchObject({
      code: 'E_EXISTS',
      message: expect.stringContaining(join(root, 'data', 'train.jsonl')),
    });
    expect((await initProject(root, { demo: true, overwrite: true })).created).toEqual(['data/train.jsonl']);
  });

  it('--task sd writes a tiny SD model, captioned images and a config that trains', async () => {
    const root = join(tempDir(), 'shapes');
    const report = await initProject(root, { demo: true, task: 'sd' });
    expect(report.created).toEqual(
      expect.arrayContaining([
        'configs/shapes_demo_v1.yaml',
        'models/tiny-sd/tiny-sd.safetensors',
        'models/tiny-sd/tokenizer/tokenizer.json',
        'data/style_train/metadata.csv',
        'data/style_train/shape_11.png',
      ]),
    );
    const config = await loadConfig(report.config);
    expect(config).toMatchObject({
      task: 'sd',
      base_model: join(root, 'models', 'tiny-sd', 'tiny-sd.safetensors'),
      train_data_dir: join(root, 'data', 'style_train'),
      device: 'cpu',
    });
    expect(configWarnings(config).filter((w) => w.code !== 'module_mapping')).toEqual([]);
    const dataset = await checkDataset({ dirs: [join(root, 'data', 'style_train')], resolution: 64 });
    expect(dataset.summary).toMatchObject({ imagesUsed: 12, uncaptioned: 0 });
    expect(dataset.findings).toEqual([]);
    // The same bytes every time: a second init has nothing to write.
    expect((await initProject(root, { demo: true, task: 'sd' })).created).toEqual([]);
    // It trains: two steps write a kohya adapter.
    const output = join(root, 'output', 'two_steps');
    const code = await main([
      'train',
      '--config',
      report.config,
      '--set',
      `output_dir=${output}`,
      '--set',
      'max_steps=2',
    ]);
    expect(code).toBe(0);
    expect(existsSync(join(output, 'tiny_shapes.safetensors'))).toBe(true);
  });

  it.each([
    ['sd2', 'tiny-sd2'],
    ['sdxl', 'tiny-sdxl'],
  ])(
    '--task sd --demo --base %s writes the tiny %s model and a config that trains on it',
    async (base, model) => {
      const root = join(tempDir(), 'shapes');
      const report = await initProject(root, { demo: true, task: 'sd', base });
      expect(report.created).toEqual(
        expect.arrayContaining([
          `models/${model}/${model}.safetensors`,
          `models/${model}/tokenizer/tokenizer.json`,
        ]),
      );
      expect(readFileSync(report.config, 'utf8')).toContain(`--base ${base}`);
      const output = join(root, 'output', 'two_steps');
      const code = await main([
        'train',
        '--config',
        report.config,
        '--set',
        `output_dir=${output}`,
        '--set',
        'max_steps=2',
      ]);
      expect(code).toBe(0);
      const { metadata } = await readSafetensors(join(output, 'tiny_shapes.safetensors'));
      expect(metadata['ss_base_model_version']).toBe(base === 'sdxl' ? 'sdxl_base_v1-0' : 'sd_v2');
    },
    180_000,
  );

  it('refuses --base without an SD demo, and an unknown base', async () => {
    await expect(initProject(tempDir(), { task: 'sd', base: 'sdxl' })).rejects.toMatchObject({
      code: 'E_USAGE',
      message: expect.stringContaining('--task sd --demo'),
    });
    await expect(initProject(tempDir(), { task: 'sd', demo: true, base: 'sd3' })).rejects.toMatchObject({
      code: 'E_USAGE',
      message: expect.stringContaining('--base must be sd1, sd2, sdxl'),
    });
  });

  it('is what examples/quickstart holds in git, so `lora init examples/quickstart --demo` only adds the model', async () => {
    const example = fileURLToPath(new URL('../../../../examples/quickstart', import.meta.url));
    const root = join(tempDir(), 'quickstart');
    const report = await initProject(root, { demo: true });
    const committed = [...report.created].filter(
      (path) => !path.endsWith('/') && !path.startsWith('models/'),
    );
    expect(committed).toEqual([
      'configs/quickstart_demo_v1.yaml',
      'data/train.jsonl',
      'configs/lora-config.schema.json',
      '.gitignore',
    ]);
    for (const path of committed) {
      expect(readFileSync(join(example, path), 'utf8'), path).toBe(readFileSync(join(root, path), 'utf8'));
    }
  });
});

describe('names and paths', () => {
  it.each([
    ['/x/My LoRA-Project', 'my_lora_project'],
    ['/x/neon', 'neon'],
    ['/x/__', 'lora'],
  ])('projectName(%s) → %s', (folder, name) => expect(projectName(folder)).toBe(name));
});
