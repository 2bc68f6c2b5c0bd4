import { createHash } from 'node:crypto';
import {
  copyFile,
  link,
  lstat,
  mkdir,
  readFile,
  realpath,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { basename, dirname, extname, join, relative, sep } from 'node:path';
import { EngineError } from '../errors.ts';
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
 * The sidecar of a model whose external data sits on another filesystem: `<model>.data-root`
 * holds the folder its locations are relative to, and `Session.create` loads such a model from
 * its bytes with that folder as onnxruntime's external-data folder
 * (`session.model_external_initializers_file_folder_path`).
 */
export const DATA_ROOT_SUFFIX = '.data-root';

/**
 * Writes `graph` as `<folder>/<fileName>` and makes every external-data file reachable from it.
 *
 * onnxruntime resolves external data relative to the model file and refuses paths that leave its
 * folder, symbolic links included. Files already inside the folder are referenced in place;
 * others are hard-linked next to the model (no bytes copied), under their base name (`-2`, `-3`
 * … when two files share one). A weights file on another filesystem cannot be hard-linked: then
 * every location is written relative to the folder that holds all the weights files, named in
 * the `DATA_ROOT_SUFFIX` sidecar (nothing linked, nothing copied), unless `copyExternalData` asks
 * for copies. Returns the model file's path.
 */
export async function writeModel(
  graph: Graph,
  folder: string,
  options: WriteModelOptions = {},
): Promise<string> {
  await mkdir(folder, { recursive: true });
  const root = await realpath(folder);
  const target = join(root, options.fileName ?? 'model.onnx');
  const sources = new Map<string, string>();
  for (const data of graph.initializers.values()) {
    if (data.kind !== 'external' || sources.has(data.path)) continue;
    const source = await realpath(data.path).catch((error: unknown) => {
      throw new EngineError('E_EXTERNAL_DATA_INVALID', `external data file ${data.path} cannot be read`, {
        cause: error,
      });
    });
    sources.set(data.path, source);
  }
  const device = (await stat(root)).dev;
  const far = await Promise.all([...sources.values()].map(async (s) => (await stat(s)).dev !== device));
  let dataRoot =
    far.some(Boolean) && !options.copyExternalData ? commonFolder([...sources.values()]) : undefined;
  let locations: Map<string, string>;
  try {
    locations =
      dataRoot === undefined
        ? await linkedLocations(sources, root, options)
        : rootLocations(sources, dataRoot);
  } catch (error) {
    // One filesystem by st_dev, yet no hard link (two bind mounts of one disk, a filesystem
    // without hard links): read the weights in place instead.
    if (!EngineError.isInstance(error) || error.code !== 'E_EXTERNAL_DATA_CROSS_DEVICE') throw error;
    dataRoot = commonFolder([...sources.values()]);
    locations = rootLocations(sources, dataRoot);
  }
  for (const [tensor, data] of graph.initializers) {
    if (data.kind !== 'external') continue;
    const { size } = await stat(data.path);
    if (data.offset + data.length > size) {
      throw new EngineError(
        'E_EXTERNAL_DATA_INVALID',
        `initializer '${tensor.name}' reads bytes ${data.offset}–${data.offset + data.length} of ${data.path}, which has ${size}`,
      );
    }
  }
  const bytes = serializeModel(graph, { externalLocation: (path) => locations.get(path)! });
  await writeFile(`${target}.partial`, bytes);
  await rename(`${target}.partial`, target);
  // The sidecar names the model bytes it belongs to: a crash between the two writes leaves a
  // sidecar that Session.create ignores, never one that sends another model's weights elsewhere.
  const sidecar = `${target}${DATA_ROOT_SUFFIX}`;
  if (dataRoot === undefined) await rm(sidecar, { force: true });
  else {
    const content: DataRoot = { folder: dataRoot, model: sha256(bytes) };
    await writeFile(`${sidecar}.partial`, JSON.stringify(content));
    await rename(`${sidecar}.partial`, sidecar);
  }
  return target;
}

/** What a `DATA_ROOT_SUFFIX` sidecar holds. */
export interface DataRoot {
  /** The folder the model's external-data locations are relative to. */
  folder: string;
  /** SHA-256 (hex) of the model file the sidecar belongs to. */
  model: string;
}

export const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Locations relative to `folder`, which holds every weights file. */
function rootLocations(sources: ReadonlyMap<string, string>, folder: string): Map<string, string> {
  return new Map([...sources].map(([path, source]) => [path, relative(folder, source).split(sep).join('/')]));
}

/** Locations inside the model's folder: files there as they are, others hard-linked next to the model. */
async function linkedLocations(
  sources: ReadonlyMap<string, string>,
  root: string,
  options: WriteModelOptions,
): Promise<Map<string, string>> {
  const locations = new Map<string, string>();
  const taken = new Set<string>();
  for (const [path, source] of sources) {
    const inside = relative(root, source);
    if (!inside.startsWith('..') && !inside.startsWith(sep)) {
      locations.set(path, inside.split(sep).join('/'));
      continue;
    }
    const name = uniqueName(basename(source), taken);
    await linkInto(source, join(root, name), options);
    locations.set(path, name);
  }
  return locations;
}

/** The deepest folder that holds every path (`/` at worst on POSIX; none across Windows drives). */
function commonFolder(paths: readonly string[]): string {
  let common = dirname(paths[0]!);
  while (!paths.every((p) => p.startsWith(common.endsWith(sep) ? common : `${common}${sep}`))) {
    const parent = dirname(common);
    if (parent === common) {
      throw new EngineError(
        'E_EXTERNAL_DATA_CROSS_DEVICE',
        `the weights files ${paths.join(', ')} share no folder (different drives) and cannot be hard-linked into the run folder; put them on one drive, or allow copies (copyExternalData: true)`,
      );
    }
    common = parent;
  }
  return common;
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
    throw new EngineError(
      'E_EXTERNAL_DATA_NAME_CLASH',
      `${target} exists and is not ${source}; remove it or write the model to another folder`,
    );
  }
  try {
    await link(source, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (!NO_HARD_LINK.has(code)) throw error;
    if (!options.copyExternalData) {
      throw new EngineError(
        'E_EXTERNAL_DATA_CROSS_DEVICE',
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

/**
 * The weights folder of a model whose weights sit on another filesystem (its sidecar) and the model's bytes, when the sidecar belongs to these very bytes.
 */
export async function readDataRoot(
  modelPath: string,
): Promise<{ folder: string; bytes: Uint8Array } | undefined> {
  const text = await readFile(`${modelPath}${DATA_ROOT_SUFFIX}`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let sidecar: Partial<DataRoot>;
  try {
    sidecar = JSON.parse(text) as Partial<DataRoot>;
  } catch {
    return undefined;
  }
  const bytes = await readFile(modelPath);
  return typeof sidecar.folder === 'string' && sidecar.model === sha256(bytes)
    ? { folder: sidecar.folder, bytes }
    : undefined;
}
