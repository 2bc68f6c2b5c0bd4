import { spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_DATA_PATH } from './commands/demo-project.ts';
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

const runsOf = (name: string): { resumed_from: string | null }[] =>
  readFileSync(join(outputOf(name), 'runs.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));

/** Every entry of a run folder but the cache, with a file's bytes. */
const snapshot = (name: string) =>
  readdirSync(outputOf(name), { recursive: true, encoding: 'utf8' })
    .filter((path) => !path.startsWith('cache'))
    .sort()
    .map((path) => {
      const full = join(outputOf(name), path);
      return [path, statSync(full).isFile() ? readFileSync(full, 'hex') : 'folder'];
    });

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

  it('the whole demo run teaches the random model its answers: lora generate repeats one word for word', {
    timeout: 300_000,
  }, () => {
    const run = lora(
      'train',
      '--config',
      config,
      '--set',
      'output_dir=demo/output/whole',
      '--set',
      'sample_prompts=["What is the capital of Egypt?"]',
      '--set',
      'sample_every_n_steps=500',
      '--set',
      `validation_data=${join('demo', DEMO_DATA_PATH)}`,
      '--set',
      'validation_every_n_steps=500',
    );
    expect(run.status).toBe(0);
    // Validated on the data it learns: the loss falls from the base model's, and the last step is the best.
    const validation = [...run.stdout.matchAll(/^validation at step (\d+): loss (\d+\.\d+) \((.*)\)$/gm)];
    expect(validation.map((m) => Number(m[1]))).toEqual([0, 500, 1000]);
    expect(Number(validation[2]![2])).toBeLessThan(Number(validation[0]![2]) - 1);
    expect(validation[2]![3]).toMatch(/^the lowest so far; \d+\.\d s$/);
    const evaluated = metricsOf('whole').filter((m) => 'val/loss' in m);
    expect(evaluated.map((m) => m.step)).toEqual([0, 500, 1000]);
    expect(existsSync(join(outputOf('whole'), 'best', 'adapter_model.safetensors'))).toBe(true);
    // Samples before the first step, at step 500 and at the end; the last one has learned the answer.
    expect(readdirSync(join(outputOf('whole'), 'samples')).sort()).toEqual([
      'step-000000.txt',
      'step-000500.txt',
      'step-001000.txt',
    ]);
    expect(readFileSync(join(outputOf('whole'), 'samples', 'step-001000.txt'), 'utf8')).toBe(
      '### What is the capital of Egypt?\nThe capital of Egypt is Cairo.\n',
    );
    expect(run.stdout).toMatch(/^samples at step 500: 1 file\(s\) in .*samples \(\d+\.\d s\)$/m);
    // The answers are printed as they come; the last one is the taught answer.
    expect(run.stdout).toMatch(
      /^samples at step 1000: .*\n### What is the capital of Egypt\?\nThe capital of Egypt is Cairo\.$/m,
    );
    const hint = run.stdout.split('\n').find((line) => line.startsWith('try it: '));
    expect(hint).toBe(
      `try it: lora generate --model ${join('demo', 'models', 'tiny-llama')} --adapter ${join('demo', 'output', 'whole')} --prompt "…"`,
    );
    const ask = (...adapter: string[]) =>
      lora(
        'generate',
        '--model',
        join('demo', 'models', 'tiny-llama'),
        ...adapter,
        '--prompt',
        'What is the capital of Egypt?',
        '--max-new-tokens',
        '24',
      );
    const taught = ask('--adapter', join('demo', 'output', 'whole'));
    expect(taught.stderr).toBe('');
    expect(taught.stdout).toBe('The capital of Egypt is Cairo.\n');
    expect(ask().stdout).not.toContain('Cairo');
  });

  it('a {timestamp} output_dir gives each run its own folder; --resume auto goes on in the newest', async () => {
    const runs = () =>
      readdirSync(join(cwd, 'demo', 'output'))
        .filter((name) => /^stamped-\d{8}-\d{6}$/.test(name))
        .sort();
    const first = lora(...trainArgs('stamped-{timestamp}', '--set', 'max_steps=2'));
    expect(first.status, first.stderr).toBe(0);
    expect(runs()).toHaveLength(1);
    const [folder] = runs();
    expect(first.stdout).toContain(`into ${join('demo', 'output', folder!)} (task llm`);
    // Its snapshot names the folder it ran in, not the pattern.
    expect(readFileSync(join(outputOf(folder!), 'config.yaml'), 'utf8')).toContain(
      `output_dir: ${outputOf(folder!)}`,
    );

    const resumed = lora(...trainArgs('stamped-{timestamp}', '--set', 'max_steps=4', '--resume', 'auto'));
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(runs()).toEqual([folder]);
    expect(metricsOf(folder!).map((m) => m.step)).toEqual([1, 2, 3, 4]);

    // The timestamp has whole seconds: the next run starts in a later one.
    await new Promise((done) => setTimeout(done, 1100));
    const second = lora(...trainArgs('stamped-{timestamp}', '--set', 'max_steps=2'));
    expect(second.status, second.stderr).toBe(0);
    expect(runs()).toHaveLength(2);
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
    // The hint repeats the --set overrides: without output_dir it would resume another run.
    expect(stdout).toContain(
      `continue with: lora train --config ${config} --set max_steps=${STEPS} --set output_dir=demo/output/interrupted --resume auto`,
    );
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
    expect(runsOf('interrupted').map((run) => run.resumed_from)).toEqual([
      null,
      join(outputOf('interrupted'), 'checkpoints', `step-${reached}`),
    ]);
  });

  it.each([
    [
      'resume with other settings',
      ['--resume', 'auto', '--set', 'lora_rank=4'],
      /does not fit this run: .*\[E_CHECKPOINT_INVALID\]\n$/,
    ],
    [
      '--overwrite with a model that does not load',
      ['--overwrite', '--set', 'base_model=demo/empty'],
      /empty\/config\.json does not exist; .*\[E_MODEL_FILES\]\n$/,
    ],
  ])('a failed %s leaves the finished run as it was', (_, more, message) => {
    mkdirSync(join(cwd, 'demo', 'empty'), { recursive: true });
    const before = snapshot('full');
    const run = lora(...trainArgs('full', ...more));
    expect(run.stderr).toMatch(message);
    expect(run.status).toBe(1);
    expect(snapshot('full')).toEqual(before);
  });

  it('after those, resumes the finished run; --overwrite replaces every output of it but the cache', () => {
    const adapter = readFileSync(join(outputOf('full'), 'adapter_model.safetensors'));
    const resumed = lora(...trainArgs('full', '--resume', 'auto'));
    expect(resumed.stderr).toBe('');
    expect(resumed.stdout).toMatch(/^done: step 40 \(epoch 2\)/m);
    expect(readFileSync(join(outputOf('full'), 'adapter_model.safetensors')).equals(adapter)).toBe(true);
    const last = join(outputOf('full'), 'checkpoints', `step-${STEPS}`);
    expect(runsOf('full').map((run) => run.resumed_from)).toEqual([null, last]);

    // A file lora did not write stays, even one named like an adapter.
    writeFileSync(join(outputOf('full'), 'style_v1.safetensors'), 'x');
    const again = lora(...trainArgs('full', '--overwrite', '--set', 'max_steps=20'));
    expect(again.stderr).toBe('');
    expect(again.status).toBe(0);
    const files = readdirSync(outputOf('full'));
    expect(readFileSync(join(outputOf('full'), 'style_v1.safetensors'), 'utf8')).toBe('x');
    expect(files).toContain('cache');
    expect(files).not.toContain('lora.lock');
    expect(readdirSync(join(outputOf('full'), 'checkpoints'))).toEqual(['step-20']);
    expect(readdirSync(join(outputOf('full'), 'logs'))).toHaveLength(1);
    expect(metricsOf('full').map((m) => m.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(runsOf('full')).toHaveLength(1);
    expect(readFileSync(join(outputOf('full'), 'config.yaml'), 'utf8')).toMatch(/^max_steps: 20$/m);
  });

  it.each([
    [
      'a fresh run into a used output folder',
      trainArgs('full'),
      2,
      /^lora: The output folder .*full holds an earlier run \(.*\)\. Continue it with --resume auto, .* pass --overwrite .*; style_v1\.safetensors stay\).*#output-folder-not-empty\. \[E_OUTPUT_NOT_EMPTY\]\n$/,
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
      /^lora: .*data\/config\.json does not exist; base_model must be the model folder, which holds config\.json next to the weights \[E_MODEL_FILES\]\n$/,
    ],
    [
      'a model file for base_model, naming the folder it must be',
      trainArgs('never', '--set', 'base_model=demo/models/tiny-llama/model.safetensors'),
      1,
      /^lora: base_model .*tiny-llama\/model\.safetensors is a file; base_model must be the model folder, which holds config\.json next to the weights \[E_MODEL_FILES\]\n$/,
    ],
    [
      'a --resume folder that does not exist, naming the flag',
      trainArgs('never', '--resume', '/nonexistent'),
      1,
      /^lora: .*demo_demo_v1\.yaml: 1 problem\n {2}--resume: \/nonexistent does not exist\. See .*#resume-found-nothing\. \[E_CONFIG_INVALID\]\n$/,
    ],
    ['no config', ['train'], 2, /^lora: Which config\? Usage: lora train --config .*\[E_USAGE\]\n$/],
  ])('refuses %s with one paragraph', (_, args, status, message) => {
    const run = lora(...args);
    expect(run.stderr).toMatch(message);
    expect(run.status).toBe(status);
    expect(existsSync(outputOf('never'))).toBe(false);
  });
});

/** A training child process whose output is collected; `until` polls the run's metrics. */
function startTraining(name: string, steps: number) {
  const child = spawn(
    process.execPath,
    [bin, ...trainArgs(name, '--set', `max_steps=${steps}`, '--set', 'save_every_n_steps=1')],
    { cwd, env },
  );
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk: Buffer) => {
    output.stdout += chunk;
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output.stderr += chunk;
  });
  let running = true;
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      running = false;
      resolve(code);
    }),
  );
  const until = async (steps: number) => {
    while (running && metricsOf(name).length < steps) await new Promise((resolve) => setTimeout(resolve, 20));
  };
  return { child, output, exited, until };
}

