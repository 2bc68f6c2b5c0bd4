// Shared by the bench scripts: interleaved timing, medians, the Python side as a long-lived
// worker, machine and version facts, and the result table.
import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const BENCH_DIR = join(ROOT, 'bench');
/** Debian's interpreter: its python3-* packages are what the scripts install; pyenv's python3 may come first on PATH. */
export const PYTHON = '/usr/bin/python3';
/** The issue asks for the median of at least 5 runs. */
export const RUNS = 5;

export const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/**
 * Runs every side once per round, `runs` rounds after one untimed warm-up round (JIT, caches,
 * worker pools), alternating which side goes first, so that load from other jobs on the shared
 * cores falls on both sides alike. Each side returns its own measured seconds (so a Python side
 * can leave out its interpreter's start-up), or nothing to be timed here. Returns the seconds of
 * every timed run per side, in round order.
 */
export async function interleave(sides, runs = RUNS) {
  const names = Object.keys(sides);
  const seconds = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = -1; round < runs; round++) {
    const order = round % 2 ? [...names].reverse() : names;
    for (const name of order) {
      const started = performance.now();
      const reported = await sides[name]();
      if (round < 0) continue;
      seconds[name].push(typeof reported === 'number' ? reported : (performance.now() - started) / 1000);
    }
  }
  return seconds;
}

/**
 * A row comparing two rates (higher is faster). `ours` / `base` are per-run rates of the same
 * rounds; the ratio is of the medians, and the spread is the range of the per-round ratios.
 * `ours: null` with `todo` says why the @lora side has no number yet. `runs` keeps the raw rates
 * in the `--json` output.
 */
export function row({ id, name, unit, ours, oursLabel, base, baseLabel, target, todo }) {
  const ratio = ours && base ? median(ours) / median(base) : null;
  const perRound = ours && base ? ours.map((value, i) => value / base[i]) : [];
  return {
    id,
    name,
    unit,
    ours: ours ? median(ours) : null,
    oursLabel,
    base: base ? median(base) : null,
    baseLabel,
    ratio,
    spread: perRound.length ? [Math.min(...perRound), Math.max(...perRound)] : null,
    runs: { ours: ours ?? [], base: base ?? [] },
    target: target ?? null,
    todo: todo ?? null,
  };
}

const fmt = (value) => {
  if (value === null) return '—';
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toPrecision(3);
};

function formatRow(r) {
  const ours = r.ours === null ? `TODO${r.todo ? ` (${r.todo})` : ''}` : `${fmt(r.ours)} ${r.unit}`;
  const base = r.base === null ? '—' : `${fmt(r.base)} ${r.unit}`;
  const ratio =
    r.ratio === null
      ? '—'
      : `**${r.ratio.toFixed(2)}×**${r.spread ? ` (${r.spread[0].toFixed(2)}–${r.spread[1].toFixed(2)})` : ''}`;
  const target = r.target === null ? '' : `≥ ${r.target}×`;
  const verdict = r.target === null || r.ratio === null ? '' : r.ratio >= r.target ? 'met' : 'missed';
  return `| ${r.id} | ${r.name} | ${r.oursLabel}: ${ours} | ${r.baseLabel}: ${base} | ${ratio} | ${target} | ${verdict} |`;
}

export function formatTable(sections) {
  const lines = [
    '| # | comparison | @lora | baseline | ratio (range per round) | target | |',
    '| - | ---------- | ----- | -------- | ----------------------- | ------ | - |',
  ];
  for (const section of sections) for (const r of section.rows) lines.push(formatRow(r));
  const notes = sections.flatMap((s) => s.notes.map((n) => `- ${s.title}: ${n}`));
  const versions = sections.flatMap((s) => Object.entries(s.versions).map(([k, v]) => `${k} ${v}`));
  return [...lines, '', `- Versions: ${[...new Set(versions)].join(', ')}.`, '', ...notes].join('\n');
}

