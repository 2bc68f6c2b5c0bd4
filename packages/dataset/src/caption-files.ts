import { readFile } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { type StagedFile, stageFile } from './atomic.ts';
import { DatasetError } from './errors.ts';
import {
  formatMetadataCsv,
  type MetadataRow,
  normalizeRelativePath,
  readMetadataCsv,
} from './metadata-csv.ts';
import { firstLine, MAX_CAPTION_BYTES, sidecarText } from './scan.ts';

/** Where an image's caption is written: a row of a `metadata.csv`, or a sidecar text file. */
export type CaptionTarget = { kind: 'metadata'; csv: string } | { kind: 'sidecar'; path: string };

export interface CaptionEdit {
  /** The image (absolute path). */
  readonly image: string;
  readonly target: CaptionTarget;
  /** The caption the edit started from (null: the image had none); anything else on disk is a conflict. */
  readonly expected: string | null;
  readonly caption: string;
}

/** An image whose caption on disk is no longer the one the edit started from. */
export interface CaptionConflict {
  readonly image: string;
  readonly file: string;
  readonly expected: string | null;
  /** The caption on disk now (null: none). */
  readonly current: string | null;
}

export interface CaptionUpdate {
  /** The files replaced; empty when there were conflicts. */
  readonly written: string[];
  /** Every conflict found; when there is one, nothing is written. */
  readonly conflicts: CaptionConflict[];
}

/**
 * Times `updateCaptions` starts over when a file changes between its reading and its
 * replacement; a file rewritten that often in a few milliseconds is being written by a loop.
 */
export const MAX_SAVE_ATTEMPTS = 3;

const pathOf = (target: CaptionTarget): string => (target.kind === 'metadata' ? target.csv : target.path);

const rowKey = (csv: string, image: string): string => normalizeRelativePath(relative(dirname(csv), image));

async function readOrNull(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new DatasetError('E_NOT_FOUND', `Cannot read ${path} (${(error as Error).message}).`, {
      path,
      cause: error,
    });
  }
}

function checkEdits(edits: readonly CaptionEdit[]): void {
  const images = new Set<string>();
  for (const { image, caption } of edits) {
    if (images.has(image)) {
      throw new DatasetError(
        'E_INVALID_OPTIONS',
        `${image} is edited twice in one update; send one caption.`,
      );
    }
    images.add(image);
    if (/[\r\n]/.test(caption)) {
      throw new DatasetError(
        'E_INVALID_OPTIONS',
        `The caption of ${image} has a line break; a caption is one line (kohya reads only the first line of a sidecar). Join the lines with ", ".`,
      );
    }
    if (Buffer.byteLength(caption) > MAX_CAPTION_BYTES) {
      throw new DatasetError(
        'E_LIMIT_EXCEEDED',
        `The caption of ${image} is longer than MAX_CAPTION_BYTES (${MAX_CAPTION_BYTES}); CLIP reads 77 tokens of it.`,
      );
    }
  }
}

/** The new text of one file, or the conflicts that forbid writing it. */
type Planned = { content: string } | { conflicts: CaptionConflict[] };

async function planCsv(csv: string, bytes: Buffer | null, edits: CaptionEdit[]): Promise<Planned> {
  const parsed = bytes === null ? undefined : await readMetadataCsv(csv);
  const problem = parsed?.problems[0];
  if (problem !== undefined) {
    // Rewriting would drop that row (or the losing copy of a repeated file): the user's data.
    throw new DatasetError(
      'E_INVALID_CSV',
      `${csv}:${problem.line}: ${problem.message}; fix that row first, since saving rewrites the file and would drop it.`,
      { path: csv, line: problem.line },
    );
  }
  const rows = new Map<string, MetadataRow>();
  for (const [file, { caption, extra }] of parsed?.captions ?? []) rows.set(file, { file, caption, extra });
  const conflicts: CaptionConflict[] = [];
  for (const edit of edits) {
    const file = rowKey(csv, edit.image);
    const current = rows.get(file)?.caption ?? null;
    if (current !== edit.expected) {
      conflicts.push({ image: edit.image, file: csv, expected: edit.expected, current });
    }
    rows.set(file, { ...rows.get(file), file, caption: edit.caption });
  }
  return conflicts.length > 0 ? { conflicts } : { content: formatMetadataCsv(rows.values()) };
}

