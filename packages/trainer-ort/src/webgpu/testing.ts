/**
 * `@lora/trainer-ort/testing`, for tests (here and in other packages): the WebGPU parity helpers: whether this machine has a WebGPU adapter (and
 * whether CI demands one), a graph run on the CPU and the WebGPU provider with the same feeds,
 * and the error measure the tests state their tolerances in.
 *
 * Gating: without an adapter the parity tests skip with the reason printed, unless
 * `LORA_REQUIRE_WEBGPU=1` (CI, which installs Mesa lavapipe), where a test fails instead.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Graph } from '@lora/engine';
import { type HostTensor, writeModel } from '@lora/engine';
import { describe, expect, it } from 'vitest';
import { Session } from '../session.ts';
import { probeWebGpuAdapters, type WebGpuAdapter } from '../webgpu-adapters.ts';

/** Hooks of these tests build graphs and compile shaders on a software GPU: give them the tests' limit. */
export const HOOK_TIMEOUT = 120_000;

const probe = await probeWebGpuAdapters();

/** The adapter onnxruntime's WebGPU provider takes (its high-performance choice), if any. */
export const adapter: WebGpuAdapter | undefined =
  probe.adapters.find((a) => a.usedByOnnxRuntime) ?? probe.adapters[0];

const problem = probe.problem ?? 'no WebGPU adapter';
const required = process.env['LORA_REQUIRE_WEBGPU'] === '1';

/**
 * `describe` that runs only where there is a WebGPU adapter, after a test that fails when CI asks
 * for WebGPU (`LORA_REQUIRE_WEBGPU=1`) and there is none. Says once per file which adapter the
 * tests run on, or why they skip.
 */
export function describeOnWebGpu(name: string, body: () => void): void {
  if (adapter) {
    console.log(
      `WebGPU parity (${name}) on ${adapter.name} [${adapter.vendor}, ${adapter.type === 'cpu' ? 'software' : 'hardware'} adapter, shader-f16 ${adapter.fp16 ? 'yes' : 'no'}]`,
    );
  } else {
    console.warn(
      `WebGPU parity (${name}) skipped: ${problem}` +
        (required ? ' (LORA_REQUIRE_WEBGPU=1: a failure)' : ' (LORA_REQUIRE_WEBGPU=1 makes this a failure)'),
    );
  }
  describe.runIf(required)('WebGPU is required here (LORA_REQUIRE_WEBGPU=1)', () => {
    it('has a WebGPU adapter', () => {
      expect(adapter, `LORA_REQUIRE_WEBGPU=1, but ${problem}`).toBeDefined();
    });
  });
  describe.skipIf(adapter === undefined)(name, body);
}

/**
 * max |actual − expected| / max |expected| over a whole tensor: a relative error that stays
 * defined where single values are near zero (the measure the golden tests use).
 */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length)
    throw new Error(`${actual.length} values, expected ${expected.length}`);
  let [diff, scale] = [0, 0];
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  if (!Number.isFinite(diff)) return Number.POSITIVE_INFINITY;
  return scale === 0 ? diff : diff / scale;
}

/** Float values of an output (float32 or float64) as a plain array. */
export function floats(tensor: HostTensor | undefined): Float32Array | Float64Array {
  if (!tensor) throw new Error('missing output');
  if (tensor.dtype !== 'float32' && tensor.dtype !== 'float64')
    throw new Error(`output is ${tensor.dtype}, expected float32`);
  return tensor.data as Float32Array | Float64Array;
}

export interface Compared {
  cpu: Record<string, HostTensor>;
  webgpu: Record<string, HostTensor>;
  /** The relative error of every float output of the WebGPU run against the CPU run, by name. */
  errors: Map<string, number>;
  /** The largest of `errors`, and the output it belongs to. */
  worst: { name: string; error: number };
  /** Seconds: the first WebGPU run (shader compilation) and the CPU run. */
  seconds: { webgpuFirst: number; cpu: number };
}

export interface CompareOptions {
  /** The graph to run on the CPU, when it differs from the WebGPU one (fp32 reference of an fp16 graph). */
  cpuGraph?: Graph;
  /** onnxruntime's graph optimisation on both; default `all`, as training runs. */
  optimization?: 'basic' | 'all';
}

/**
 * Writes `graph` into a temporary folder, runs it once with `feeds` on the CPU provider (or
 * `options.cpuGraph` there) and once on the WebGPU provider, and compares every float output.
 */
export async function compareOnDevices(
  graph: Graph,
  feeds: Readonly<Record<string, HostTensor>>,
  options: CompareOptions = {},
): Promise<Compared> {
  const folder = await mkdtemp(join(tmpdir(), 'webgpu-parity-'));
  try {
    const optimization = options.optimization ?? 'all';
    // The fixtures are small: copy their weights where a hard link cannot reach (tmpfs).
    const write = { copyExternalData: true };
    const gpuPath = await writeModel(graph, folder, { ...write, fileName: 'webgpu.onnx' });
    const cpuPath = options.cpuGraph
      ? await writeModel(options.cpuGraph, folder, { ...write, fileName: 'cpu.onnx' })
      : gpuPath;
    let start = performance.now();
    const cpu = await runOnce(cpuPath, 'cpu', optimization, feeds);
    const cpuSeconds = (performance.now() - start) / 1000;
    start = performance.now();
    const webgpu = await runOnce(gpuPath, 'webgpu', optimization, feeds);
    const webgpuFirst = (performance.now() - start) / 1000;
    const errors = new Map<string, number>();
    let worst = { name: '', error: -1 };
    for (const [name, expected] of Object.entries(cpu)) {
      if (expected.dtype !== 'float32') continue;
      const actual = webgpu[name];
      if (!actual) throw new Error(`the WebGPU run has no output '${name}'`);
      const error = relativeError(floats(actual), floats(expected));
      errors.set(name, error);
      if (!(error <= worst.error)) worst = { name, error };
    }
    return { cpu, webgpu, errors, worst, seconds: { webgpuFirst, cpu: cpuSeconds } };
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

async function runOnce(
  path: string,
  device: 'cpu' | 'webgpu',
  optimization: 'basic' | 'all',
  feeds: Readonly<Record<string, HostTensor>>,
): Promise<Record<string, HostTensor>> {
  const session = await Session.create(path, {
    device,
    optimization,
    ...(device === 'cpu' ? { threads: 1 } : {}),
  });
  try {
    return await session.run(feeds);
  } finally {
    await session.dispose();
  }
}

/** One line for the CI log: `WebGPU parity, <what>: max relative difference 1.2e-6 (<where>)`. */
export function report(what: string, error: number, detail = ''): void {
  console.log(
    `WebGPU parity, ${what}: max relative difference ${error.toExponential(2)}${detail ? ` (${detail})` : ''}`,
  );
}