export function machineHeader() {
  const cpu = cpus();
  const debian = existsSync('/etc/debian_version')
    ? `Debian ${readFileSync('/etc/debian_version', 'utf8').trim()}`
    : '';
  return [
    `- Date: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    `- Machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores (shared with other jobs), ` +
      `${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${release()} ${debian}`.trimEnd(),
    `- Node ${process.versions.node}; each ratio is @lora ÷ baseline (higher = @lora faster), median of ${RUNS}+ interleaved runs.`,
  ].join('\n');
}

/**
 * Prints a section: as JSON for run-all.mjs with `--json`, else the header and the table.
 * `section` = { title, rows, notes, versions }.
 */
export function report(section) {
  if (process.argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify(section)}\n`);
  } else {
    process.stdout.write(`${machineHeader()}\n\n${formatTable([section])}\n`);
  }
}

/**
 * A folder under the OS temp dir for a benchmark's files (up to 2 GiB), removed when the process
 * exits, also on an error or Ctrl-C.
 */
export function temporaryDir(name) {
  const dir = mkdtempSync(join(tmpdir(), `lora-bench-${name}-`));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  return dir;
}

/** Progress goes to stderr so stdout stays the result. */
export const log = (message) => process.stderr.write(`${message}\n`);

/** Version string of a Debian package, or null when it is not installed. */
export function debianVersion(pkg) {
  try {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax.
    return execFileSync('dpkg-query', ['-W', '-f=${Version}', pkg], {
      encoding: 'utf8',
      stdio: 'pipe',
    }).trim();
  } catch {
    return null;
  }
}

export const pythonVersion = () =>
  execFileSync(PYTHON, ['-c', 'import platform; print(platform.python_version())'], {
    encoding: 'utf8',
  }).trim();

/**
 * Makes sure Debian packages are installed (the Python baselines come from apt, as the issue
 * says), installing the missing ones with apt-get. Needs root; otherwise says what to run.
 */
export function ensureDebianPackages(packages) {
  const missing = packages.filter((pkg) => debianVersion(pkg) === null);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(
      `Missing Debian packages: run \`sudo apt-get install -y ${missing.join(' ')}\` and retry.`,
    );
  }
  log(`installing ${missing.join(', ')} with apt-get…`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-q', ...missing], { stdio: 'inherit', env });
}

/** Fails with a clear message when a package's dist/ has not been built. */
export function requireBuilt(pkg) {
  const entry = join(ROOT, 'packages', pkg, 'dist', 'index.js');
  if (!existsSync(entry))
    throw new Error(`${entry} is missing: run \`pnpm build\` at the repository root first.`);
  return entry;
}

/**
 * A script kept running for the whole comparison: each request is one JSON line on its stdin and
 * gets one JSON line back, so a side is timed inside its own process, without its start-up, and
 * interleaves with the other side round by round. Also the way to give a side its own process,
 * and so its own peak RSS.
 */
export class LineWorker {
  constructor(command, args, env = {}) {
    this.command = command;
    this.child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, ...env },
    });
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
    this.exited = new Promise((resolve) => {
      this.child.once('exit', resolve);
      this.child.once('error', (error) => resolve(error.message));
    });
    // A write to a process that has died fails here; `request` reports it through `exited`.
    this.child.stdin.on('error', () => {});
  }

  async request(message) {
    this.child.stdin.write(`${JSON.stringify(message)}\n`);
    const { value, done } = await this.lines.next();
    if (done) throw new Error(`${this.command} exited with ${await this.exited} (see its error above).`);
    const reply = JSON.parse(value);
    if (reply.error) throw new Error(`${this.command}: ${reply.error}`);
    return reply;
  }

  async close() {
    this.child.stdin.end();
    await this.exited;
  }
}

/** A Python script of bench/ under Debian's interpreter, as a `LineWorker`. */
export class PythonWorker extends LineWorker {
  constructor(script, args = [], env = {}) {
    super(PYTHON, [join(BENCH_DIR, script), ...args], { PYTHONDONTWRITEBYTECODE: '1', ...env });
  }
}

/** A Node script of bench/ as a `LineWorker`. */
export class NodeWorker extends LineWorker {
  constructor(script, args = [], env = {}) {
    super(process.execPath, [join(BENCH_DIR, script), ...args], env);
  }
}

