import { mkdtemp, open, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSafetensors } from './reader.ts';
import { serialize } from './writer.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'safetensors-read-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('openSafetensors', () => {
  it('exposes offsets that locate each tensor in the file', async () => {
    const bytes = serialize(
      {
        w: { dtype: 'F32', shape: [2], data: new Float32Array([1.5, -2]) },
        b: { dtype: 'F16', shape: [3], data: new Uint16Array([1, 2, 3]) },
      },
      { format: 'pt' },
    );
    const path = join(dir, 'small.safetensors');
    await writeFile(path, bytes);
    const file = await openSafetensors(path);
    try {
      expect(file.fileLength).toBe(bytes.length);
      expect(file.dataStart).toBe(8 + file.headerLength);
      expect(file.metadata).toEqual({ format: 'pt' });
      for (const [name, info] of file.tensors) {
        const start = file.dataStart + info.byteOffset;
        expect(await file.read(name)).toEqual(bytes.subarray(start, start + info.byteLength));
      }
      const target = new Float32Array(2);
      await file.readInto('w', target);
      expect([...target]).toEqual([1.5, -2]);
      await expect(file.readInto('w', new Float32Array(3))).rejects.toMatchObject({ code: 'E_BUFFER_SIZE' });
      await expect(file.read('missing')).rejects.toMatchObject({ code: 'E_TENSOR_NOT_FOUND' });
    } finally {
      await file.close();
    }
    await expect(file.read('w')).rejects.toMatchObject({ code: 'E_CLOSED' });
  });

  it('opens a 7 GB file from its header alone and reads one tensor by offset', async () => {
    // A sparse file: the header declares 7 GiB of data that the disk never stores.
    const big = 7 * 2 ** 30;
    const header = `{"big":{"dtype":"U8","shape":[${big}],"data_offsets":[0,${big}]},"tail":{"dtype":"U8","shape":[4],"data_offsets":[${big},${big + 4}]}}`;
    const json = new TextEncoder().encode(header.padEnd(Math.ceil(header.length / 8) * 8));
    const path = join(dir, 'sparse.safetensors');
    const prefix = new Uint8Array(8 + json.length);
    new DataView(prefix.buffer).setBigUint64(0, BigInt(json.length), true);
    prefix.set(json, 8);
    await writeFile(path, prefix);
    await truncate(path, prefix.length + big + 4);
    const handle = await open(path, 'r+');
    await handle.write(new Uint8Array([9, 8, 7, 6]), 0, 4, prefix.length + big);
    await handle.close();

    const started = performance.now();
    const file = await openSafetensors(path);
    const elapsed = performance.now() - started;
    expect(file.tensors.get('big')?.byteLength).toBe(big);
    expect([...(await file.read('tail'))]).toEqual([9, 8, 7, 6]);
    await file.close();
    expect(elapsed).toBeLessThan(500);
  });

  it.each([
    ['a truncated file', (bytes: Uint8Array) => bytes.subarray(0, bytes.length - 1), 'E_INCOMPLETE_BUFFER'],
    ['an empty file', () => new Uint8Array(0), 'E_HEADER_TOO_SMALL'],
    [
      'a file shorter than its header',
      (bytes: Uint8Array) => bytes.subarray(0, 20),
      'E_INVALID_HEADER_LENGTH',
    ],
  ])('rejects %s', async (_, damage, code) => {
    const bytes = serialize({ t: { dtype: 'U8', shape: [4], data: new Uint8Array(4) } });
    const path = join(dir, 'damaged.safetensors');
    await writeFile(path, damage(bytes));
    await expect(openSafetensors(path)).rejects.toMatchObject({ name: 'SafetensorsError', code });
  });

  it('passes I/O errors through unchanged', async () => {
    await expect(openSafetensors(join(dir, 'missing.safetensors'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
