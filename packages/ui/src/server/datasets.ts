import type { Dirent } from 'node:fs';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { type CaptionTarget, IMAGE_EXTENSIONS, type ScannedImage, scanImageFolders } from '@lora/dataset';
import { projectRelative } from './project-path.ts';

/** Folder levels searched below the project for datasets (`data/style_train/10_x` is 2 deep). */
export const MAX_DATASET_DEPTH = 3;

/** Folders that hold no datasets: run outputs, base models, dependencies. */
const NOT_DATASETS = new Set(['node_modules', 'output', 'models']);

const REPEAT_FOLDER = /^\d+_./;

/** An image folder as the page lists it. */
export interface DatasetEntry {
  /** Relative to the project, `/` separators; '' is the project folder itself. */
  readonly path: string;
}

const isDataset = (entries: readonly Dirent[]): boolean =>
  entries.some((entry) =>
    entry.isDirectory()
      ? REPEAT_FOLDER.test(entry.name)
      : entry.name.toLowerCase() === 'metadata.csv' ||
        IMAGE_EXTENSIONS.has(extname(entry.name).toLowerCase()),
  );

/**
 * The image folders of a project: a folder that holds images, a `metadata.csv` or kohya `N_name`
 * folders is a dataset (and its subfolders are part of it); others are searched
 * `MAX_DATASET_DEPTH` levels down. Hidden folders, `output`, `models` and `node_modules` are skipped.
 */
export async function findDatasets(root: string): Promise<DatasetEntry[]> {
  const found: DatasetEntry[] = [];
  const visit = async (dir: string, depth: number): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    if (isDataset(entries)) {
      found.push({ path: projectRelative(root, dir) });
      return;
    }
    if (depth >= MAX_DATASET_DEPTH) return;
    const folders = entries.filter(
      (entry) => entry.isDirectory() && !entry.name.startsWith('.') && !NOT_DATASETS.has(entry.name),
    );
    folders.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const folder of folders) await visit(join(dir, folder.name), depth + 1);
  };
  await visit(root, 0);
  return found;
}

/**
 * Where an image's caption is saved: where it came from, else a new row of the `metadata.csv`
 * beside it or the dataset's own (training reads every metadata.csv of the folders, and a row
 * before a sidecar), else a `.txt` sidecar.
 */
export function captionTarget(image: ScannedImage, datasetDir: string): CaptionTarget {
  if (image.captionFrom === 'metadata') return { kind: 'metadata', csv: image.captionPath! };
  if (image.captionFrom === 'sidecar') return { kind: 'sidecar', path: image.captionPath! };
  const csv = [join(dirname(image.path), 'metadata.csv'), join(datasetDir, 'metadata.csv')].find((path) =>
    existsSync(path),
  );
  if (csv !== undefined) return { kind: 'metadata', csv };
  return {
    kind: 'sidecar',
    path: join(dirname(image.path), `${basename(image.path, extname(image.path))}.txt`),
  };
}

/** The images of a dataset with their captions, as `lora train` and `lora dataset check` read them. */
export async function scanDataset(datasetDir: string): Promise<ScannedImage[]> {
  return (await scanImageFolders({ dirs: [datasetDir] })).images;
}