// The worker side of the JSON-lines protocol (a side of a comparison run as its own process).
const input = Buffer.alloc(1 << 16);
let pending = '';
/** The next request, read with a blocking read of stdin; null when the harness has closed it. */
export function nextRequest() {
  for (;;) {
    const newline = pending.indexOf('\n');
    if (newline >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      return JSON.parse(line);
    }
    let read;
    try {
      read = readSync(0, input, 0, input.length, null);
    } catch (error) {
      if (error.code !== 'EAGAIN') throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
      continue;
    }
    if (read === 0) return null;
    pending += input.toString('utf8', 0, read);
  }
}
export const reply = (message) => writeSync(1, `${JSON.stringify(message)}\n`);

/**
 * A Hugging Face LLaMA folder for config `name` of llama-configs.json in `temp`: config.json,
 * random F32 weights (N(0, 0.02²), norms 1) and `batch` × `seq` random token ids.
 */
export async function writeLlamaFolder(temp, name, { batch, seq }) {
  const { writeSafetensors } = await import('../packages/safetensors/dist/index.js');
  const { createRng } = await import('../packages/dataset/dist/index.js');
  const config = JSON.parse(readFileSync(join(BENCH_DIR, 'llama-configs.json'), 'utf8'))[name];
  const folder = join(temp, `llama-${name}`);
  await mkdir(folder, { recursive: true });
  const { hidden_size: h, intermediate_size: inner, vocab_size: vocab } = config;
  const rng = createRng(7, name.length);
  const normal = (shape) => ({
    dtype: 'F32',
    shape,
    data: () => Float32Array.from({ length: shape[0] * shape[1] }, () => rng.normal() * 0.02),
  });
  const ones = { dtype: 'F32', shape: [h], data: new Float32Array(h).fill(1) };
  const tensors = new Map([
    ['model.embed_tokens.weight', normal([vocab, h])],
    ['model.norm.weight', ones],
    ['lm_head.weight', normal([vocab, h])],
  ]);
  const linears = {
    'self_attn.q_proj': [h, h],
    'self_attn.k_proj': [h, h],
    'self_attn.v_proj': [h, h],
    'self_attn.o_proj': [h, h],
    'mlp.gate_proj': [inner, h],
    'mlp.up_proj': [inner, h],
    'mlp.down_proj': [h, inner],
  };
  for (let layer = 0; layer < config.num_hidden_layers; layer++) {
    const prefix = `model.layers.${layer}.`;
    tensors.set(`${prefix}input_layernorm.weight`, ones);
    tensors.set(`${prefix}post_attention_layernorm.weight`, ones);
    for (const [module, shape] of Object.entries(linears))
      tensors.set(`${prefix}${module}.weight`, normal(shape));
  }
  await writeSafetensors(join(folder, 'model.safetensors'), tensors, { format: 'pt' });
  writeFileSync(join(folder, 'config.json'), JSON.stringify(config, null, 2));
  const ids = Array.from({ length: batch }, () =>
    Array.from({ length: seq }, () => rng.nextUint32() % vocab),
  );
  writeFileSync(join(folder, 'input_ids.json'), JSON.stringify(ids));
  return folder;
}

/**
 * The config of the tiny-SD bench run (`trainSd` on the tiny model and shape images, batch
 * `batch`, rank 8 on to_q/to_v, fp32, no checkpoint until the end), written to
 * `<runFolder>/bench.yaml` and parsed.
 */
export async function tinySdConfig({ modelFolder, images, runFolder, batch, device }) {
  const { parseConfig } = await import('../packages/config/dist/index.js');
  mkdirSync(runFolder, { recursive: true });
  const yaml = `task: sd
base_model: ${join(modelFolder, 'tiny-sd.safetensors')}
train_data_dir: ${images}
output_dir: ${runFolder}
target_modules: [to_q, to_v]
lora_rank: 8
lora_alpha: 8
resolution: 64
enable_bucket: false
cache_latents: true
batch_size: ${batch}
max_steps: 1000000
learning_rate: 0.0001
lr_scheduler: constant
optimizer: adamw
weight_decay: 0.01
max_grad_norm: 0
seed: 0
device: ${device}
mixed_precision: "no"
save_every_n_epochs: 1000000
`;
  const configPath = join(runFolder, 'bench.yaml');
  writeFileSync(configPath, yaml);
  return parseConfig(yaml, configPath);
}
