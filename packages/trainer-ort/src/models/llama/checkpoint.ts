/**
 * A Hugging Face LLaMA-family model folder: `config.json` and the weights, one
 * `model.safetensors` or the shards that `model.safetensors.index.json` lists. Only headers are
 * read: the graph reads each weight in place (external data), in its stored dtype. The tokenizer
 * files in the same folder are `@lora/dataset`'s (`TextTokenizer.fromDir`).
 */
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { openShardedSafetensors, type ShardedTensorInfo } from '@lora/safetensors';
import { openWeightsFile } from '../../weights.ts';
import { ModelError } from '../model-error.ts';
import { type LlamaSpec, parseLlamaConfig } from './config.ts';
import { llamaTensorShapes } from './weights.ts';

/** Real `config.json` files are a few KB; a larger one is not a config, so it is refused unparsed. */
export const MAX_CONFIG_BYTES = 1 << 20;

/** Messages list at most this many tensor names, so a wrong checkpoint does not print thousands. */
const MAX_LISTED = 8;

const WEIGHT_DTYPES: ReadonlySet<string> = new Set(['F32', 'F16', 'BF16']);

export interface LlamaCheckpoint {
  /** The model folder, absolute. */
  readonly folder: string;
  readonly spec: LlamaSpec;
  /** Every tensor of the checkpoint: dtype, shape, and where its bytes are (shard, data start, range). */
  readonly tensors: ReadonlyMap<string, ShardedTensorInfo>;
}

/**
 * Reads `config.json` and the safetensors headers of a model folder and checks that the
 * tensors are exactly those the architecture needs, with the shapes the config implies.
 */
export async function openLlamaCheckpoint(folder: string): Promise<LlamaCheckpoint> {
  const root = resolve(folder);
  const spec = parseLlamaConfig(await readConfig(join(root, 'config.json')));
  const tensors = await readHeaders(root);
  checkTensors(spec, tensors, root);
  return { folder: root, spec, tensors };
}

async function readConfig(path: string): Promise<Record<string, unknown>> {
  const size = await stat(path).then(
    (s) => s.size,
    (error: NodeJS.ErrnoException) => {
      throw new ModelError(
        'E_MODEL_FILES',
        error.code === 'ENOTDIR'
          ? `base_model ${join(path, '..')} is a file; base_model must be the model folder, which holds config.json next to the weights`
          : `${path} does not exist; base_model must be the model folder, which holds config.json next to the weights`,
      );
    },
  );
  if (size > MAX_CONFIG_BYTES) {
    throw new ModelError(
      'E_MODEL_CONFIG',
      `${path} is ${size} bytes, over the ${MAX_CONFIG_BYTES}-byte limit for a config`,
    );
  }
  let config: unknown;
  try {
    config = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new ModelError('E_MODEL_CONFIG', `${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ModelError('E_MODEL_CONFIG', `${path} must hold a JSON object`);
  }
  return config as Record<string, unknown>;
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

async function readHeaders(root: string): Promise<Map<string, ShardedTensorInfo>> {
  const index = join(root, 'model.safetensors.index.json');
  if (await exists(index)) {
    const sharded = await openShardedSafetensors(index);
    await sharded.close();
    return new Map(sharded.tensors);
  }
  const single = join(root, 'model.safetensors');
  if (!(await exists(single))) {
    throw new ModelError(
      'E_MODEL_FILES',
      `${root} has neither model.safetensors nor model.safetensors.index.json; PyTorch .bin weights are not read (save the model with safe_serialization=True)`,
    );
  }
  const file = await openWeightsFile(single);
  await file.close();
  return new Map(
    [...file.tensors].map(([name, info]) => [name, { ...info, path: file.path, dataStart: file.dataStart }]),
  );
}

function listed(names: readonly string[]): string {
  const more = names.length - MAX_LISTED;
  return names.slice(0, MAX_LISTED).join(', ') + (more > 0 ? ` and ${more} more` : '');
}

function checkTensors(spec: LlamaSpec, tensors: ReadonlyMap<string, ShardedTensorInfo>, root: string): void {
  const expected = llamaTensorShapes(spec);
  const model = `a ${spec.architecture} with this config.json`;
  const missing = [...expected.keys()].filter((name) => !tensors.has(name));
  if (missing.length > 0) {
    throw new ModelError(
      'E_MODEL_TENSOR',
      `${root}: the weights lack ${missing.length} tensor(s) that ${model} needs: ${listed(missing)}`,
    );
  }
  const leftover = [...tensors.keys()].filter((name) => !expected.has(name));
  if (leftover.length > 0) {
    throw new ModelError(
      'E_MODEL_TENSOR',
      `${root}: ${leftover.length} tensor(s) of the weights are not part of ${model}, so training would ignore them: ${listed(leftover)}; check that config.json belongs to these weights`,
    );
  }
  for (const [name, shape] of expected) {
    const info = tensors.get(name)!;
    if (info.shape.join() !== shape.join()) {
      throw new ModelError(
        'E_MODEL_TENSOR',
        `${root}: tensor ${name} is [${info.shape.join(', ')}] but config.json implies [${shape.join(', ')}]`,
      );
    }
    if (!WEIGHT_DTYPES.has(info.dtype)) {
      throw new ModelError(
        'E_MODEL_TENSOR',
        `${root}: tensor ${name} is ${info.dtype}; weights must be F32, F16 or BF16 (quantised checkpoints are not supported)`,
      );
    }
  }
}
