import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, extname, join, relative, resolve } from 'node:path';
import {
  IMAGE_EXTENSIONS,
  isImagePath,
  type MetadataRow,
  readMetadataCsv,
  scanImageFolders,
  writeMetadataCsv,
} from '@lora/dataset';
import type { ScoredTag } from '@lora/label';
import { aboutFile, CliError, EXIT_FAILURE } from '../cli-error.ts';
import { writeTextAtomically } from '../files.ts';
import { print, printJson } from '../format.ts';
import { DEFAULT_TEMPLATE } from '../label/default-template.ts';
import type { ClipSettings, ModelLabels, Wd14Settings } from '../label/model-labels.ts';
import { captionFromNames } from '../label/name-caption.ts';
import { applyTemplate, checkTemplate, type TemplateValues } from '../label/template.ts';
import { displayPath } from '../paths.ts';
import { seeTroubleshooting } from '../troubleshooting.ts';

/** Labellers: names only, a WD14-style ONNX tagger, or CLIP zero-shot ranking (both through @lora/label). */
export const LABEL_MODELS = ['none', 'wd14', 'clip'] as const;
export const LABEL_FORMATS = ['csv', 'txt'] as const;
export const LABEL_DEVICES = ['auto', 'cpu', 'cuda', 'webgpu'] as const;

export interface LabelOptions {
  /** A folder of images, or one image (what `lora ui` asks for tag suggestions). */
  input?: string;
  output?: string;
  model?: string;
  /** wd14: the tagger's model.onnx; clip: the export folder. */
  modelPath?: string;
  /** wd14: selected_tags.csv. */
  tags?: string;
  threshold?: unknown;
  characterThreshold?: unknown;
  ratings?: boolean;
  /** clip: a vocabulary file instead of the bundled one. */
  vocab?: string;
  topK?: unknown;
  template?: string;
  format?: string;
  overwrite?: boolean;
  /** Propose the captions (the report lists them) and write nothing: `lora ui` reviews them first. */
  dryRun?: boolean;
  json?: boolean;
  /** wd14 / clip: where the model runs (default auto). */
  device?: string;
}

export interface LabelReport {
  input: string;
  model: (typeof LABEL_MODELS)[number];
  format: (typeof LABEL_FORMATS)[number];
  /** The metadata.csv written (csv format). */
  output?: string;
  /** Captions written (with --dry-run: proposed), and wd14 / clip's tags with their roles and scores. */
  written: { image: string; caption: string; tags?: ScoredTag[] }[];
  /** --dry-run: nothing was written. */
  dryRun: boolean;
  /** Images that already had a caption and kept it. */
  kept: number;
  /** Images whose existing caption was replaced (--overwrite). */
  replaced: number;
  skipped: { image: string; reason: string; tags?: ScoredTag[] }[];
  /** txt format: images written a .txt file that a metadata.csv row also captions (it wins in training). */
  inMetadata: number;
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

/** The flags that belong to each model, for "--tags only applies to --model wd14". */
const MODEL_FLAGS = {
  wd14: ['tags', 'threshold', 'characterThreshold', 'ratings'],
  clip: ['vocab', 'topK'],
} as const;

const flagName = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

function numberOption(
  key: string,
  value: unknown,
  integer: boolean,
  [min, max]: [number, number],
): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (
    typeof value === 'boolean' ||
    !Number.isFinite(number) ||
    number < min ||
    number > max ||
    (integer && !Number.isInteger(number))
  ) {
    throw new CliError(
      'E_USAGE',
      `${flagName(key)} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max} (got ${JSON.stringify(value)}).`,
    );
  }
  return number;
}

