import { DatasetError } from './errors.ts';
import { detectFormat, type TextFormat, toExample } from './text-formats.ts';
import { readTextRecords } from './text-records.ts';

/** Problems listed in full; beyond this only the count grows (a wrong format breaks every line). */
export const MAX_REPORTED_PROBLEMS = 100;

export interface TextProblem {
  /** `file:line` or `file record #n`. */
  readonly where: string;
  readonly line?: number;
  readonly message: string;
}

export interface TextDatasetReport {
  readonly records: number;
  /** Records that are valid training examples. */
  readonly valid: number;
  readonly formats: Partial<Record<TextFormat, number>>;
  /** All invalid records (JSON errors, records that fit no format, missing fields). */
  readonly invalid: number;
  /** The first MAX_REPORTED_PROBLEMS of them. */
  readonly problems: TextProblem[];
}

/**
 * Reads a whole text dataset and reports every record that would stop training, instead of
 * stopping at the first one as building the dataset does.
 */
export async function checkTextDataset(
  path: string,
  format: TextFormat | 'auto' = 'auto',
): Promise<TextDatasetReport> {
  const problems: TextProblem[] = [];
  const formats: Partial<Record<TextFormat, number>> = {};
  let records = 0;
  let valid = 0;
  const report = (error: DatasetError): void => {
    if (problems.length < MAX_REPORTED_PROBLEMS) {
      const where = error.line === undefined ? (error.path ?? path) : `${error.path ?? path}:${error.line}`;
      // The messages start with where they happened for the error that stops training; here the
      // report names the place itself.
      const message = error.message.startsWith(`${where}: `)
        ? error.message.slice(where.length + 2)
        : error.message;
      problems.push({ where, ...(error.line === undefined ? {} : { line: error.line }), message });
    }
  };
  const onInvalid = (error: DatasetError): void => {
    records++;
    report(error);
  };
  for await (const record of readTextRecords(path, { onInvalid })) {
    records++;
    try {
      toExample(record, format);
    } catch (error) {
      if (!DatasetError.isInstance(error)) throw error;
      report(error);
      continue;
    }
    valid++;
    const resolved = format === 'auto' ? detectFormat(record.record)! : format;
    formats[resolved] = (formats[resolved] ?? 0) + 1;
  }
  return { records, valid, formats, invalid: records - valid, problems };
}
