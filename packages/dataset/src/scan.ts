import type { Dirent } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path';
import { DatasetError } from './errors.ts';
import type { Finding } from './findings.ts';
import { isImagePath } from './image-io.ts';
import { readMetadataCsv } from './metadata-csv.ts';
import { findInvalidUtf8 } from './utf8.ts';

/** Deepest folder nesting scanned; deeper trees are almost certainly a link loop or a mistake. */
export const MAX_SCAN_DEPTH = 32;

/**
 * Largest `N_` repeat count taken. kohya datasets use 1–100; every repeat is one entry of the
 * epoch's sample list in memory, so `1000000000_big` would exhaust it before training starts.
 */
export const MAX_REPEATS = 10_000;

/** Longest sidecar caption read; captions are a few hundred characters, CLIP reads 77 tokens. */
export const MAX_CAPTION_BYTES = 64 * 1024;

export type CaptionSource = 'auto' | 'metadata' | 'sidecar' | 'none';

export interface ScanOptions {
  /** Image folders. Subfolders named `N_name` repeat their images N times (kohya). */
  dirs: readonly string[];
  /** A `metadata.csv` outside the folders; file names in it are relative to its own folder. */
  metadataPath?: string;
  /** Sidecar caption extension (default `.txt`; kohya's own default is `.caption`). */
  captionExtension?: string;
  /**
   * Where captions come from: `auto` (default) = a metadata.csv entry, else the sidecar file;
   * `metadata` / `sidecar` = only that; `none` = no captions (and no missing-caption findings).
   */
  captions?: CaptionSource;
  /**
   * Use images that symbolic links lead to outside the source folder (reported either way);
   * default false: such links are skipped.
   */
  followLinksOutside?: boolean;
}

export interface ScannedImage {
  /** Absolute path. */
  readonly path: string;
  /** The dataset (tag statistics) name: the `N_name` folder's name, else the source folder's. */
  readonly dataset: string;
  readonly repeats: number;
  /** null: no caption found. */
  readonly caption: string | null;
  readonly captionFrom: 'metadata' | 'sidecar' | null;
  /** The file the caption came from (the metadata.csv or the sidecar); null with no caption. */
  readonly captionPath: string | null;
}

export interface ScanResult {
  readonly images: ScannedImage[];
  readonly findings: Finding[];
}

const REPEAT_FOLDER = /^(\d+)_(.+)$/;

/** The repeat count of an `N_name` folder, refused above `MAX_REPEATS`. */
function repeatsOf(count: string, path: string): number {
  const repeats = Number(count);
  if (repeats > MAX_REPEATS) {
    throw new DatasetError(
      'E_LIMIT_EXCEEDED',
      `${path} repeats its images ${count} times, above MAX_REPEATS (${MAX_REPEATS}); kohya datasets use 1–100 (the N of the N_name folder).`,
      { path },
    );
  }
  return repeats;
}

interface Walked {
  images: { path: string; dataset: string; repeats: number }[];
  files: Set<string>;
  metadataFiles: string[];
}

/** The source folder a walk started in (its real path) and whether links may leave it. */
interface Source {
  root: string;
  followLinksOutside: boolean;
}

async function walk(
  source: Source,
  dir: string,
  dataset: string,
  repeats: number,
  depth: number,
  into: Walked,
  findings: Finding[],
  isSourceRoot: boolean,
): Promise<void> {
  if (depth > MAX_SCAN_DEPTH) {
    throw new DatasetError(
      'E_LIMIT_EXCEEDED',
      `${dir} is nested more than MAX_SCAN_DEPTH (${MAX_SCAN_DEPTH}) folders deep; check for a symbolic link loop.`,
      { path: dir },
    );
  }
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    throw new DatasetError('E_NOT_FOUND', `Cannot read the image folder ${dir}; check the path.`, {
      path: dir,
      cause: error,
    });
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue; // .cache, .DS_Store, editor files
    const path = join(dir, entry.name);
    const isDir = entry.isDirectory() || (entry.isSymbolicLink() && (await stat(path)).isDirectory());
    if (entry.isSymbolicLink() && !(await linkAllowed(source, path, isDir, findings))) continue;
    if (isDir) {
      const match = REPEAT_FOLDER.exec(entry.name);
      if (match) {
        await walk(source, path, entry.name, repeatsOf(match[1]!, path), depth + 1, into, findings, false);
      } else {
        if (isSourceRoot) {
          findings.push({
            code: 'no-repeat-prefix',
            severity: 'info',
            path,
            reason: `folder has no "N_" repeat prefix, so its images repeat ${repeats}× as part of "${dataset}" (kohya would ignore it).`,
          });
        }
        await walk(source, path, dataset, repeats, depth + 1, into, findings, false);
      }
      continue;
    }
    into.files.add(path);
    if (entry.name.toLowerCase() === 'metadata.csv') into.metadataFiles.push(path);
    else if (isImagePath(path)) into.images.push({ path, dataset, repeats });
  }
}

