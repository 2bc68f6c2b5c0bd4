import { readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { SafetensorsError } from './errors.ts';
import type { TensorInfo } from './header.ts';
import { openSafetensors, type SafetensorsFile } from './reader.ts';

/**
 * Largest index file read: real ones are well under 10 MB even for thousands of tensors, and
 * the whole file is parsed in memory.
 */
export const MAX_INDEX_SIZE = 100_000_000;

/** A tensor of a sharded checkpoint: where it is in which shard. */
export interface ShardedTensorInfo extends TensorInfo {
  /** Absolute path of the shard holding the tensor. */
  readonly path: string;
  /** `dataStart` of that shard: the tensor's bytes start at `dataStart + byteOffset` in it. */
  readonly dataStart: number;
}

/** `model.safetensors.index.json` and its shards, seen as one tensor map. */
export interface ShardedSafetensors {
  readonly tensors: ReadonlyMap<string, ShardedTensorInfo>;
  /** The index's `metadata` object (e.g. `total_size`), values as they are in the JSON. */
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly shards: readonly SafetensorsFile[];
  info(name: string): ShardedTensorInfo;
  read(name: string): Promise<Uint8Array>;
  readInto(name: string, target: ArrayBufferView): Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens a sharded checkpoint from its index (`{"metadata": {...}, "weight_map": {tensor: shard}}`),
 * opening every shard lazily (headers only) and checking that each listed tensor is where the
 * index says.
 */
export async function openShardedSafetensors(indexPath: string): Promise<ShardedSafetensors> {
  const { size } = await stat(indexPath);
  if (size > MAX_INDEX_SIZE) {
    throw indexError(indexPath, `is ${size} bytes, over the ${MAX_INDEX_SIZE}-byte limit`);
  }
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (cause) {
    if (!(cause instanceof SyntaxError)) throw cause;
    throw indexError(indexPath, `is not valid JSON: ${cause.message}`);
  }
  if (!isRecord(index) || !isRecord(index['weight_map'])) {
    throw indexError(indexPath, 'has no "weight_map" object mapping tensor names to shard files');
  }
  const metadata = isRecord(index['metadata']) ? index['metadata'] : {};
  const directory = dirname(resolve(indexPath));
  const weightMap = Object.entries(index['weight_map']);
  const shardPaths = new Map<string, string>();
  for (const [name, file] of weightMap) {
    if (typeof file !== 'string') throw indexError(indexPath, `maps ${JSON.stringify(name)} to a non-string`);
    if (!shardPaths.has(file)) shardPaths.set(file, shardPath(indexPath, directory, file));
  }

  const opened = new Map<string, SafetensorsFile>();
  const close = async () => {
    await Promise.all([...opened.values()].map((shard) => shard.close()));
  };
  try {
    for (const [file, path] of shardPaths) opened.set(file, await openSafetensors(path));
    const tensors = new Map<string, ShardedTensorInfo>();
    const shardOf = new Map<string, SafetensorsFile>();
    for (const [name, file] of weightMap) {
      const shard = opened.get(file as string)!;
      shardOf.set(name, shard);
      const info = shard.tensors.get(name);
      if (info === undefined) {
        throw indexError(indexPath, `places ${JSON.stringify(name)} in ${file}, which has no such tensor`);
      }
      tensors.set(name, { ...info, path: shard.path, dataStart: shard.dataStart });
    }
    const info = (name: string): ShardedTensorInfo => {
      const found = tensors.get(name);
      if (found === undefined) {
        throw new SafetensorsError(
          'E_TENSOR_NOT_FOUND',
          `no tensor named ${JSON.stringify(name)} in ${indexPath}`,
        );
      }
      return found;
    };
    return {
      tensors,
      metadata,
      shards: [...opened.values()],
      info,
      read: async (name) => {
        info(name);
        return shardOf.get(name)!.read(name);
      },
      readInto: async (name, target) => {
        info(name);
        await shardOf.get(name)!.readInto(name, target);
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Resolves a shard name, refusing paths that leave the index's directory. */
function shardPath(indexPath: string, directory: string, file: string): string {
  const path = resolve(directory, file);
  const inside = relative(directory, path);
  if (file === '' || isAbsolute(file) || inside.startsWith('..') || isAbsolute(inside)) {
    throw indexError(indexPath, `names shard ${JSON.stringify(file)}, which is outside its directory`);
  }
  return path;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function indexError(indexPath: string, problem: string): SafetensorsError {
  return new SafetensorsError('E_INVALID_INDEX', `${indexPath} ${problem}`);
}
