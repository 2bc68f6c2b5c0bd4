import { posix, sep } from 'node:path';
import { readCsvRecords } from './csv.ts';
import { DatasetError } from './errors.ts';

const FILE_COLUMNS = ['file_name', 'filename'];
const CAPTION_COLUMNS = ['text', 'caption'];

export interface MetadataCaption {
  readonly caption: string;
  readonly line: number;
}

export interface MetadataProblem {
  readonly line: number;
  readonly message: string;
}

export interface MetadataCsv {
  /** Captions by file path relative to the CSV's folder, with '/' separators. */
  readonly captions: Map<string, MetadataCaption>;
  readonly problems: MetadataProblem[];
}

/** 'a\\b/./c.png' → 'a/b/c.png': the same key however the CSV spells the path. */
export function normalizeRelativePath(file: string): string {
  return posix.normalize(file.trim().split(sep).join('/').replaceAll('\\', '/')).replace(/^\.\//, '');
}

/**
 * Reads `metadata.csv` the way Hugging Face `imagefolder` lays it out (`file_name,text`; also
 * `filename` and `caption`, in any column order, any case) or headerless `file,caption`. In the
 * headerless form an unquoted caption with commas keeps everything after the first comma.
 */
export async function readMetadataCsv(path: string): Promise<MetadataCsv> {
  const captions = new Map<string, MetadataCaption>();
  const problems: MetadataProblem[] = [];
  let fileColumn = 0;
  let captionColumn = -1; // -1: headerless, caption = all fields after the file
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
        continue;
      }
      if (file >= 0 || caption >= 0) {
        throw new DatasetError(
          'INVALID_CSV',
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
    captions.set(key, { caption: caption.trim(), line });
  }
  return { captions, problems };
}