/**
 * A symbolic link that leads out of the source folder (a dataset assembled from links into a
 * photo library, or a link to / by mistake) is reported; what it points to is used only with
 * `followLinksOutside`. Whether it is used comes back.
 */
async function linkAllowed(
  { root, followLinksOutside }: Source,
  path: string,
  isDir: boolean,
  findings: Finding[],
): Promise<boolean> {
  const target = await realpath(path).catch(() => undefined);
  if (target === undefined || target === root || target.startsWith(`${root}${sep}`)) return true;
  const what = isDir ? 'the images in it are' : 'it is';
  findings.push({
    code: 'link-outside',
    severity: followLinksOutside ? 'warning' : 'error',
    path,
    reason: followLinksOutside
      ? `is a symbolic link to ${target}, outside the dataset folder ${root}; ${what} used (follow_symlinks: true).`
      : `is a symbolic link to ${target}, outside the dataset folder ${root}; ${what} skipped. Set follow_symlinks: true to train on ${isDir ? 'them' : 'it'}, or copy the files in.`,
  });
  return followLinksOutside;
}

/** The sidecar's text, or why it cannot be used (an oversized file is reported, not fatal). */
async function readSidecar(path: string): Promise<{ text: string } | { problem: string }> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    return { problem: `cannot be read (${(error as Error).message})` };
  }
  return sidecarText(bytes);
}

/** A sidecar's bytes as text, or why they cannot be a caption. */
export function sidecarText(bytes: Buffer): { text: string } | { problem: string } {
  if (bytes.length > MAX_CAPTION_BYTES) {
    return {
      problem: `is ${bytes.length} bytes, above MAX_CAPTION_BYTES (${MAX_CAPTION_BYTES}); is it really a caption?`,
    };
  }
  const problem = findInvalidUtf8(bytes);
  if (problem) {
    return {
      problem: `is not UTF-8 at line ${problem.line}, byte ${problem.offset}; save it as UTF-8 so no character is trained on as "\uFFFD"`,
    };
  }
  return { text: bytes.toString('utf8').replace(/^\uFEFF/, '') };
}

/** Strips a sidecar to its first non-empty line, as kohya does, and says if more was dropped. */
export function firstLine(text: string): { caption: string; lines: number } {
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '');
  return { caption: lines[0] ?? '', lines: lines.length };
}

/**
 * Finds every image under the folders with its caption, repeat count and dataset name, plus the
 * findings that need no decoding: orphan captions, metadata.csv problems, multi-line captions.
 */
