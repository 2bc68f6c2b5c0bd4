import { describe, expect, it } from 'vitest';
import { type DeviceProbes, decideDevice, describeDevice } from './device.ts';
import type { WebGpuAdapter } from './webgpu-adapters.ts';

const adapter = (name: string, type: 'gpu' | 'cpu', fp16 = true): WebGpuAdapter => ({
  name,
  vendor: type === 'gpu' ? 'nvidia' : 'mesa',
  architecture: type === 'gpu' ? 'hopper' : 'software',
  type,
  fp16,
  maxBufferSize: 2 ** 32,
  maxStorageBufferBindingSize: 2 ** 31,
  usedByOnnxRuntime: true,
});
const H100 = adapter('NVIDIA H100 80GB HBM3', 'gpu');
const LAVAPIPE = adapter('llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)', 'cpu');

/** A machine: which providers start, which adapter Dawn offers; records what was probed. */
function machine(
  facts: {
    platform?: NodeJS.Platform;
    cuda?: 'missing' | 'starts' | string;
    webgpu?: WebGpuAdapter | 'none';
    webgpuStart?: string;
  } = {},
) {
  const probed: string[] = [];
  const probes: DeviceProbes = {
    platform: facts.platform ?? 'linux',
    cudaInstalled: () => (facts.cuda ?? 'missing') !== 'missing',
    async startFailure(device) {
      probed.push(device);
      if (device === 'cuda') return facts.cuda === 'starts' ? undefined : facts.cuda;
      return facts.webgpuStart;
    },
    async adapters() {
      probed.push('adapters');
      const found = facts.webgpu ?? 'none';
      return found === 'none'
        ? { adapters: [], problem: 'no WebGPU adapter: no Vulkan device' }
        : { adapters: [found] };
    },
  };
  return { probes, probed };
}

describe('device: auto', () => {
  it('takes CUDA when its provider starts, without asking WebGPU', async () => {
    const { probes, probed } = machine({ cuda: 'starts', webgpu: H100 });
    expect(await decideDevice('auto', probes)).toEqual({ device: 'cuda' });
    expect(probed).toEqual(['cuda']);
  });

  it('takes a real GPU adapter when CUDA is missing, and says how to get CUDA', async () => {
    const choice = await decideDevice('auto', machine({ webgpu: H100 }).probes);
    expect(choice).toMatchObject({ device: 'webgpu', adapter: H100 });
    expect(choice.fallback).toMatch(
      /CUDA provider is not installed \(for an NVIDIA GPU, `lora doctor` shows how/,
    );
    expect(describeDevice(choice)).toMatch(/^webgpu \(NVIDIA H100 80GB HBM3\); auto passed over/);
  });

  it('goes on to WebGPU when an installed CUDA provider does not start', async () => {
    const choice = await decideDevice(
      'auto',
      machine({ cuda: 'libcudnn.so.9: cannot open shared object file', webgpu: H100 }).probes,
    );
    expect(choice.device).toBe('webgpu');
    expect(choice.fallback).toMatch(/installed but did not start \(libcudnn\.so\.9/);
  });

  it('skips a software adapter such as lavapipe and trains on the CPU, saying why', async () => {
    const { probes, probed } = machine({ webgpu: LAVAPIPE });
    const choice = await decideDevice('auto', probes);
    expect(choice.device).toBe('cpu');
    expect(choice.fallback).toMatch(/llvmpipe.* is a software \(CPU\) one, slower than the CPU provider/);
    // A CPU adapter is never started: its shader compilation alone takes seconds.
    expect(probed).toEqual(['adapters']);
  });

  it('falls back to the CPU when WebGPU has no adapter, or its provider fails on a real GPU', async () => {
    const none = await decideDevice('auto', machine().probes);
    expect(none).toMatchObject({
      device: 'cpu',
      fallback: expect.stringMatching(/WebGPU found no adapter \(no WebGPU adapter: no Vulkan device\)/),
    });
    const failing = await decideDevice('auto', machine({ webgpu: H100, webgpuStart: 'device lost' }).probes);
    expect(failing).toMatchObject({
      device: 'cpu',
      fallback: expect.stringMatching(/did not start on NVIDIA H100.*device lost/),
    });
  });

  it('does not offer CUDA on macOS, where a Metal GPU is the first choice', async () => {
    const choice = await decideDevice(
      'auto',
      machine({ platform: 'darwin', webgpu: adapter('Apple M3 Max', 'gpu') }).probes,
    );
    expect(choice).toEqual({ device: 'webgpu', adapter: expect.objectContaining({ name: 'Apple M3 Max' }) });
  });
});

describe('an explicit device', () => {
  it('cpu is the CPU, with no probing', async () => {
    const { probes, probed } = machine({ cuda: 'starts', webgpu: H100 });
    expect(await decideDevice('cpu', probes)).toEqual({ device: 'cpu' });
    expect(probed).toEqual([]);
  });

  it('webgpu takes a software adapter too (tests run on lavapipe)', async () => {
    expect(await decideDevice('webgpu', machine({ webgpu: LAVAPIPE }).probes)).toEqual({
      device: 'webgpu',
      adapter: LAVAPIPE,
    });
  });

  it.each([
    [
      'cuda, not installed',
      'cuda',
      {},
      /not installed: .*pnpm approve-builds.*ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild/,
    ],
    [
      'cuda, not starting',
      'cuda',
      { cuda: 'no CUDA-capable device' },
      /did not start \(no CUDA-capable device\).*nvidia-smi/,
    ],
    ['webgpu, no adapter', 'webgpu', {}, /no Vulkan device.*Vulkan \(Linux, Windows\), Metal.*lora doctor/],
    [
      'webgpu, not starting',
      'webgpu',
      { webgpu: H100, webgpuStart: 'device lost' },
      /did not start on NVIDIA H100 .*device lost/,
    ],
  ] as const)('%s is DEVICE_UNAVAILABLE with what to do', async (_, device, facts, message) => {
    await expect(decideDevice(device, machine(facts).probes)).rejects.toMatchObject({
      code: 'E_DEVICE_UNAVAILABLE',
      message: expect.stringMatching(message),
    });
  });
});
