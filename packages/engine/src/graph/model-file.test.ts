import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, valuesOf } from '../testing.ts';
import { Graph } from './graph.ts';
import { DATA_ROOT_SUFFIX, writeModel } from './model-file.ts';
import { add } from './ops/elementwise.ts';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'model-file-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A raw weights file: 16 bytes of header we skip, then float32 values. */
async function weightsFile(path: string, values: number[]): Promise<string> {
  const bytes = new Uint8Array(16 + 4 * values.length);
  new Float32Array(bytes.buffer, 16).set(values);
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, bytes);
  return path;
}

function graphReading(...files: string[]): Graph {
  const graph = new Graph();
  const [first, ...rest] = files.map((path, i) =>
    graph.initializer(`w${i}`, 'float32', [2], { path, offset: 16, length: 8 }),
  );
  graph.output(
    rest.reduce((a, b) => add(a, b), first!),
    'y',
  );
  return graph;
}

async function run(modelPath: string): Promise<number[]> {
  const session = await loadModel(modelPath);
  try {
    return valuesOf((await session.run({}))['y']);
  } finally {
    await session.dispose();
  }
}

describe('writeModel', () => {
  it('hard-links an outside weights file next to the model, which onnxruntime then reads', async () => {
    const weights = await weightsFile(join(root, 'a', 'model.safetensors'), [1, 2]);
    const folder = join(root, 'run-a');
    const modelPath = await writeModel(graphReading(weights), folder);
    expect((await stat(join(folder, 'model.safetensors'))).ino).toBe((await stat(weights)).ino);
    expect(await run(modelPath)).toEqual([1, 2]);
    // Writing again reuses the existing link.
    await writeModel(graphReading(weights), folder);
    expect(await readdir(folder)).toEqual(['model.onnx', 'model.safetensors']);
  });

  it('gives same-named files from different folders distinct names', async () => {
    const a = await weightsFile(join(root, 'unet', 'diffusion_pytorch_model.safetensors'), [1, 2]);
    const b = await weightsFile(join(root, 'vae', 'diffusion_pytorch_model.safetensors'), [10, 20]);
    const folder = join(root, 'run-b');
    expect(await run(await writeModel(graphReading(a, b), folder))).toEqual([11, 22]);
    expect((await readdir(folder)).sort()).toEqual([
      'diffusion_pytorch_model-2.safetensors',
      'diffusion_pytorch_model.safetensors',
      'model.onnx',
    ]);
  });

  it('links the real file behind a symbolic link (as in the Hugging Face cache)', async () => {
    const blob = await weightsFile(join(root, 'blobs', 'abc123'), [3, 4]);
    await mkdir(join(root, 'snapshot'));
    const link = join(root, 'snapshot', 'model.safetensors');
    await symlink(blob, link);
    const folder = join(root, 'run-c');
    expect(await run(await writeModel(graphReading(link), folder))).toEqual([3, 4]);
    expect((await stat(join(folder, 'abc123'))).ino).toBe((await stat(blob)).ino);
  });

  it('references files already inside the folder in place', async () => {
    const folder = join(root, 'run-d');
    const weights = await weightsFile(join(folder, 'weights', 'w.bin'), [5, 6]);
    expect(await run(await writeModel(graphReading(weights), folder))).toEqual([5, 6]);
    expect((await readdir(folder)).sort()).toEqual(['model.onnx', 'weights']);
  });

  it('refuses a different file under a name it needs', async () => {
    const weights = await weightsFile(join(root, 'e', 'w.bin'), [1, 2]);
    const folder = join(root, 'run-e');
    await weightsFile(join(folder, 'w.bin'), [9, 9]);
    await expect(writeModel(graphReading(weights), folder)).rejects.toMatchObject({
      code: 'E_EXTERNAL_DATA_NAME_CLASH',
    });
  });

  it('refuses a symbolic link under a name it needs, even to the right file (onnxruntime would refuse it)', async () => {
    const weights = await weightsFile(join(root, 'j', 'w.bin'), [1, 2]);
    const folder = join(root, 'run-j');
    await mkdir(folder);
    await symlink(weights, join(folder, 'w.bin'));
    await expect(writeModel(graphReading(weights), folder)).rejects.toMatchObject({
      code: 'E_EXTERNAL_DATA_NAME_CLASH',
    });
  });

  it('refuses external data that runs past the end of its file', async () => {
    const weights = await weightsFile(join(root, 'f', 'w.bin'), [1]);
    await expect(writeModel(graphReading(weights), join(root, 'run-f'))).rejects.toMatchObject({
      code: 'E_EXTERNAL_DATA_INVALID',
      message: expect.stringMatching(/reads bytes 16–24 of .*w\.bin, which has 20/),
    });
  });

  it('refuses a missing weights file', async () => {
    await expect(writeModel(graphReading(join(root, 'nope.bin')), join(root, 'run-g'))).rejects.toMatchObject(
      {
        code: 'E_EXTERNAL_DATA_INVALID',
      },
    );
  });

  // /dev/shm is a tmpfs on Linux: another filesystem than the temp folder, so link() fails with EXDEV.
  const otherFs = existsSync('/dev/shm') && process.platform === 'linux';
  describe.runIf(otherFs)('across filesystems', () => {
    let shm: string;
    beforeAll(async () => {
      shm = await mkdtemp('/dev/shm/model-file-');
    });
    afterAll(async () => {
      await rm(shm, { recursive: true, force: true });
    });

    it('reads weights on another filesystem in place: no link, no copy, their folder in the sidecar', async () => {
      const a = await weightsFile(join(root, 'h', 'models', 'a.bin'), [1, 2]);
      const b = await weightsFile(join(root, 'h', 'other', 'b.bin'), [10, 20]);
      const modelPath = await writeModel(graphReading(a, b), join(shm, 'run'));
      expect((await readdir(join(shm, 'run'))).sort()).toEqual([
        'model.onnx',
        `model.onnx${DATA_ROOT_SUFFIX}`,
      ]);
      const sidecar = JSON.parse(await readFile(`${modelPath}${DATA_ROOT_SUFFIX}`, 'utf8'));
      expect(sidecar).toEqual({
        folder: await realpath(join(root, 'h')),
        model: expect.stringMatching(/^[0-9a-f]{64}$/),
      });
      // From another working directory too: the sidecar, not the cwd, says where the weights are.
      const cwd = process.cwd();
      process.chdir(tmpdir());
      try {
        expect(await run(modelPath)).toEqual([11, 22]);
      } finally {
        process.chdir(cwd);
      }
      // A sidecar that belongs to other model bytes (a crash between the two writes) is not used.
      await writeFile(
        `${modelPath}${DATA_ROOT_SUFFIX}`,
        JSON.stringify({ ...sidecar, model: '0'.repeat(64) }),
      );
      await expect(run(modelPath)).rejects.toThrow(/External data path/);
      // Written again with the weights beside it, the model drops the sidecar.
      const near = await weightsFile(join(shm, 'run', 'c.bin'), [3, 4]);
      expect(await run(await writeModel(graphReading(near), join(shm, 'run')))).toEqual([3, 4]);
      expect(existsSync(`${modelPath}${DATA_ROOT_SUFFIX}`)).toBe(false);
    });

    it('copies when asked, and says so', async () => {
      const weights = await weightsFile(join(root, 'i', 'w.bin'), [7, 8]);
      const notices: string[] = [];
      const modelPath = await writeModel(graphReading(weights), join(shm, 'run-copy'), {
        copyExternalData: true,
        onNotice: (m) => notices.push(m),
      });
      expect(notices).toEqual([expect.stringMatching(/^copying .*w\.bin .*EXDEV/)]);
      expect(await run(modelPath)).toEqual([7, 8]);
    });
  });
});