/** Checks the model flags together and turns them into labeller settings. */
function modelSettings(
  model: (typeof LABEL_MODELS)[number],
  options: LabelOptions,
): Wd14Settings | ClipSettings | undefined {
  for (const [owner, keys] of Object.entries(MODEL_FLAGS)) {
    const stray = keys.find((key) => owner !== model && options[key] !== undefined && options[key] !== false);
    if (stray !== undefined) {
      throw new CliError(
        'E_USAGE',
        `${flagName(stray)} only applies to --model ${owner} (this run uses --model ${model}).`,
      );
    }
  }
  if (model === 'none') {
    const stray = (['modelPath', 'device'] as const).find((key) => options[key] !== undefined);
    if (stray !== undefined) {
      throw new CliError(
        'E_USAGE',
        `${flagName(stray)} needs --model wd14 or --model clip; --model none reads only names.`,
      );
    }
    return undefined;
  }
  const device =
    options.device === undefined
      ? 'auto'
      : choice(
          '--device',
          options.device,
          LABEL_DEVICES,
          'auto takes CUDA, then a GPU through WebGPU, then the CPU (`lora doctor` shows what this machine has).',
        );
  if (model === 'wd14') {
    if (options.modelPath === undefined || options.tags === undefined) {
      throw new CliError(
        'E_USAGE',
        '--model wd14 needs the tagger and its tag list: --model-path <model.onnx> --tags <selected_tags.csv> (both come with WD14 taggers such as SmilingWolf/wd-vit-tagger-v3).',
      );
    }
    const generalThreshold = numberOption('threshold', options.threshold, false, [0, 1]);
    const characterThreshold = numberOption('characterThreshold', options.characterThreshold, false, [0, 1]);
    return {
      model,
      device,
      modelPath: resolve(options.modelPath),
      tagsPath: resolve(options.tags),
      ...(generalThreshold === undefined ? {} : { generalThreshold }),
      ...(characterThreshold === undefined ? {} : { characterThreshold }),
      ratings: options.ratings === true,
    };
  }
  if (options.modelPath === undefined) {
    throw new CliError(
      'E_USAGE',
      '--model clip needs --model-path <folder> holding vision_model.onnx, text_model.onnx and tokenizer.json (a Hugging Face ONNX export of CLIP).',
    );
  }
  const topK = numberOption('topK', options.topK, true, [1, 100]);
  return {
    model,
    device,
    folder: resolve(options.modelPath),
    ...(options.vocab === undefined ? {} : { vocabPath: resolve(options.vocab) }),
    ...(topK === undefined ? {} : { topK }),
  };
}