describe('lora train keeps the files of the user and one run per folder (built binary)', {
  timeout: 120_000,
}, () => {
  it('locks the folder: a second train, --resume or --overwrite is refused naming the pid; SIGTERM then stops like Ctrl-C', async () => {
    const first = startTraining('locked', 400);
    await first.until(2);
    for (const more of [[], ['--resume', 'auto'], ['--overwrite']]) {
      const second = lora(...trainArgs('locked', ...more));
      expect(second.status).toBe(2);
      expect(second.stderr).toMatch(
        new RegExp(
          `^lora: .*locked is in use by another lora run \\(pid ${first.child.pid} on .*kill -TERM ${first.child.pid}.*\\[E_RUN_LOCKED\\]\\n$`,
        ),
      );
    }
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(143);
    const reached = metricsOf('locked').at(-1)!.step;
    expect(reached).toBeLessThan(400);
    expect(first.output.stdout).toContain('SIGTERM: stopping after the current step');
    expect(first.output.stdout).toMatch(new RegExp(`^stopped at step ${reached} of 400 `, 'm'));
    expect(first.output.stdout).toMatch(/^continue with: lora train .*--resume auto$/m);
    expect(first.output.stderr).toBe('');
    const files = readdirSync(outputOf('locked'));
    expect(files).toEqual(
      expect.arrayContaining(['adapter_model.safetensors', 'checkpoints', 'lora-run.json']),
    );
    expect(files).not.toContain('lora.lock');
    expect(existsSync(join(outputOf('locked'), 'checkpoints', `step-${reached}`))).toBe(true);
  });

  it('takes over the lock of a process that is gone, with a warning', () => {
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    writeFileSync(
      join(outputOf('locked'), 'lora.lock'),
      JSON.stringify({ pid: Number(gone.stdout), host: hostname(), started: '2026-01-01T00:00:00Z' }),
    );
    const resumed = lora(...trainArgs('locked', '--resume', 'auto', '--set', 'max_steps=400'));
    expect(resumed.status).toBe(0);
    expect(resumed.stdout).toMatch(
      new RegExp(`^warning: removed a stale lock of pid ${gone.stdout} \\(no longer running\\)`, 'm'),
    );
    expect(readdirSync(outputOf('locked'))).not.toContain('lora.lock');
  });

  it('refuses the base model folder and a folder of files it did not write, even with --overwrite, and touches nothing', () => {
    const model = join(cwd, 'demo', 'models', 'tiny-llama');
    const modelFiles = readdirSync(model).sort();
    for (const more of [[], ['--overwrite']]) {
      const run = lora(...trainArgs('x', '--set', 'output_dir=demo/models/tiny-llama', ...more));
      expect(run.status).toBe(2);
      expect(run.stderr).toMatch(
        /^lora: output_dir .*demo\/models\/tiny-llama is the folder of base_model .*could replace the model's files\. Choose an output_dir outside it.*\[E_OUTPUT_IN_MODEL\]\n$/,
      );
    }
    expect(readdirSync(model).sort()).toEqual(modelFiles);

    const loras = join(cwd, 'demo', 'loras');
    mkdirSync(loras, { recursive: true });
    writeFileSync(join(loras, 'someone_else.safetensors'), 'x');
    for (const more of [[], ['--overwrite'], ['--resume', 'auto']]) {
      const run = lora(...trainArgs('x', '--set', 'output_dir=demo/loras', ...more));
      expect(run.status).toBe(2);
      expect(run.stderr).toMatch(
        /^lora: The output folder .*loras holds files lora did not write \(someone_else\.safetensors\)\..*\[E_OUTPUT_FOREIGN\]\n$/,
      );
      expect(run.stderr).not.toContain('--overwrite');
    }
    expect(readdirSync(loras)).toEqual(['someone_else.safetensors']);
  });

  it('an output_dir under a regular file is refused saying so, not as a missing file', () => {
    const run = lora(...trainArgs('x', '--set', `output_dir=${config}/run`));
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      /output_dir: .*demo_demo_v1\.yaml\/run.* goes through a file as if it were a folder; check the path \[E_CONFIG_INVALID\]/,
    );
  });

  it('a reader that goes away (| head) stops the output, not the run: no stack trace, the adapter is written', async () => {
    const run = startTraining('piped', 30);
    await new Promise<void>((resolve) => run.child.stdout.once('data', () => resolve()));
    run.child.stdout.destroy();
    expect(await run.exited).toBe(0);
    expect(run.output.stderr).toBe('');
    const files = readdirSync(outputOf('piped'));
    expect(files).toEqual(expect.arrayContaining(['adapter_model.safetensors', 'metrics.jsonl']));
    expect(files).not.toContain('graphs');
    expect(metricsOf('piped')).toHaveLength(30);
  });
});

