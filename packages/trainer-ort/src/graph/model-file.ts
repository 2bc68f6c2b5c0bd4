import { copyFile, link, lstat, mkdir, realpath, rename, stat, writeFile } from 'node:fs/promises';
import { basename, extname, join, relative, sep } from 'node:path';
import { TrainerOrtError } from '../errors.ts';
import type { Graph } from './graph.ts';
import { serializeModel } from './onnx.ts';

export interface WriteModelOptions {
  /** Default `model.onnx`. */
  fileName?: string;
  /**
   * Copy a weights file that cannot be hard-linked into the folder (another filesystem, or one
   * without hard links). Off by default: checkpoints are gigabytes, so a copy must be asked for.
   */
  copyExternalData?: boolean;
  /** Told about each copy. */
  onNotice?: (message: string) => void;
}

/**
 * Writes `graph` as `<folder>/<fileName>` and makes every external-data file reachable from it.
 *
 * onnxruntime resolves external data relative to the model file and refuses paths that leave its
 * folder, symbolic links included. Files already inside the folder are referenced in place;
 * others are hard-linked next to the model (no bytes copied), under their base name (`-2`, `-3`
 * … when two files share one). Returns the model file's path.
 */
export async function writeModel(
  graph: Graph,
  folder: string,
  options: WriteModelOptions = {},
): Promise<string> {
  await mkdir(folder, { recursive: true });
  const root = await realpath(folder);
  const locations = new Map<string, string>();
  const taken = new Set<string>();
  for (const data of graph.initializers.values()) {
    if (data.kind !== 'external' || locations.has(data.path)) continue;
    const source = await realpath(data.path).catch((error: unknown) => {
      throw new TrainerOrtError('EXTERNAL_DATA_INVALID', `external data file ${data.path} cannot be read`, {
        cause: error,
      });
    });
    const inside = relative(root, source);
    if (!inside.startsWith('..') && !inside.startsWith(sep)) {
      locations.set(data.path, inside.split(sep).join('/'));
      continue;
    }
    const name = uniqueName(basename(source), taken);
    await linkInto(source, join(root, name), options);
    locations.set(data.path, name);
  }
  for (const [tensor, data] of graph.initializers) {
    if (data.kind !== 'external') continue;
    const { size } = await stat(data.path);
    if (data.offset + data.length > size) {
      throw new TrainerOrtError(
        'EXTERNAL_DATA_INVALID',
        `initializer '${tensor.name}' reads bytes ${data.offset}–${data.offset + data.length} of ${data.path}, which has ${size}`,
      );
    }
  }
  const bytes = serializeModel(graph, { externalLocation: (path) => locations.get(path)! });
  const target = join(root, options.fileName ?? 'model.onnx');
  await writeFile(`${target}.partial`, bytes);
  await rename(`${target}.partial`, target);
  return target;
}

function uniqueName(name: string, taken: Set<string>): string {
  const ext = extname(name);
  let candidate = name;
  for (let i = 2; taken.has(candidate); i++)
    candidate = `${name.slice(0, name.length - ext.length)}-${i}${ext}`;
  taken.add(candidate);
  return candidate;
}

/** Hard links that hard-linking cannot make: another filesystem, or a filesystem without them. */
const NO_HARD_LINK = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK']);

async function linkInto(source: string, target: string, options: WriteModelOptions): Promise<void> {
  // lstat: a symbolic link to the right file is still refused by onnxruntime.
  const existing = await lstat(target).catch(() => undefined);
  if (existing) {
    const wanted = await stat(source);
    if (existing.ino === wanted.ino && existing.dev === wanted.dev) return;
    throw new TrainerOrtError(
      'EXTERNAL_DATA_NAME_CLASH',
      `${target} exists and is not ${source}; remove it or write the model to another folder`,
    );
  }
  try {
    await link(source, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (!NO_HARD_LINK.has(code)) throw error;
    if (!options.copyExternalData) {
      throw new TrainerOrtError(
        'EXTERNAL_DATA_CROSS_DEVICE',
        `cannot hard-link ${source} into ${target} (${code}): onnxruntime only reads external data inside the ` +
          'model folder and refuses symbolic links. Put the output folder on the same filesystem as the model, ' +
          'or allow a full copy of the weights file (copyExternalData: true)',
        { cause: error },
      );
    }
    options.onNotice?.(`copying ${source} into ${target}: it cannot be hard-linked (${code})`);
    await copyFile(source, target);
  }
}
