import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { createInterface } from 'node:readline';
import { readCsvRecords } from './csv.ts';
import { DatasetError } from './errors.ts';
import { findInvalidUtf8, invalidUtf8Error, utf8Checked } from './utf8.ts';

/**
 * Largest `.json` array file parsed whole (a JSON array cannot be streamed record by record
 * without a streaming parser). Bigger datasets should be JSONL, which is read line by line.
 */
export const MAX_JSON_ARRAY_BYTES = 512 * 1024 * 1024;

export interface TextRecord {
  readonly record: Record<string, unknown>;
  readonly path: string;
  /** Where the record is, for messages: `file:line` (JSONL, CSV) or `file record #n` (JSON array). */
  readonly where: string;
  readonly line?: number;
}

type FileKind = 'jsonl' | 'json-array' | 'csv';

async function fileKind(path: string): Promise<FileKind> {
  const extension = extname(path).toLowerCase();
  if (extension === '.csv') return 'csv';
  if (extension === '.jsonl' || extension === '.ndjson') return 'jsonl';
  if (extension !== '.json') {
    throw new DatasetError(
      'E_UNKNOWN_FORMAT',
      `${path}: unknown data file type "${extension}"; use .jsonl, .json (an array or JSON lines) or .csv.`,
      { path },
    );
  }
  // .json holds either an array or, as Hugging Face datasets allow, one object per line.
  const handle = await open(path);
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(4096), 0, 4096, 0);
    const head = buffer
      .subarray(0, bytesRead)
      .toString('utf8')
      .replace(/^\uFEFF/, '')
      .trimStart();
    return head.startsWith('[') ? 'json-array' : 'jsonl';
  } finally {
    await handle.close();
  }
}

function asObject(value: unknown, where: string, path: string, line?: number): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DatasetError(
      'E_INVALID_RECORD',
      `${where}: expected a JSON object, got ${JSON.stringify(value)?.slice(0, 80)}.`,
      {
        path,
        ...(line === undefined ? {} : { line }),
      },
    );
  }
  return value as Record<string, unknown>;
}

function parseLine(text: string, where: string, path: string, line: number): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new DatasetError(
      'E_INVALID_RECORD',
      `${where}: not valid JSON (${(error as Error).message}). Each line must be one complete JSON object.`,
      { path, line, cause: error },
    );
  }
}

/**
 * Streams the records of a JSONL, JSON-array or CSV file (CSV: the first row names the
 * fields). Blank JSONL lines are skipped; a line that is not JSON fails with its line number.
 */
export async function* readTextRecords(
  path: string,
  options: {
    /** Called for a JSONL line or array entry that is not a JSON object, which is then skipped (default: throw). */
    onInvalid?: (error: DatasetError) => void;
  } = {},
): AsyncGenerator<TextRecord> {
  const invalid = (error: DatasetError): void => {
    if (!options.onInvalid) throw error;
    options.onInvalid(error);
  };
  try {
    await stat(path);
  } catch (error) {
    throw new DatasetError('E_NOT_FOUND', `Data file not found: ${path}.`, { path, cause: error });
  }
  const kind = await fileKind(path);
  if (kind === 'csv') {
    let header: string[] | undefined;
    for await (const { fields, line } of readCsvRecords(path)) {
      if (!header) {
        header = fields.map((field) => field.trim());
        continue;
      }
      const record: Record<string, unknown> = {};
      for (const [i, name] of header.entries()) if (fields[i] !== undefined) record[name] = fields[i];
      yield { record, path, where: `${path}:${line}`, line };
    }
    return;
  }
  if (kind === 'json-array') {
    const { size } = await stat(path);
    if (size > MAX_JSON_ARRAY_BYTES) {
      throw new DatasetError(
        'E_LIMIT_EXCEEDED',
        `${path} is ${size} bytes, above MAX_JSON_ARRAY_BYTES (${MAX_JSON_ARRAY_BYTES}); convert it to JSONL (one object per line), which is streamed.`,
        { path },
      );
    }
    let parsed: unknown;
    try {
      const bytes = await readFile(path);
      const problem = findInvalidUtf8(bytes);
      if (problem) throw invalidUtf8Error(path, problem);
      parsed = JSON.parse(bytes.toString('utf8').replace(/^\uFEFF/, ''));
    } catch (error) {
      if (DatasetError.isInstance(error)) throw error;
      throw new DatasetError('E_INVALID_RECORD', `${path}: not valid JSON (${(error as Error).message}).`, {
        path,
        cause: error,
      });
    }
    if (!Array.isArray(parsed)) {
      throw new DatasetError('E_INVALID_RECORD', `${path}: expected a JSON array of records.`, { path });
    }
    for (const [index, value] of parsed.entries()) {
      const where = `${path} record #${index + 1}`;
      let record: Record<string, unknown>;
      try {
        record = asObject(value, where, path);
      } catch (error) {
        if (!DatasetError.isInstance(error)) throw error;
        invalid(error);
        continue;
      }
      yield { record, path, where };
    }
    return;
  }
  const source = createReadStream(path);
  const checked = source.pipe(utf8Checked(path));
  source.on('error', (error) => checked.destroy(error));
  const lines = createInterface({ input: checked, crlfDelay: Number.POSITIVE_INFINITY });
  let line = 0;
  try {
    for await (const raw of lines) {
      line++;
      const text = line === 1 ? raw.replace(/^\uFEFF/, '') : raw;
      if (text.trim() === '') continue;
      const where = `${path}:${line}`;
      let record: Record<string, unknown>;
      try {
        record = asObject(parseLine(text, where, path, line), where, path, line);
      } catch (error) {
        if (!DatasetError.isInstance(error)) throw error;
        invalid(error);
        continue;
      }
      yield { record, path, where, line };
    }
  } finally {
    lines.close();
  }
}
