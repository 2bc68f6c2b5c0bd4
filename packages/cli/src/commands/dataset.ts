import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { DEFAULTS, type LlmConfig, type LoraConfig, MAX_CONFIG_BYTES, parseConfig } from '@lora/config';
import {
  checkDataset,
  checkTextDataset,
  type DatasetReport,
  type Finding,
  type TextDatasetReport,
} from '@lora/dataset';
import type { LongCaptions } from '@lora/trainer-ort';
import { aboutFile, CliError, EXIT_FAILURE } from '../cli-error.ts';
import { requireExisting } from '../files.ts';
import { print, printJson } from '../format.ts';
import { displayPath } from '../paths.ts';
import { seeTroubleshooting } from '../troubleshooting.ts';

export interface DatasetCommandOptions {
  json?: boolean;
}

/** Findings listed per severity in the text output; --json lists all. */
const SHOWN_FINDINGS = 50;

const SEVERITY_TITLES = {
  error: 'errors (these files are skipped)',
  warning: 'warnings',
  info: 'notes',
} as const;

/**
 * Reads a config only for its dataset keys. `loadConfig` would also insist that the base model
 * exists, which has nothing to do with whether the data is ready.
 */
async function readDatasetConfig(path: string): Promise<LoraConfig> {
  const { size } = await aboutFile(path, () => stat(path));
  if (size > MAX_CONFIG_BYTES) {
    throw new CliError(
      'E_TOO_LARGE',
      `${path} is ${size} bytes, larger than a config can be (MAX_CONFIG_BYTES, ${MAX_CONFIG_BYTES}); pass a dataset folder or a config file.`,
    );
  }
  return parseConfig(await readFile(path, 'utf8'), resolve(path));
}

const plural = (count: number, one: string, many: string) => `${count} ${count === 1 ? one : many}`;

function findingLine(finding: Finding): string {
  const where = displayPath(finding.path) + (finding.line === undefined ? '' : `:${finding.line}`);
  // Some reasons start with the path themselves; it is already in front.
  const reason = finding.reason.startsWith(`${finding.path}: `)
    ? finding.reason.slice(finding.path.length + 2)
    : finding.reason;
  return `  ${where}: ${reason}`;
}

export function formatImageReport(target: string, report: DatasetReport): string {
  const { summary } = report;
  const lines = [
    `${target}: ${summary.imagesFound} images found, ${summary.imagesUsed} used, ${summary.imagesSkipped} skipped; ` +
      `${summary.uncaptioned} without caption, ${summary.duplicates} duplicates; ${summary.samplesPerEpoch} samples per epoch`,
  ];
  for (const dataset of summary.datasets) {
    lines.push(`  ${dataset.name}: ${dataset.images} images × ${dataset.repeats} repeats`);
  }
  for (const severity of ['error', 'warning', 'info'] as const) {
    const findings = report.findings.filter((finding) => finding.severity === severity);
    if (findings.length === 0) continue;
    lines.push('', `${SEVERITY_TITLES[severity]}:`, ...findings.slice(0, SHOWN_FINDINGS).map(findingLine));
    if (findings.length > SHOWN_FINDINGS) {
      lines.push(`  … and ${findings.length - SHOWN_FINDINGS} more (--json lists all)`);
    }
  }
  if (summary.uncaptioned > 0) {
    const count = plural(summary.uncaptioned, 'image has', 'images have');
    lines.push('', `${count} no caption. ${seeTroubleshooting('captionsNotFound')}`);
  }
  if (summary.imagesSkipped > 0) {
    const count = plural(summary.imagesSkipped, 'image is', 'images are');
    lines.push('', `${count} skipped. ${seeTroubleshooting('imagesSkipped')}`);
  }
  return lines.join('\n');
}

export function formatTextReport(file: string, report: TextDatasetReport): string {
  const formats = Object.entries(report.formats)
    .map(([format, count]) => `${format} ${count}`)
    .join(', ');
  const lines = [
    `${displayPath(file)}: ${report.records} records, ${report.valid} valid, ${report.invalid} invalid${formats ? ` (${formats})` : ''}`,
  ];
  for (const problem of report.problems) lines.push(`  ${problem.where}: ${problem.message}`);
  if (report.invalid > report.problems.length)
    lines.push(`  … and ${report.invalid - report.problems.length} more`);
  return lines.join('\n');
}

/** Why nothing is usable, for the error that ends the command. */
function emptyImageDataset(target: string, report: DatasetReport): CliError {
  const { imagesFound } = report.summary;
  const message =
    imagesFound === 0
      ? `${target} has no images (looked for .png, .jpg, .jpeg, .webp, .bmp, .gif, .avif in it and its subfolders); nothing to train on. ${seeTroubleshooting('imagesSkipped')}`
      : `all ${imagesFound} images in ${target} were skipped, so nothing is left to train on; the errors above say why. ${seeTroubleshooting('imagesSkipped')}`;
  return new CliError('E_EMPTY_DATASET', message, EXIT_FAILURE);
}