/** `lora label`: captions from names or a model, through the template, into metadata.csv or .txt files. */
export async function labelImages(options: LabelOptions): Promise<LabelReport> {
  if (typeof options.input !== 'string') {
    throw new CliError('E_USAGE', '--input is required: lora label --input data/style_train --model none');
  }
  const input = resolve(options.input);
  const isFolder = (await aboutFile(options.input, () => stat(input))).isDirectory();
  if (!isFolder && !isImagePath(input)) {
    throw new CliError(
      'E_USAGE',
      `--input ${options.input} is neither a folder nor an image (${[...IMAGE_EXTENSIONS].join(', ')}); pass the folder of images, or one image.`,
    );
  }
  /** The folder labelled, or the folder of the one image labelled. */
  const folder = isFolder ? input : dirname(input);
  const model = choice(
    '--model',
    options.model ?? 'none',
    LABEL_MODELS,
    'none captions images from their folder and file names, wd14 with an ONNX tagger, clip by CLIP zero-shot ranking.',
  );
  const settings = modelSettings(model, options);
  const format = choice(
    '--format',
    options.format ?? 'csv',
    LABEL_FORMATS,
    'csv writes metadata.csv, txt one caption file per image.',
  );
  const template = options.template ?? DEFAULT_TEMPLATE;
  checkTemplate(template);
  const output = format === 'csv' ? resolve(options.output ?? join(folder, 'metadata.csv')) : undefined;

  const scan = await scanImageFolders({
    dirs: [folder],
    ...(output !== undefined && existsSync(output) ? { metadataPath: output } : {}),
  });
  const images = folder === input ? scan.images : scan.images.filter((image) => image.path === input);
  if (images.length === 0) {
    throw new CliError(
      'E_EMPTY_DATASET',
      `${options.input} has no images to label (looked for .png, .jpg, .jpeg, .webp, .bmp, .gif, .avif). ${seeTroubleshooting('imagesSkipped')}`,
      EXIT_FAILURE,
    );
  }
  const report: LabelReport = {
    input,
    model,
    format,
    ...(output === undefined ? {} : { output }),
    written: [],
    kept: 0,
    replaced: 0,
    skipped: [],
    inMetadata: 0,
    dryRun: options.dryRun === true,
  };
  const todo: { path: string; replacing: boolean; inMetadata: boolean }[] = [];
  for (const image of images) {
    // txt format: the caption that counts is the .txt file, whatever a metadata.csv says.
    const hasCaption =
      format === 'txt'
        ? existsSync(captionFileOf(image.path))
        : image.caption !== null && image.caption !== '';
    if (hasCaption && !options.overwrite) report.kept++;
    else {
      const inMetadata = format === 'txt' && image.captionFrom === 'metadata';
      todo.push({ path: image.path, replacing: hasCaption, inMetadata });
    }
  }
  let labels: ModelLabels | undefined;
  if (settings !== undefined && todo.length > 0) {
    const { labelWithModel } = await import('../label/model-labels.ts');
    labels = await labelWithModel(
      settings,
      todo.map(({ path }) => path),
    );
  }
  for (const { path, replacing, inMetadata } of todo) {
    let values: TemplateValues;
    let tags: ScoredTag[] | undefined;
    if (labels === undefined) {
      const names = captionFromNames(relative(folder, path), basename(folder));
      values = { caption: names === '' ? [] : names.split(', ') };
    } else {
      const label = labels.get(path)!;
      if ('error' in label) {
        report.skipped.push({ image: path, reason: label.error });
        continue;
      }
      tags = label.tags;
      values = { caption: label.parts.core, tags: label.parts.plain, mood: label.parts.mood };
    }
    const caption = applyTemplate(template, values);
    if (caption === undefined) {
      report.skipped.push({
        image: path,
        reason:
          labels === undefined
            ? 'its file and folder names have no words to caption from; caption it by hand'
            : 'the model found no content tags for it (lower --threshold, or caption it by hand)',
        ...(tags === undefined || tags.length === 0 ? {} : { tags }),
      });
      continue;
    }
    if (replacing) report.replaced++;
    if (inMetadata) report.inMetadata++;
    report.written.push({ image: path, caption, ...(tags === undefined ? {} : { tags }) });
  }

  if (report.dryRun) return report;
  if (output !== undefined) {
    // Rows for other files and the columns besides the caption are the user's: they stay.
    const rows = new Map<string, MetadataRow>();
    if (existsSync(output)) {
      for (const [file, { caption, extra }] of (await readMetadataCsv(output)).captions) {
        rows.set(file, { file, caption, extra });
      }
    }
    for (const { image, caption } of report.written) {
      const file = relative(dirname(output), image).split('\\').join('/');
      rows.set(file, { ...rows.get(file), file, caption });
    }
    if (report.written.length > 0) await writeMetadataCsv(output, rows.values());
  } else {
    for (const { image, caption } of report.written)
      writeTextAtomically(captionFileOf(image), `${caption}\n`);
  }
  return report;
}

const captionFileOf = (image: string) => join(dirname(image), `${basename(image, extname(image))}.txt`);

export function formatLabelReport(report: LabelReport): string {
  const target = report.output === undefined ? '.txt files beside the images' : displayPath(report.output);
  const lines = [
    `${report.dryRun ? 'would write' : 'wrote'} ${report.written.length} captions to ${target} (${report.kept} existing kept, ${report.replaced} replaced, ${report.skipped.length} skipped)${report.dryRun ? '; --dry-run: nothing was written' : ''}`,
  ];
  for (const { image, caption } of report.written.slice(0, SHOWN_CAPTIONS))
    lines.push(`  ${displayPath(image)}: ${caption}`);
  // One image (`--input <image>`): what the model scored, for picking tags by hand.
  const only = [...report.written, ...report.skipped];
  if (only.length === 1 && only[0]!.tags !== undefined) {
    lines.push(
      '  tags (score, role):',
      ...only[0]!.tags.map(({ text, score, role }) => `    ${score.toFixed(3)}  ${role.padEnd(5)}  ${text}`),
    );
  }
  if (report.written.length > SHOWN_CAPTIONS)
    lines.push(`  … and ${report.written.length - SHOWN_CAPTIONS} more (--json lists all)`);
  if (report.kept > 0 && report.written.length === 0)
    lines.push('every image already has a caption; --overwrite replaces them');
  if (report.inMetadata > 0) {
    const count =
      report.inMetadata === 1 ? '1 of these images has' : `${report.inMetadata} of these images have`;
    lines.push(
      `note: ${count} a caption in metadata.csv too, which training reads before .txt files; remove those rows (or the file) to train on the new captions`,
    );
  }
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
