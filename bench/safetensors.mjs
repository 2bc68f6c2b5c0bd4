// Issue 12, item 4: @lora/safetensors read and write of a 1 GiB file against `cp` of the same
// file, and the open time of a sharded ~5 GB checkpoint's headers. Run: node bench/safetensors.mjs
// Files live in a temporary folder under the OS temp dir and are deleted at the end.
import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  debianVersion,
  ensureDebianPackages,
  interleave,
  log,
  median,
  PythonWorker,
  pythonVersion,
  RUNS,
  report,
  requireBuilt,
  row,
  temporaryDir,
} from './lib.mjs';

requireBuilt('safetensors');
const { openSafetensors, openShardedSafetensors, writeSafetensors } = await import(
  '../packages/safetensors/dist/index.js'
);

const TENSORS = 16;
const TENSOR_BYTES = 64 << 20; // 16 × 64 MiB F32 = 1 GiB
const TOTAL = TENSORS * TENSOR_BYTES;
/** Opening headers takes milliseconds, so more rounds are cheap and steady the median. */
const OPEN_RUNS = 21;
/** Disk writes on this shared machine vary the most: a few more rounds. */
const WRITE_RUNS = 7;

ensureDebianPackages(['python3']);
const dir = temporaryDir('safetensors');
const gbps = (seconds) => seconds.map((s) => TOTAL / 1e9 / s);
const run = (command, args) => execFileSync(command, args, { stdio: 'ignore' });
/** Flushes every dirty page, untimed, so no side pays for the previous side's writeback. */
const flushAll = () => run('sync', []);

/**
 * Headers of a LLaMA-shaped BF16 checkpoint (hidden 2560, 30 layers, vocab 32000: ~5.1 GB) in
 * 5 shards named as transformers names them, data left as holes: only the headers are read.
 */