async function checkImages(
  target: string,
  options: Parameters<typeof checkDataset>[0],
  json: boolean | undefined,
  model?: { base: string; tokenizer: string | undefined },
): Promise<number> {
  const report = await aboutFile(target, () => checkDataset(options));
  const long = model === undefined ? undefined : await longCaptions(model, report);
  if (json)
    printJson({ kind: 'images', target, ...report, ...(long === undefined ? {} : { longCaptions: long }) });
  else
    print(
      [formatImageReport(target, report), ...(long === undefined ? [] : [formatLongCaptions(long)])].join(
        '\n',
      ),
    );
  if (report.summary.imagesUsed === 0) throw emptyImageDataset(target, report);
  // Training would skip the files with errors: a script running the check should stop here.
  return report.findings.some((finding) => finding.severity === 'error') ? EXIT_FAILURE : 0;
}

/**
 * Captions the model's CLIP tokenizer cuts (a config names the model); why they were not counted
 * when the tokenizer cannot be read (the model is not needed to check the rest).
 */
async function longCaptions(
  model: { base: string; tokenizer: string | undefined },
  report: DatasetReport,
): Promise<LongCaptions | { unchecked: string }> {
  try {
    const { ClipTokenizer } = await import('@lora/trainer-ort');
    // 77 positions: the text encoder of every SD 1.x/2.x and SDXL model.
    const tokenizer = await ClipTokenizer.forModel(model.base, 77, model.tokenizer);
    return tokenizer.longCaptions(report.images);
  } catch (error) {
    return { unchecked: (error as Error).message };
  }
}

function formatLongCaptions(long: LongCaptions | { unchecked: string }): string {
  if ('unchecked' in long) return `caption length not checked: ${long.unchecked}`;
  if (long.longest === undefined) return `captions: all within the text encoder's ${long.window} tokens`;
  return `captions: ${plural(long.count, 'caption', 'captions')} longer than the text encoder's ${long.window} tokens, cut there in training (the longest, ${displayPath(long.longest.path)}, has ${long.longest.tokens}); put what matters first or shorten them`;
}

async function checkText(files: readonly string[], format: LlmConfig['dataset_format'], json?: boolean) {
  const reports = [];
  for (const file of files)
    reports.push({ file, ...(await aboutFile(file, () => checkTextDataset(file, format))) });
  if (json) printJson({ kind: 'text', files: reports });
  else print(reports.map((report) => formatTextReport(report.file, report)).join('\n'));
  if (reports.every((report) => report.valid === 0)) {
    throw new CliError(
      'E_EMPTY_DATASET',
      `no valid training example in ${files.map((file) => displayPath(file)).join(', ')}; the problems above say what each record lacks.`,
      EXIT_FAILURE,
    );
  }
  // Training stops at the first invalid record: any is a failure of the check.
  return reports.some((report) => report.invalid > 0) ? EXIT_FAILURE : 0;
}

/** Files `lora dataset check` reads as an LLM text dataset in the format each record shows. */
const TEXT_DATASET_EXTENSIONS = ['.jsonl', '.json'];

/**
 * `lora dataset check <dir|file.jsonl|config>`: the validation report; exit 1 when it found errors
 * (the files training skips or stops at).
 */
export async function datasetCommand(
  action: string,
  target: string,
  options: DatasetCommandOptions,
): Promise<number> {
  if (action !== 'check') {
    throw new CliError(
      'E_USAGE',
      `Unknown dataset action "${action}"; use "lora dataset check <folder|config.yaml>".`,
    );
  }
  const info = await aboutFile(target, () => stat(target));
  // A folder alone is checked against the resolution a config gets by default.
  if (info.isDirectory())
    return checkImages(target, { dirs: [target], resolution: DEFAULTS.resolution }, options.json);
  const extension = extname(target).toLowerCase();
  if (TEXT_DATASET_EXTENSIONS.includes(extension)) return checkText([target], 'auto', options.json);
  if (!['.yaml', '.yml'].includes(extension)) {
    throw new CliError(
      'E_USAGE',
      `${target} is neither a folder of images, a .jsonl/.json text dataset nor a .yaml config; pass one of them, e.g. lora dataset check data/style_train.`,
    );
  }
  const config = await readDatasetConfig(target);
  if (config.task === 'llm') {
    requireExisting(config.train_data);
    return checkText(config.train_data, config.dataset_format, options.json);
  }
  if (config.metadata_path !== undefined && !existsSync(config.metadata_path)) {
    throw new CliError(
      'E_NOT_FOUND',
      `metadata_path ${displayPath(config.metadata_path)} (in ${target}) does not exist. Write it with "lora label --input ${displayPath(config.train_data_dir)} --model none", or remove metadata_path to read .txt captions. ${seeTroubleshooting('captionsNotFound')}`,
      EXIT_FAILURE,
    );
  }
  return checkImages(
    displayPath(config.train_data_dir),
    {
      dirs: [config.train_data_dir],
      ...(config.metadata_path === undefined ? {} : { metadataPath: config.metadata_path }),
      captionExtension: config.caption_extension,
      followLinksOutside: config.follow_symlinks,
      resolution: config.resolution,
    },
    options.json,
    { base: config.base_model, tokenizer: config.tokenizer },
  );
}
