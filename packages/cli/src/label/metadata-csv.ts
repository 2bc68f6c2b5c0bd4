import { rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** RFC 4180: quoted when it holds a comma, quote or line break, or would lose edge spaces. */
export function csvField(value: string): string {
  return /[",\r\n]|^\s|\s$/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** `metadata.csv` text in Hugging Face imagefolder's form: a `file_name,text` header, then rows. */
export function metadataCsv(rows: Iterable<readonly [file: string, caption: string]>): string {
  const lines = ['file_name,text'];
  for (const [file, caption] of rows) lines.push(`${csvField(file)},${csvField(caption)}`);
  return `${lines.join('\n')}\n`;
}

/** Writes beside the target and renames over it, so an interrupted run leaves the old file whole. */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  await writeFile(temporary, text);
  await rename(temporary, path);
}
