/**
 * Read and write throughput on a 1 GiB safetensors file, against `cp` of the same file.
 * Run: npx jiti bench/throughput.ts [directory]   (the directory defaults to the OS temp dir)
 * The file is deleted afterwards. Numbers are best of three, page cache warm.
 */
import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSafetensors, type TensorData, writeSafetensors } from '../src/index.ts';

const TENSORS = 16;
const TENSOR_BYTES = 64 << 20; // 16 × 64 MiB = 1 GiB, the size of a large SD checkpoint's tensors
const TOTAL = TENSORS * TENSOR_BYTES;

const directory = mkdtempSync(join(process.argv[2] ?? tmpdir(), 'safetensors-bench-'));
const path = join(directory, 'bench.safetensors');
const copy = join(directory, 'copy.safetensors');

async function best(run: () => Promise<void> | void): Promise<number> {
  let fastest = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    await run();
    fastest = Math.min(fastest, (performance.now() - started) / 1000);
  }
  return fastest;
}

const rate = (seconds: number) => `${(TOTAL / 1e9 / seconds).toFixed(2)} GB/s`;

try {
  const data = randomFillSync(new Uint8Array(TENSOR_BYTES));
  const tensors = new Map<string, TensorData>();
  for (let i = 0; i < TENSORS; i++) {
    tensors.set(`layer.${i}.weight`, { dtype: 'F32', shape: [4096, TENSOR_BYTES / 4 / 4096], data });
  }

  const write = await best(() => writeSafetensors(path, tensors));
  const cpWrite = await best(() => {
    execFileSync('cp', [path, copy]);
  });
  const cpWriteSync = await best(() => {
    execFileSync('sh', ['-c', `cp "${path}" "${copy}" && sync "${copy}"`]);
  });

  const target = new Uint8Array(TENSOR_BYTES);
  const readInto = await best(async () => {
    const file = await openSafetensors(path);
    for (const name of file.tensors.keys()) await file.readInto(name, target);
    await file.close();
  });
  const read = await best(async () => {
    const file = await openSafetensors(path);
    for (const name of file.tensors.keys()) await file.read(name);
    await file.close();
  });
  const cpRead = await best(() => {
    execFileSync('cp', [path, '/dev/null']);
  });
  const catRead = await best(() => {
    execFileSync('sh', ['-c', `cat "${path}" > /dev/null`]);
  });

  console.log(`file: ${TOTAL / 2 ** 30} GiB, ${TENSORS} tensors, in ${directory}`);
  console.log(`write (temp file + datasync + rename): ${rate(write)}`);
  console.log(
    `cp (page cache only):                 ${rate(cpWrite)}  → ratio ${(cpWrite / write).toFixed(2)}`,
  );
  console.log(
    `cp + sync:                            ${rate(cpWriteSync)}  → ratio ${(cpWriteSync / write).toFixed(2)}`,
  );
  console.log(`readInto (reused buffer):             ${rate(readInto)}`);
  console.log(`read (new buffer per tensor):         ${rate(read)}`);
  console.log(
    `cp to /dev/null:                      ${rate(cpRead)}  → ratio readInto ${(cpRead / readInto).toFixed(2)}, read ${(cpRead / read).toFixed(2)}`,
  );
  console.log(
    `cat to /dev/null:                     ${rate(catRead)}  → ratio readInto ${(catRead / readInto).toFixed(2)}, read ${(catRead / read).toFixed(2)}`,
  );
} finally {
  rmSync(directory, { recursive: true, force: true });
}
