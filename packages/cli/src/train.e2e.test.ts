import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './test-fixtures.ts';

// `lora init --demo` and `lora train` through the built binary, the way the quick start runs them.

const bin = fileURLToPath(new URL('../bin.js', import.meta.url));
const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const env = { ...process.env, CI: '1' };
/** Optimizer steps of each run: about a second of training on the demo model. */
const STEPS = 40;

let cwd = '';
const config = join('demo', 'configs', 'demo_demo_v1.yaml');
const outputOf = (name: string) => join(cwd, 'demo', 'output', name);
const trainArgs = (name: string, ...more: string[]) => [
  'train',
  '--config',
  config,
  '--set',
  `max_steps=${STEPS}`,
  '--set',
  `output_dir=demo/output/${name}`,
  ...more,
];

function lora(...args: string[]) {
  const result = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', env });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const metricsOf = (name: string): { step: number; loss: number }[] =>
  existsSync(join(outputOf(name), 'metrics.jsonl'))
    ? readFileSync(join(outputOf(name), 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line))
    : [];

const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;

beforeAll(() => {
  if (!existsSync(dist)) throw new Error('dist/index.js is missing: run `npx tsdown` in packages/cli first');
  cwd = tempDir('lora-train-e2e-');
  const init = lora('init', 'demo', '--demo');
  expect(init.stderr).toBe('');
  expect(init.stdout).toContain(`lora train --config ${config}`);
});

describe('lora train, end to end (built binary)', { timeout: 60_000 }, () => {
  it('trains the demo: the adapter, its config, the run folder, and a falling loss', async () => {
    const run = lora(...trainArgs('full'));
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^training .* into .*full \(task llm, backend ort\)$/m);
    expect(run.stdout).toMatch(new RegExp(`^\\[#+\\] ${STEPS}/${STEPS} epoch 2/2 loss \\d`, 'm'));
    expect(run.stdout).toMatch(
      /^done: step 40 of 40 \(epoch 2\) in \d\d:\d\d, [\d.]+ it\/s; loss [\d.]+ \(first step\) → /m,
    );
    expect(run.stdout).toContain(`adapter: ${join('demo', 'output', 'full', 'adapter_model.safetensors')}`);

    const out = outputOf('full');
    const files = readdirSync(out);
    for (const file of [
      'adapter_model.safetensors',
      'adapter_config.json',
      'config.yaml',
      'runs.jsonl',
      'loss.svg',
    ])
      expect(files).toContain(file);
    expect(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'))).toMatchObject({
      peft_type: 'LORA',
      r: 16,
      lora_alpha: 32,
    });
    expect(readFileSync(join(out, 'config.yaml'), 'utf8')).toMatch(/^# lora \d+\.\d+\.\d+, run started /);
    expect(readdirSync(join(out, 'logs'))[0]).toMatch(/tfevents/);
    expect(await sharp(join(out, 'loss.png')).metadata()).toMatchObject({ format: 'png' });

    const losses = metricsOf('full').map((m) => m.loss);
    expect(losses).toHaveLength(STEPS);
    expect(mean(losses.slice(-5))).toBeLessThan(mean(losses.slice(0, 5)) - 1);
  });

  it('Ctrl-C saves a checkpoint and the adapter; --resume auto ends with the same adapter bytes', async () => {
    const child = spawn(process.execPath, [bin, ...trainArgs('interrupted')], { cwd, env });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk;
    });
    let running = true;
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => {
        running = false;
        resolve(code);
      }),
    );
    while (running && metricsOf('interrupted').length < 3)
      await new Promise((resolve) => setTimeout(resolve, 20));
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    const reached = metricsOf('interrupted').at(-1)!.step;
    expect(reached).toBeLessThan(STEPS);
    expect(stdout).toContain('stopping after the current step');
    expect(stdout).toMatch(new RegExp(`^stopped at step ${reached} of ${STEPS} `, 'm'));
    expect(stdout).toContain(`continue with: lora train --config ${config} --resume auto`);
    expect(existsSync(join(outputOf('interrupted'), 'checkpoints', `step-${reached}`))).toBe(true);
    expect(existsSync(join(outputOf('interrupted'), 'adapter_model.safetensors'))).toBe(true);

    const resumed = lora(...trainArgs('interrupted', '--resume', 'auto'));
    expect(resumed.stderr).toBe('');
    expect(resumed.status).toBe(0);
    expect(resumed.stdout).toContain(
      `resuming from ${join(outputOf('interrupted'), 'checkpoints', `step-${reached}`)}`,
    );
    const adapter = (name: string) => readFileSync(join(outputOf(name), 'adapter_model.safetensors'));
    expect(adapter('interrupted').equals(adapter('full'))).toBe(true);
    expect(metricsOf('interrupted').map((m) => m.step)).toEqual(
      Array.from({ length: STEPS }, (_, i) => i + 1),
    );
  });

  it.each([
    [
      'a fresh run into a used output folder',
      trainArgs('full'),
      2,
      /^lora: The output folder .*full already holds files .* pass --overwrite .*#output-folder-not-empty\. \[E_OUTPUT_NOT_EMPTY\]\n$/,
    ],
    [
      'a backend that is not installed',
      trainArgs('never', '--set', 'backend=nope'),
      1,
      /^lora: backend: nope needs the package @lora\/trainer-nope, which is not installed\. .*\[E_BACKEND_NOT_FOUND\]\n$/,
    ],
    [
      'a base model folder without config.json, leaving no run folder behind',
      trainArgs('never', '--set', 'base_model=demo/data'),
      1,
      /^lora: .*data\/config\.json does not exist; a model folder holds config\.json next to the weights \[E_MODEL_FILES\]\n$/,
    ],
    ['no config', ['train'], 2, /^lora: Which config\? Usage: lora train --config .*\[E_USAGE\]\n$/],
  ])('refuses %s with one paragraph', (_, args, status, message) => {
    const run = lora(...args);
    expect(run.stderr).toMatch(message);
    expect(run.status).toBe(status);
    expect(existsSync(outputOf('never'))).toBe(false);
  });
});
