// `pnpm bench`: runs every comparison of issue 12 one after another (each in its own process,
// so no benchmark inherits another's heap or threads) and prints one table. Progress goes to
// stderr, the table to stdout. Needs the packages built (`pnpm build`). Not part of CI.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { BENCH_DIR, formatTable, machineHeader } from './lib.mjs';

const SCRIPTS = ['train-step.mjs', 'preprocess.mjs', 'caption.mjs', 'safetensors.mjs', 'webgpu-step.mjs'];

function runScript(script) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(BENCH_DIR, script), '--json'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code === 0) resolve(JSON.parse(stdout));
      else reject(new Error(`${script} exited with ${code}`));
    });
  });
}

const sections = [];
const failed = [];
for (const script of SCRIPTS) {
  process.stderr.write(`\n== ${script}\n`);
  try {
    sections.push(await runScript(script));
  } catch (error) {
    process.stderr.write(`${error.message}\n`);
    failed.push(script);
  }
}
process.stdout.write(`\n${machineHeader()}\n\n${formatTable(sections)}\n`);
if (failed.length > 0) {
  process.stderr.write(`\nFailed: ${failed.join(', ')} (see above).\n`);
  process.exitCode = 1;
}
