import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { DoctorReport } from './doctor.ts';

const bin = fileURLToPath(new URL('../../bin.js', import.meta.url));
const ortVersion = (
  JSON.parse(
    readFileSync(fileURLToPath(new URL('../../../trainer-ort/package.json', import.meta.url)), 'utf8'),
  ) as { dependencies: Record<string, string> }
).dependencies['onnxruntime-node'];

function lora(...args: string[]) {
  const result = spawnSync(process.execPath, [bin, 'doctor', ...args], { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('lora doctor (built binary)', { timeout: 60_000 }, () => {
  it('--json reports the runtime, the providers, CUDA, the WebGPU adapters and what auto takes', () => {
    const run = lora('--json');
    expect(run.status).toBe(0);
    const { runtime: report, ...machine } = JSON.parse(run.stdout) as DoctorReport;
    expect(machine.node).toBe(process.versions.node);
    if (report === undefined) throw new Error(`no runtime report: ${machine.problem}`);
    expect(report.onnxruntime.version).toBe(ortVersion);
    expect(report.onnxruntime.providers).toEqual(
      expect.arrayContaining([
        { name: 'cpu', bundled: true, installed: true },
        { name: 'webgpu', bundled: true, installed: true },
      ]),
    );
    expect(report.cuda.install.npm).toEqual(['ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node']);
    expect(report.cuda.install.pnpm.join('\n')).toMatch(
      /pnpm approve-builds.*\n.*pnpm rebuild onnxruntime-node/,
    );
    // auto takes a device consistent with what the report found.
    const realGpu = report.webgpu.adapters.some((a) => a.type === 'gpu' && a.usedByOnnxRuntime);
    if (report.cuda.starts) expect(report.auto.device).toBe('cuda');
    else if (realGpu && report.webgpu.starts) expect(report.auto.device).toBe('webgpu');
    else {
      expect(report.auto.device).toBe('cpu');
      expect(report.auto.reason).toMatch(/WebGPU/);
    }
    for (const adapter of report.webgpu.adapters) {
      expect(adapter.maxBufferSize).toBeGreaterThan(0);
      expect(['gpu', 'cpu']).toContain(adapter.type);
    }
    if (report.webgpu.adapters.length === 0) expect(report.webgpu.problem).toMatch(/adapter|WebGPU/);
  });

  it('prints the same facts as text', () => {
    const run = lora();
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(
      new RegExp(`^Node\\.js ${process.versions.node} on ${process.platform}-${process.arch}`),
    );
    expect(run.stdout).toContain(`onnxruntime-node ${ortVersion}, execution providers:`);
    expect(run.stdout).toMatch(/^CUDA: /m);
    expect(run.stdout).toMatch(/^WebGPU: \d+ adapter\(s\)/m);
    expect(run.stdout).toMatch(/^device: auto → (cpu|cuda|webgpu)/m);
  });

  it('reports an onnxruntime-node that does not load instead of failing with it', () => {
    // A resolve hook that makes importing onnxruntime-node fail, as a broken native install does.
    const hook = `data:text/javascript,${encodeURIComponent(
      "import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(`export async function resolve(s, c, next) { if (s === 'onnxruntime-node') throw new Error('simulated broken binding'); return next(s, c); }`));",
    )}`;
    const result = spawnSync(process.execPath, ['--import', hook, bin, 'doctor', '--json'], {
      encoding: 'utf8',
    });
    expect(result.status).toBe(0);
    const report = JSON.parse(result.stdout) as DoctorReport;
    expect(report.runtime).toBeUndefined();
    expect(report.problem).toMatch(
      /^onnxruntime-node did not load: simulated broken binding; reinstall @lora\/cli$/,
    );
    expect(report.node).toBe(process.versions.node);
  });
});
