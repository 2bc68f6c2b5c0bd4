import { posix, sep } from 'node:path';
import { writeFileAtomically } from './atomic.ts';
import { readCsvRecords } from './csv.ts';
import { DatasetError } from './errors.ts';

const FILE_COLUMNS = ['file_name', 'filename'];
const CAPTION_COLUMNS = ['text', 'caption'];

export interface MetadataCaption {
  readonly caption: string;
  readonly line: number;
  /** Values of the columns besides the file and caption, by column name (empty when none). */
  readonly extra: Readonly<Record<string, string>>;
}

export interface MetadataProblem {
  readonly line: number;
  readonly message: string;
}

export interface MetadataCsv {
  /** Captions by file path relative to the CSV's folder, with '/' separators. */
  readonly captions: Map<string, MetadataCaption>;
  readonly problems: MetadataProblem[];
  /** Names of the columns besides the file and caption, in file order (none when headerless). */
  readonly extraColumns: string[];
}

/** 'a\\b/./c.png' → 'a/b/c.png': the same key however the CSV spells the path. */
export function normalizeRelativePath(file: string): string {
  return posix.normalize(file.trim().split(sep).join('/').replaceAll('\\', '/')).replace(/^\.\//, '');
}

/**
 * Names for the extra columns of a header: as written, except that an empty or repeated name
 * becomes `column_N` (N the 1-based column), so that every value has a key and survives a rewrite.
 */
function extraColumnNames(header: readonly string[], skip: readonly number[]): Map<number, string> {
  const names = new Map<number, string>();
  const taken = new Set<string>();
  for (const [index, raw] of header.entries()) {
    if (skip.includes(index)) continue;
    const trimmed = raw.trim();
    const name = trimmed === '' || taken.has(trimmed) ? `column_${index + 1}` : trimmed;
    taken.add(name);
    names.set(index, name);
  }
  return names;
}

/**
 * Reads `metadata.csv` the way Hugging Face `imagefolder` lays it out (`file_name,text`; also
 * `filename` and `caption`, in any column order, any case, with any other columns, which are
 * kept in `extra`) or headerless `file,caption`. In the headerless form an unquoted caption with
 * commas keeps everything after the first comma.
 */
export async function readMetadataCsv(path: string): Promise<MetadataCsv> {
  const captions = new Map<string, MetadataCaption>();
  const problems: MetadataProblem[] = [];
  let fileColumn = 0;
  let captionColumn = -1; // -1: headerless, caption = all fields after the file
  let extraColumns = new Map<number, string>();
  let first = true;
  for await (const { fields, line } of readCsvRecords(path)) {
    if (first) {
      first = false;
      const names = fields.map((field) => field.trim().toLowerCase());
      const file = names.findIndex((name) => FILE_COLUMNS.includes(name));
      const caption = names.findIndex((name) => CAPTION_COLUMNS.includes(name));
      if (file >= 0 && caption >= 0) {
        fileColumn = file;
        captionColumn = caption;
        extraColumns = extraColumnNames(fields, [file, caption]);
        continue;
      }
      if (file >= 0 || caption >= 0) {
        throw new DatasetError(
          'E_INVALID_CSV',
          `${path}:${line}: the header needs a file column (file_name or filename) and a caption column (text or caption); found ${fields.map((field) => JSON.stringify(field)).join(', ')}.`,
          { path, line },
        );
      }
    }
    const file = fields[fileColumn]?.trim() ?? '';
    if (file === '') {
      problems.push({ line, message: 'the file name is empty' });
      continue;
    }
    let caption: string | undefined;
    if (captionColumn >= 0) {
      caption = fields[captionColumn];
    } else if (fields.length >= 2) {
      caption = fields.slice(1).join(',');
    }
    if (caption === undefined) {
      problems.push({ line, message: `no caption field for "${file}"` });
      continue;
    }
    const key = normalizeRelativePath(file);
    const earlier = captions.get(key);
    if (earlier) {
      problems.push({
        line,
        message: `"${file}" is listed again (first on line ${earlier.line}); this line wins`,
      });
    }
    const extra: Record<string, string> = {};
    for (const [index, name] of extraColumns) extra[name] = fields[index] ?? '';
    captions.set(key, { caption: caption.trim(), line, extra });
  }
  return { captions, problems, extraColumns: [...extraColumns.values()] };
}

export interface MetadataRow {
  /** The image path relative to the CSV's folder, with '/' separators. */
  readonly file: string;
  readonly caption: string;
  /** Other columns' values by name; a column missing from a row is written empty. */
  readonly extra?: Readonly<Record<string, string>>;
}

/** RFC 4180: quoted when it holds a comma, quote or line break, or would lose edge spaces. */
export function csvField(value: string): string {
  return /[",\r\n]|^\s|\s$/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/**
 * `metadata.csv` text in Hugging Face imagefolder's form: a `file_name,text` header, then the
 * extra columns in the order they first appear in `rows`.
 */
export function formatMetadataCsv(rows: Iterable<MetadataRow>): string {
  const list = [...rows];
  const columns = [...new Set(list.flatMap((row) => Object.keys(row.extra ?? {})))];
  const lines = [['file_name', 'text', ...columns].map(csvField).join(',')];
  for (const { file, caption, extra = {} } of list) {
    lines.push([file, caption, ...columns.map((column) => extra[column] ?? '')].map(csvField).join(','));
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Writes `metadata.csv` (see `formatMetadataCsv`) beside the target and renames it over the
 * target, so an interrupted write leaves the old file whole; `readMetadataCsv` reads it back
 * with every caption and column intact.
 */
export async function writeMetadataCsv(path: string, rows: Iterable<MetadataRow>): Promise<void> {
  await writeFileAtomically(path, formatMetadataCsv(rows));
}