/** A tmpfs (5 MiB, or read-only), when this process may mount one (root in CI); else why not. */
function smallDisk(options = 'size=5m'): { folder: string; unmount: () => void } | { reason: string } {
  const folder = tempDir('lora-small-disk-');
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', folder], { encoding: 'utf8' });
  if (mounted.status !== 0)
    return { reason: `cannot mount a tmpfs here (${mounted.stderr.trim() || mounted.error?.message})` };
  return { folder, unmount: () => spawnSync('umount', [folder]) };
}

describe.runIf(process.platform === 'linux' && existsSync('/dev/shm'))(
  'lora train across filesystems (built binary)',
  () => {
    it('trains into an output_dir on another filesystem than the model (/dev/shm), reading the weights in place', () => {
      const output = mkdtempSync('/dev/shm/lora-run-');
      try {
        const run = lora(...trainArgs('x', '--set', `output_dir=${output}`, '--set', 'max_steps=3'));
        expect(run.stderr).toBe('');
        expect(run.status).toBe(0);
        expect(readdirSync(output)).toEqual(
          expect.arrayContaining(['adapter_model.safetensors', 'checkpoints']),
        );
      } finally {
        rmSync(output, { recursive: true, force: true });
      }
    });
  },
);

describe('lora train on a full disk (built binary)', { timeout: 120_000 }, () => {
  const disk = smallDisk();
  if ('reason' in disk) console.warn(`disk-full test skipped: ${disk.reason}`);
  const readOnly = smallDisk('ro,size=1m');
  if ('reason' in readOnly) console.warn(`read-only disk test skipped: ${readOnly.reason}`);
  afterAll(() => {
    for (const mounted of [disk, readOnly]) if (!('reason' in mounted)) mounted.unmount();
  });

  it.skipIf('reason' in disk)(
    'names the file, the last complete checkpoint and the resume command; leaves no temporary file; resumes once there is room',
    () => {
      if ('reason' in disk) return;
      try {
        // The demo model, its data and the run on the same 5 MiB disk (2.9 MiB of model, 1.6 MiB per checkpoint): a second checkpoint (1.6 MiB) does not fit beside the first.
        cpSync(join(cwd, 'demo'), join(disk.folder, 'demo'), {
          recursive: true,
          filter: (path) => !path.includes(`${sep}output`),
        });
        const args = [
          '--set',
          'max_steps=40',
          '--set',
          'save_every_n_steps=5',
          '--set',
          'keep_last_n_checkpoints=1',
        ];
        const run = spawnSync(process.execPath, [bin, 'train', '--config', config, ...args], {
          cwd: disk.folder,
          encoding: 'utf8',
          env,
        });
        expect(run.status).toBe(1);
        expect(run.stderr).toMatch(
          /^lora: writing .*checkpoints.*\.safetensors failed: the disk is full \(ENOSPC\)\. The last complete checkpoint is .*checkpoints\/step-5: training up to it is safe .*continue with: lora train --config .* --resume auto\. See .*#disk-full-or-not-writable\. \[ENOSPC\]\n$/,
        );
        const output = join(disk.folder, 'demo', 'output', 'tiny_llama_demo');
        const leftovers = readdirSync(output, { recursive: true, encoding: 'utf8' }).filter((p) =>
          p.includes('.tmp'),
        );
        expect(leftovers).toEqual([]);
        expect(readdirSync(join(output, 'checkpoints'))).toEqual(['step-5']);
        // Room again (the disk grows to 8 MiB): the run continues from step 5.
        expect(spawnSync('mount', ['-o', 'remount,size=8m', disk.folder]).status).toBe(0);
        const resumed = spawnSync(
          process.execPath,
          [bin, 'train', '--config', config, ...args, '--set', 'max_steps=6', '--resume', 'auto'],
          { cwd: disk.folder, encoding: 'utf8', env },
        );
        expect(resumed.stderr).toBe('');
        expect(resumed.stdout).toMatch(/resuming from .*step-5/);
        expect(resumed.status).toBe(0);
        expect(existsSync(join(output, 'adapter_model.safetensors'))).toBe(true);
      } finally {
        disk.unmount();
      }
    },
  );

  it.skipIf('reason' in readOnly)(
    'an output_dir on a read-only disk is E_OUTPUT_UNWRITABLE naming the folder',
    () => {
      if ('reason' in readOnly) return;
      try {
        for (const output of [join(readOnly.folder, 'run'), readOnly.folder]) {
          const run = lora(...trainArgs('x', '--set', `output_dir=${output}`));
          expect(run.status).toBe(2);
          expect(run.stderr).toMatch(
            / is not writable \(a read-only disk, or owned by another user\)\. Choose an output_dir you can write to\. \[E_OUTPUT_UNWRITABLE\]\n$/,
          );
        }
      } finally {
        readOnly.unmount();
      }
    },
  );

  it('a record that cannot be written (a folder where it goes) is a warning naming it; training goes on, no .tmp is left', () => {
    const name = 'records-blocked';
    expect(lora(...trainArgs(name, '--set', 'max_steps=2')).status).toBe(0);
    // The loss plot is renamed into place at each checkpoint: a folder in its place refuses that.
    rmSync(join(outputOf(name), 'loss.svg'));
    mkdirSync(join(outputOf(name), 'loss.svg'));
    const resumed = lora(...trainArgs(name, '--set', 'max_steps=4', '--resume', 'auto'));
    expect(resumed.status).toBe(0);
    expect(resumed.stdout).toMatch(/^warning: the run folder's records stopped being written: .*loss\.svg/m);
    expect(existsSync(join(outputOf(name), 'checkpoints', 'step-4'))).toBe(true);
    expect(readdirSync(outputOf(name)).filter((entry) => entry.endsWith('.tmp'))).toEqual([]);
  });
});