function writeShardedCheckpoint(folder) {
  const hidden = 2560;
  const inner = 6912;
  const vocab = 32000;
  const shapes = [['model.embed_tokens.weight', [vocab, hidden]]];
  for (let layer = 0; layer < 30; layer++) {
    const p = `model.layers.${layer}.`;
    shapes.push(
      [`${p}input_layernorm.weight`, [hidden]],
      [`${p}post_attention_layernorm.weight`, [hidden]],
      [`${p}self_attn.q_proj.weight`, [hidden, hidden]],
      [`${p}self_attn.k_proj.weight`, [hidden, hidden]],
      [`${p}self_attn.v_proj.weight`, [hidden, hidden]],
      [`${p}self_attn.o_proj.weight`, [hidden, hidden]],
      [`${p}mlp.gate_proj.weight`, [inner, hidden]],
      [`${p}mlp.up_proj.weight`, [inner, hidden]],
      [`${p}mlp.down_proj.weight`, [hidden, inner]],
    );
  }
  shapes.push(['model.norm.weight', [hidden]], ['lm_head.weight', [vocab, hidden]]);
  const bytesOf = (shape) => shape.reduce((a, b) => a * b, 2);
  const total = shapes.reduce((sum, [, shape]) => sum + bytesOf(shape), 0);
  const shardCount = 5;
  const shards = Array.from({ length: shardCount }, () => []);
  let filled = 0;
  for (const entry of shapes) {
    shards[Math.min(shardCount - 1, Math.floor((filled / total) * shardCount))].push(entry);
    filled += bytesOf(entry[1]);
  }
  const weightMap = {};
  shards.forEach((entries, i) => {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shardCount).padStart(5, '0')}.safetensors`;
    const header = { __metadata__: { format: 'pt' } };
    let offset = 0;
    for (const [name, shape] of [...entries].sort(([a], [b]) => (a < b ? -1 : 1))) {
      header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + bytesOf(shape)] };
      offset += bytesOf(shape);
      weightMap[name] = file;
    }
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - (json.length % 8)) % 8);
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(json.length));
    const path = join(folder, file);
    writeFileSync(path, Buffer.concat([length, Buffer.from(json)]));
    truncateSync(path, 8 + json.length + offset); // a sparse hole: no data written
  });
  const index = join(folder, 'model.safetensors.index.json');
  writeFileSync(index, JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  return { index, total, tensors: shapes.length };
}

log(`generating ${TOTAL / 2 ** 30} GiB of tensors in ${dir}…`);
const tensors = new Map();
for (let i = 0; i < TENSORS; i++) {
  const data = randomFillSync(new Uint8Array(TENSOR_BYTES));
  tensors.set(`layer.${i}.weight`, { dtype: 'F32', shape: [4096, TENSOR_BYTES / 4 / 4096], data });
}
const source = join(dir, 'source.safetensors');
const written = join(dir, 'written.safetensors');
const copied = join(dir, 'copied.safetensors');
await writeSafetensors(source, tensors);
flushAll();

log('write: writeSafetensors vs cp vs cp + sync…');
const timedWrite = (target, write) => async () => {
  rmSync(target, { force: true });
  flushAll();
  const started = performance.now();
  await write();
  const seconds = (performance.now() - started) / 1000;
  flushAll();
  return seconds;
};
const writes = await interleave(
  {
    ours: timedWrite(written, () => writeSafetensors(written, tensors)),
    cp: timedWrite(copied, () => run('cp', [source, copied])),
    cpSync: timedWrite(copied, () => {
      run('cp', [source, copied]);
      run('sync', ['--data', copied]);
    }),
  },
  WRITE_RUNS,
);
rmSync(written, { force: true });
rmSync(copied, { force: true });

log('read: readInto / read vs cp to /dev/null…');
const buffer = new Uint8Array(TENSOR_BYTES);
const readAll = async (consume) => {
  const file = await openSafetensors(source);
  for (const name of file.tensors.keys()) await consume(file, name);
  await file.close();
};
const reads = await interleave({
  readInto: () => readAll((file, name) => file.readInto(name, buffer)),
  read: () => readAll((file, name) => file.read(name)),
  cp: () => run('cp', [source, '/dev/null']),
});
rmSync(source);

log('sharded open: openShardedSafetensors vs Python json headers…');
const shardDir = join(dir, 'sharded');
mkdirSync(shardDir);
const sharded = writeShardedCheckpoint(shardDir);
const python = new PythonWorker('safetensors_headers.py');
let opens;
try {
  opens = await interleave(
    {
      ours: async () => {
        const checkpoint = await openShardedSafetensors(sharded.index);
        if (checkpoint.tensors.size !== sharded.tensors) throw new Error('wrong tensor count');
        await checkpoint.close();
      },
      python: async () => (await python.request({ cmd: 'run', index: sharded.index })).seconds,
    },
    OPEN_RUNS,
  );
} finally {
  await python.close();
}
const perSecond = (seconds) => seconds.map((s) => 1 / s);
const ms = (seconds) => `${(median(seconds) * 1000).toFixed(1)} ms`;

report({
  title: 'safetensors',
  versions: {
    coreutils: debianVersion('coreutils') ?? '?',
    Python: pythonVersion(),
  },
  rows: [
    row({
      id: '4',
      name: 'write 1 GiB (16 × 64 MiB F32), incl. fdatasync + rename',
      unit: 'GB/s',
      ours: gbps(writes.ours),
      oursLabel: '`writeSafetensors`',
      base: gbps(writes.cpSync),
      baseLabel: '`cp` + `sync --data`',
      target: 0.8,
    }),
    row({
      id: '4',
      name: 'write 1 GiB, against `cp` that leaves the data in the page cache',
      unit: 'GB/s',
      ours: gbps(writes.ours),
      oursLabel: '`writeSafetensors`',
      base: gbps(writes.cp),
      baseLabel: '`cp`',
    }),
    row({
      id: '4',
      name: 'read 1 GiB (page cache warm) into one reused buffer',
      unit: 'GB/s',
      ours: gbps(reads.readInto),
      oursLabel: '`readInto`',
      base: gbps(reads.cp),
      baseLabel: '`cp` to /dev/null',
      target: 0.8,
    }),
    row({
      id: '4',
      name: 'read 1 GiB (page cache warm), a new buffer per tensor',
      unit: 'GB/s',
      ours: gbps(reads.read),
      oursLabel: '`read`',
      base: gbps(reads.cp),
      baseLabel: '`cp` to /dev/null',
    }),
    row({
      id: '4',
      name: `open a sharded checkpoint: 5 shards, ${sharded.tensors} tensors, ${(sharded.total / 1e9).toFixed(1)} GB (headers only)`,
      unit: 'opens/s',
      ours: perSecond(opens.ours),
      oursLabel: `\`openShardedSafetensors\` (${ms(opens.ours)})`,
      base: perSecond(opens.python),
      baseLabel: `Python \`json\` header read (${ms(opens.python)})`,
    }),
  ],
  notes: [
    `write: ${WRITE_RUNS} rounds, read: ${RUNS} rounds, each after an untimed warm-up round; page cache flushed (\`sync\`, untimed) around every write; open: ${OPEN_RUNS} rounds.`,
    'the sharded checkpoint is sparse (headers written, data a hole); `openShardedSafetensors` validates every header and the index, the Python baseline only parses them.',
  ],
});
