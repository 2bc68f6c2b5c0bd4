import { createReadStream } from 'node:fs';
import { CsvError, parse } from 'csv-parse';
import { DatasetError } from './errors.ts';
import { utf8Checked } from './utf8.ts';

/**
 * Longest CSV field accepted. A missing closing quote makes the parser swallow the rest of the
 * file into one field; this turns that into an error that names the line instead of using memory.
 */
export const MAX_CSV_FIELD_CHARS = 1_000_000;

export interface CsvRecord {
  readonly fields: string[];
  /** The line the record ends on (1-based); the start for all single-line records. */
  readonly line: number;
}

/**
 * Streams the records of a CSV file with csv-parse: RFC 4180 quoting (embedded commas, quotes
 * and newlines), a UTF-8 BOM, CRLF or LF, blank lines skipped. Rows may have different lengths;
 * callers check them with better messages than a generic parser can.
 */
export async function* readCsvRecords(path: string): AsyncGenerator<CsvRecord> {
  const source = createReadStream(path);
  const checked = source.pipe(utf8Checked(path));
  const parser = checked.pipe(
    parse({
      bom: true,
      info: true,
      relax_column_count: true,
      skip_empty_lines: true,
      max_record_size: MAX_CSV_FIELD_CHARS,
    }),
  );
  // `pipe` does not forward errors: an unreadable file would be an unhandled 'error' event that
  // ends the process. Passing it to the parser makes the loop below throw it instead.
  source.on('error', (error) => parser.destroy(error));
  checked.on('error', (error) => parser.destroy(error));
  try {
    for await (const row of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      yield { fields: row.record, line: row.info.lines };
    }
  } catch (error) {
    if (error instanceof CsvError) {
      const line = typeof error['lines'] === 'number' ? error['lines'] : undefined;
      throw new DatasetError(
        'E_INVALID_CSV',
        `${path}${line === undefined ? '' : `:${line}`}: ${error.message}. Quote fields that contain commas, quotes or newlines ("a, b"), and double quotes inside them ("say ""hi""").`,
        { path, ...(line === undefined ? {} : { line }), cause: error },
      );
    }
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new DatasetError('E_NOT_FOUND', `CSV file not found: ${path}; check the path.`, {
        path,
        cause: error,
      });
    }
    if (code === 'EISDIR') {
      throw new DatasetError('E_NOT_FOUND', `${path} is a folder; pass the CSV file inside it.`, {
        path,
        cause: error,
      });
    }
    throw error;
  } finally {
    parser.destroy();
    source.destroy();
  }
}
