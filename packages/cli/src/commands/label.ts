import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join, relative, resolve } from 'node:path';
import { readMetadataCsv, scanImageFolders } from '@lora/dataset';
import { aboutFile, CliError, EXIT_FAILURE } from '../cli-error.ts';
import { print, printJson } from '../format.ts';
import { DEFAULT_TEMPLATE } from '../label/default-template.ts';
import { metadataCsv, writeFileAtomic } from '../label/metadata-csv.ts';
import { captionFromNames } from '../label/name-caption.ts';
import { applyTemplate, checkTemplate } from '../label/template.ts';
import { displayPath } from '../paths.ts';
import { seeTroubleshooting } from '../troubleshooting.ts';

/** Labellers available in this build; `wd14` and `clip` need the ONNX session of @lora/trainer-ort. */
export const LABEL_MODELS = ['none'] as const;
export const LABEL_FORMATS = ['csv', 'txt'] as const;

export interface LabelOptions {
  input?: string;
  output?: string;
  model?: string;
  template?: string;
  format?: string;
  overwrite?: boolean;
  json?: boolean;
}

export interface LabelReport {
  input: string;
  format: (typeof LABEL_FORMATS)[number];
  /** The metadata.csv written (csv format). */
  output?: string;
  /** Captions written: image path → caption. */
  written: { image: string; caption: string }[];
  /** Images that already had a caption and kept it. */
  kept: number;
  /** Images whose existing caption was replaced (--overwrite). */
  replaced: number;
  skipped: { image: string; reason: string }[];
}

/** Captions listed in the text output; --json lists all. */
const SHOWN_CAPTIONS = 20;

function choice<T extends string>(option: string, value: string, allowed: readonly T[], hint: string): T {
  const found = allowed.find((candidate) => candidate === value);
  if (found === undefined) {
    throw new CliError('E_USAGE', `${option} must be ${allowed.join(' or ')} (got "${value}"); ${hint}`);
  }
  return found;
}

/**
 * Rewriting metadata.csv keeps file names and captions only, so a file with more columns (Hugging
 * Face imagefolder allows any) would lose them; such a file is left alone.
 */
async function refuseExtraColumns(csv: string): Promise<void> {
  const header = (await readFile(csv, 'utf8')).split(/\r?\n/, 1)[0] ?? '';
  const columns = header.split(',').map((name) => name.trim().toLowerCase());
  const isHeader = columns.some((name) => ['file_name', 'filename', 'text', 'caption'].includes(name));
  if (isHeader && columns.length > 2) {
    throw new CliError(
      'E_USAGE',
      `${csv} has columns besides the file name and caption (${header}); lora label rewrites the file with two columns and would drop them. Write to another --output and merge by hand.`,
    );
  }
}

/** `lora label --model none`: captions from folder and file names, through the template. */
export async function labelImages(options: LabelOptions): Promise<LabelReport> {
  if (typeof options.input !== 'string') {
    throw new CliError('E_USAGE', '--input is required: lora label --input data/style_train --model none');
  }
  const input = resolve(options.input);
  choice(
    '--model',
    options.model ?? 'none',
    LABEL_MODELS,
    'none captions images from their folder and file names.',
  );
  const format = choice(
    '--format',
    options.format ?? 'csv',
    LABEL_FORMATS,
    'csv writes metadata.csv, txt one caption file per image.',
  );
  const template = options.template ?? DEFAULT_TEMPLATE;
  checkTemplate(template);
  if (!(await aboutFile(options.input, () => stat(input))).isDirectory()) {
    throw new CliError('E_USAGE', `--input ${options.input} is a file; pass the folder of images.`);
  }
  const output = format === 'csv' ? resolve(options.output ?? join(input, 'metadata.csv')) : undefined;
  if (output !== undefined && existsSync(output)) await refuseExtraColumns(output);

  const scan = await scanImageFolders({
    dirs: [input],
    ...(output !== undefined && existsSync(output) ? { metadataPath: output } : {}),
  });
  if (scan.images.length === 0) {
    throw new CliError(
      'E_EMPTY_DATASET',
      `${options.input} has no images to label (looked for .png, .jpg, .jpeg, .webp, .bmp, .gif, .avif). ${seeTroubleshooting('imagesSkipped')}`,
      EXIT_FAILURE,
    );
  }
  const report: LabelReport = {
    input,
    format,
    ...(output === undefined ? {} : { output }),
    written: [],
    kept: 0,
    replaced: 0,
    skipped: [],
  };
  for (const image of scan.images) {
    const hasCaption = image.caption !== null && image.caption !== '';
    if (hasCaption && !options.overwrite) {
      report.kept++;
      continue;
    }
    if (format === 'txt' && image.captionFrom === 'metadata') {
      report.skipped.push({
        image: image.path,
        reason: 'its metadata.csv caption wins over a .txt file; use --format csv',
      });
      continue;
    }
    const names = captionFromNames(relative(input, image.path), basename(input));
    if (names === '') {
      report.skipped.push({
        image: image.path,
        reason: 'its file and folder names have no words to caption from; caption it by hand',
      });
      continue;
    }
    if (hasCaption) report.replaced++;
    report.written.push({ image: image.path, caption: applyTemplate(template, { caption: names }) });
  }

  if (output !== undefined) {
    const rows = new Map<string, string>();
    if (existsSync(output)) {
      for (const [file, entry] of (await readMetadataCsv(output)).captions) rows.set(file, entry.caption);
    }
    for (const { image, caption } of report.written) {
      rows.set(relative(dirname(output), image).split('\\').join('/'), caption);
    }
    if (report.written.length > 0) await writeFileAtomic(output, metadataCsv(rows));
  } else {
    for (const { image, caption } of report.written) {
      await writeFile(join(dirname(image), `${basename(image, extname(image))}.txt`), `${caption}\n`);
    }
  }
  return report;
}

export function formatLabelReport(report: LabelReport): string {
  const target = report.output === undefined ? '.txt files beside the images' : displayPath(report.output);
  const lines = [
    `wrote ${report.written.length} captions to ${target} (${report.kept} existing kept, ${report.replaced} replaced, ${report.skipped.length} skipped)`,
  ];
  for (const { image, caption } of report.written.slice(0, SHOWN_CAPTIONS))
    lines.push(`  ${displayPath(image)}: ${caption}`);
  if (report.written.length > SHOWN_CAPTIONS)
    lines.push(`  … and ${report.written.length - SHOWN_CAPTIONS} more (--json lists all)`);
  if (report.kept > 0 && report.written.length === 0)
    lines.push('every image already has a caption; --overwrite replaces them');
  if (report.skipped.length > 0) {
    lines.push(
      'skipped:',
      ...report.skipped.map(({ image, reason }) => `  ${displayPath(image)}: ${reason}`),
    );
  }
  return lines.join('\n');
}

export async function label(options: LabelOptions): Promise<number> {
  const report = await labelImages(options);
  if (options.json) printJson(report);
  else print(formatLabelReport(report));
  return 0;
}