export async function scanImageFolders(options: ScanOptions): Promise<ScanResult> {
  if (options.dirs.length === 0) {
    throw new DatasetError('E_INVALID_OPTIONS', 'No image folder given; pass at least one folder in `dirs`.');
  }
  const source = options.captions ?? 'auto';
  const extension = options.captionExtension ?? '.txt';
  if (!extension.startsWith('.')) {
    throw new DatasetError('E_INVALID_OPTIONS', `captionExtension must start with ".", got "${extension}".`);
  }
  const findings: Finding[] = [];
  const walked: Walked = { images: [], files: new Set(), metadataFiles: [] };
  for (const dir of options.dirs) {
    const root = resolve(dir);
    const rootName = basename(root);
    const match = REPEAT_FOLDER.exec(rootName);
    const real = await realpath(root).catch(() => root);
    const source = { root: real, followLinksOutside: options.followLinksOutside ?? false };
    await walk(source, root, rootName, match ? repeatsOf(match[1]!, root) : 1, 0, walked, findings, true);
  }

  // Captions from every metadata.csv, keyed by the absolute image path it names.
  const metadata = new Map<string, { caption: string; csv: string; line: number }>();
  const csvFiles = [...walked.metadataFiles];
  if (options.metadataPath !== undefined) {
    const explicit = resolve(options.metadataPath);
    if (!csvFiles.includes(explicit)) csvFiles.push(explicit);
  }
  if (source === 'auto' || source === 'metadata') {
    for (const csv of csvFiles) {
      const parsed = await readMetadataCsv(csv);
      for (const problem of parsed.problems) {
        findings.push({
          code: 'metadata-problem',
          severity: 'warning',
          path: csv,
          line: problem.line,
          reason: `${problem.message}.`,
        });
      }
      for (const [file, entry] of parsed.captions) {
        const image = resolve(dirname(csv), file);
        const earlier = metadata.get(image);
        if (earlier) {
          findings.push({
            code: 'metadata-problem',
            severity: 'warning',
            path: csv,
            line: entry.line,
            reason: `"${file}" also has a caption in ${earlier.csv}:${earlier.line}; this one wins.`,
          });
        }
        metadata.set(image, { caption: entry.caption, csv, line: entry.line });
      }
    }
  }

  const images: ScannedImage[] = [];
  const usedSidecars = new Set<string>();
  const imagePaths = new Set<string>();
  for (const image of walked.images) {
    imagePaths.add(image.path);
    const sidecarPath = join(dirname(image.path), basename(image.path, extname(image.path)) + extension);
    let caption: string | null = null;
    let captionFrom: ScannedImage['captionFrom'] = null;
    let captionPath: string | null = null;
    const fromCsv = metadata.get(image.path);
    if (fromCsv) {
      caption = fromCsv.caption;
      captionFrom = 'metadata';
      captionPath = fromCsv.csv;
    } else if ((source === 'auto' || source === 'sidecar') && walked.files.has(sidecarPath)) {
      usedSidecars.add(sidecarPath);
      const sidecar = await readSidecar(sidecarPath);
      if ('problem' in sidecar) {
        findings.push({
          code: 'unreadable-caption',
          severity: 'warning',
          path: sidecarPath,
          reason: `caption file ${sidecar.problem}; the image is used without it.`,
        });
      } else {
        const { caption: line, lines } = firstLine(sidecar.text);
        if (lines > 1) {
          findings.push({
            code: 'multi-line-caption',
            severity: 'warning',
            path: sidecarPath,
            reason: `${lines} non-empty lines; only the first is used (kohya does the same). Join them with ", " to keep all.`,
          });
        }
        caption = line;
        captionFrom = 'sidecar';
        captionPath = sidecarPath;
      }
    }
    images.push({ ...image, caption, captionFrom, captionPath });
  }

  if (source === 'auto' || source === 'sidecar') {
    const stems = new Set(walked.images.map((image) => image.path.slice(0, -extname(image.path).length)));
    for (const file of walked.files) {
      if (extname(file) !== extension || usedSidecars.has(file)) continue;
      const hasImage = stems.has(file.slice(0, -extension.length));
      findings.push({
        code: 'orphan-caption',
        severity: hasImage ? 'info' : 'warning',
        path: file,
        reason: hasImage
          ? 'not used: the image also has a metadata.csv caption, which wins.'
          : 'caption file without an image of the same name; rename or remove it.',
      });
    }
  }
  for (const [image, entry] of metadata) {
    if (!imagePaths.has(image)) {
      findings.push({
        code: 'orphan-caption',
        severity: 'warning',
        path: entry.csv,
        line: entry.line,
        reason: `caption for "${relative(dirname(entry.csv), image)}", which is not in the image folders; fix the file name or remove the row.`,
      });
    }
  }
  return { images, findings };
}
