import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openShardedSafetensors } from './sharded.ts';
import { writeSafetensors } from './writer.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'safetensors-sharded-'));
  await writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), {
    'model.embed.weight': { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
  });
  await writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), {
    'lm_head.weight': { dtype: 'BF16', shape: [1], data: new Uint16Array([0x3f80]) },
    'unlisted.weight': { dtype: 'U8', shape: [1], data: new Uint8Array([5]) },
  });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function index(weightMap: unknown, name = 'model.safetensors.index.json'): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, JSON.stringify({ metadata: { total_size: 10 }, weight_map: weightMap }));
  return path;
}

describe('openShardedSafetensors', () => {
  it('reads the weight_map tensors from their shards as one map', async () => {
    const checkpoint = await openShardedSafetensors(
      await index({
        'model.embed.weight': 'model-00001-of-00002.safetensors',
        'lm_head.weight': 'model-00002-of-00002.safetensors',
      }),
    );
    try {
      expect([...checkpoint.tensors.keys()]).toEqual(['model.embed.weight', 'lm_head.weight']);
      expect(checkpoint.metadata).toEqual({ total_size: 10 });
      expect(checkpoint.shards).toHaveLength(2);
      const head = checkpoint.info('lm_head.weight');
      expect(head.path).toBe(join(dir, 'model-00002-of-00002.safetensors'));
      expect(head.dataStart).toBe(checkpoint.shards[1]!.dataStart);
      expect([...new Float32Array((await checkpoint.read('model.embed.weight')).buffer)]).toEqual([1, 2]);
      const target = new Uint16Array(1);
      await checkpoint.readInto('lm_head.weight', target);
      expect(target[0]).toBe(0x3f80);
      await expect(checkpoint.read('unlisted.weight')).rejects.toMatchObject({ code: 'E_TENSOR_NOT_FOUND' });
    } finally {
      await checkpoint.close();
    }
  });

  it.each([
    ['a tensor missing from its shard', { 'lm_head.weight': 'model-00001-of-00002.safetensors' }],
    ['a shard outside the directory', { x: '../model-00001-of-00002.safetensors' }],
    ['an absolute shard path', { x: '/etc/passwd' }],
    ['a non-string shard', { x: 3 }],
    ['no weight_map object', ['x']],
  ])('rejects %s', async (_, weightMap) => {
    await expect(openShardedSafetensors(await index(weightMap, 'bad.index.json'))).rejects.toMatchObject({
      code: 'E_INVALID_INDEX',
    });
  });

  it('rejects an index that is not JSON', async () => {
    const path = join(dir, 'broken.index.json');
    await writeFile(path, '{"weight_map":');
    await expect(openShardedSafetensors(path)).rejects.toMatchObject({ code: 'E_INVALID_INDEX' });
  });
});