function planSidecar(path: string, bytes: Buffer | null, edit: CaptionEdit): Planned {
  let lines: string[] = [];
  let eol = '\n';
  let current: string | null = null;
  if (bytes !== null) {
    const read = sidecarText(bytes);
    if ('problem' in read) {
      throw new DatasetError(
        'E_INVALID_STATE',
        `${path} ${read.problem}; the caption was not saved, so the file is unchanged.`,
        { path },
      );
    }
    if (read.text.includes('\r\n')) eol = '\r\n';
    lines = read.text.split(/\r?\n/);
    current = firstLine(read.text).caption;
  }
  if (current !== edit.expected) {
    return { conflicts: [{ image: edit.image, file: path, expected: edit.expected, current }] };
  }
  // Only the line kohya reads changes; further lines (notes, alternatives) stay.
  const index = lines.findIndex((line) => line.trim() !== '');
  if (index < 0) return { content: `${edit.caption}${eol}` };
  lines[index] = edit.caption;
  return { content: lines.join(eol) };
}

/**
 * Writes captions into their `metadata.csv` rows or sidecar files, each file atomically, after
 * checking that every caption on disk is still the one its edit started from. Any conflict
 * writes nothing and returns them all, with what the files say now. Other rows, other columns
 * and further sidecar lines are kept. A file that changes while its new version is staged is
 * read again (up to `MAX_SAVE_ATTEMPTS` times), so a change made meanwhile is never overwritten
 * unseen.
 */
export async function updateCaptions(edits: readonly CaptionEdit[]): Promise<CaptionUpdate> {
  checkEdits(edits);
  const byFile = new Map<string, CaptionEdit[]>();
  for (const edit of edits) {
    const path = pathOf(edit.target);
    const other = byFile.get(path)?.[0];
    if (other !== undefined && other.target.kind !== edit.target.kind) {
      throw new DatasetError('E_INVALID_OPTIONS', `${path} is named both as a metadata.csv and a sidecar.`);
    }
    byFile.set(path, [...(byFile.get(path) ?? []), edit]);
  }
  for (let attempt = 0; attempt < MAX_SAVE_ATTEMPTS; attempt += 1) {
    const read = new Map<string, Buffer | null>();
    const contents = new Map<string, string>();
    const conflicts: CaptionConflict[] = [];
    for (const [path, group] of byFile) {
      const bytes = await readOrNull(path);
      read.set(path, bytes);
      const plan =
        group[0]!.target.kind === 'metadata'
          ? await planCsv(path, bytes, group)
          : planSidecar(path, bytes, group[0]!);
      if ('conflicts' in plan) conflicts.push(...plan.conflicts);
      else contents.set(path, plan.content);
    }
    if (conflicts.length > 0) return { written: [], conflicts };
    const staged: StagedFile[] = [];
    try {
      for (const [path, content] of contents) staged.push(await stageFile(path, content));
      if (!(await unchanged(read))) continue;
      while (staged.length > 0) {
        await staged[0]!.commit();
        staged.shift();
      }
    } finally {
      for (const file of staged) await file.discard();
    }
    return { written: [...contents.keys()], conflicts: [] };
  }
  throw new DatasetError(
    'E_INVALID_STATE',
    `${[...byFile.keys()].join(', ')} changed ${MAX_SAVE_ATTEMPTS} times while the captions were being saved; stop the program writing it and save again.`,
  );
}

/** Whether every file still holds the bytes it was planned from. */
async function unchanged(read: Map<string, Buffer | null>): Promise<boolean> {
  for (const [path, bytes] of read) {
    const now = await readOrNull(path);
    if (now === null || bytes === null ? now !== bytes : !now.equals(bytes)) return false;
  }
  return true;
}
