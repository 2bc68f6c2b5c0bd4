import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { configTemplate, SCHEMA_FILE, toJSONSchema } from '@lora/config';
import { CliError } from '../cli-error.ts';
import { refuseExisting } from '../files.ts';
import { print, printJson } from '../format.ts';
import { demoConfigPath, demoFiles, SD_BASES } from './demo-project.ts';

export const TASKS = ['sd', 'llm'] as const;
export type Task = (typeof TASKS)[number];

export interface InitOptions {
  task?: string;
  /** Also write the demo: a tiny random model (LLaMA; SD with task sd), its data and a config that trains on them. */
  demo?: boolean;
  /** With task sd and demo: the tiny model's family, sd1 (default), sd2 or sdxl. */
  base?: string;
  overwrite?: boolean;
  json?: boolean;
}

export interface InitReport {
  folder: string;
  task: Task;
  config: string;
  /** Folders and files created (relative to `folder`); existing ones are not listed. */
  created: string[];
  /** What to do next, in order. */
  next: string[];
}

/** Configs and captions belong in git; base models and runs are large and can be made again. */
export const GITIGNORE_LINES = ['/models/', '/output/', '.cache/'];
const GITIGNORE_HEADER =
  '# lora: configs/ and data/**/metadata.csv are meant for version control;\n# base models, training runs and the latent caches beside the images are large and reproducible, so they are not.';

/** The part of the config name each task's template is about (its data and output folders). */
const SUBJECT: Record<Task, string> = { sd: 'style', llm: 'llm' };

/** `neon` → `neon_style`; a name that already says its subject keeps it once (`my_style`). */
function configName(project: string, task: Task): string {
  const subject = SUBJECT[task];
  return project === subject || project.endsWith(`_${subject}`) ? project : `${project}_${subject}`;
}

/** A folder name as a config name part: `My LoRA-Project` → `my_lora_project`. */
export function projectName(folder: string): string {
  const name = basename(resolve(folder))
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return name === '' ? 'lora' : name;
}

/** Paths a template expects, in the project folder: the folders to create for it. */
function dataFolders(task: Task): string[] {
  return task === 'sd' ? ['data/style_train', 'models'] : ['data', 'models'];
}

export async function initProject(folder: string, options: InitOptions): Promise<InitReport> {
  const task = TASKS.find((name) => name === (options.task ?? (options.demo ? 'llm' : 'sd')));
  if (task === undefined) {
    throw new CliError(
      'E_USAGE',
      `--task must be sd or llm (got "${options.task}"): sd for images, llm for text.`,
    );
  }
  const base = SD_BASES.find((name) => name === (options.base ?? 'sd1'));
  if (base === undefined || (options.base !== undefined && !(options.demo && task === 'sd'))) {
    throw new CliError(
      'E_USAGE',
      options.base !== undefined && base !== undefined
        ? '--base picks the SD demo model: use it with --task sd --demo'
        : `--base must be ${SD_BASES.join(', ')} (got "${options.base}"): the architecture of the SD demo's tiny model.`,
    );
  }
  const root = resolve(folder);
  const project = projectName(root);
  const configPath = join(
    root,
    options.demo ? demoConfigPath(project) : join('configs', `${configName(project, task)}_v1.yaml`),
  );
  const files = options.demo
    ? await demoFiles(project, task, base)
    : new Map([
        [
          relative(root, configPath),
          // The config lives in configs/, one folder below the project its paths start from.
          new TextEncoder().encode(configTemplate(task, { projectFolder: '..' })),
        ],
      ]);
  // The config's JSON Schema beside it, where its first line points editors (offline, and the
  // schema of this very CLI).
  files.set(
    join('configs', SCHEMA_FILE),
    new TextEncoder().encode(`${JSON.stringify(toJSONSchema(), null, 2)}\n`),
  );
  // Files that already hold exactly what init would write are left alone, so a demo checked into
  // git (examples/quickstart) can be completed by running init on it again.
  const current = new Map<string, 'missing' | 'same' | 'different'>();
  for (const [path, bytes] of files) current.set(path, await compareFile(join(root, path), bytes));
  refuseExisting(
    [...current].filter(([, state]) => state === 'different').map(([path]) => join(root, path)),
    options.overwrite,
  );

  const created: string[] = [];
  for (const dir of ['configs', ...dataFolders(task)]) {
    if (!existsSync(join(root, dir))) created.push(`${dir}/`);
    await mkdir(join(root, dir), { recursive: true });
  }
  for (const [path, bytes] of files) {
    if (current.get(path) === 'same') continue;
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), bytes);
    created.push(path);
  }

  const gitignore = join(root, '.gitignore');
  const existing = existsSync(gitignore) ? (await readFile(gitignore, 'utf8')).split(/\r?\n/) : undefined;
  const missing = GITIGNORE_LINES.filter((line) => !existing?.includes(line));
  if (existing === undefined) {
    await writeFile(gitignore, `${GITIGNORE_HEADER}\n${GITIGNORE_LINES.join('\n')}\n`);
    created.push('.gitignore');
  } else if (missing.length > 0) {
    const separator = existing.at(-1) === '' ? '' : '\n';
    await appendFile(gitignore, `${separator}${GITIGNORE_HEADER}\n${missing.join('\n')}\n`);
  }

  const config = relative(process.cwd(), configPath) || configPath;
  const data = relative(process.cwd(), join(root, dataFolders(task)[0]!)) || '.';
  const models = relative(process.cwd(), join(root, 'models')) || '.';
  const next = options.demo
    ? [`lora train --config ${config}`]
    : task === 'sd'
      ? [
          `put the SD 1.5 checkpoint in ${models}/ (the config names sd-v1-5-pruned.safetensors)`,
          `put the training images in ${data}/ and caption them: lora label --input ${data} --model none`,
          `lora dataset check ${config}`,
          `lora train --config ${config}`,
        ]
      : [
          `put the base model folder (config.json, safetensors, tokenizer.json) in ${models}/`,
          `write the examples to ${data}/train.jsonl (alpaca, sharegpt or messages records)`,
          `lora dataset check ${config}`,
          `lora train --config ${config}`,
        ];
  return { folder: root, task, config: configPath, created, next };
}

async function compareFile(path: string, bytes: Uint8Array): Promise<'missing' | 'same' | 'different'> {
  const existing = await readFile(path).catch(() => undefined);
  if (existing === undefined) return 'missing';
  return Buffer.compare(existing, bytes) === 0 ? 'same' : 'different';
}

export async function init(folder: string | undefined, options: InitOptions): Promise<number> {
  const report = await initProject(folder ?? '.', options);
  if (options.json) {
    printJson(report);
  } else {
    print(
      [
        `created in ${report.folder}: ${report.created.join(', ') || 'nothing new'}`,
        'next:',
        ...report.next.map((step, i) => `  ${i + 1}. ${step}`),
      ].join('\n'),
    );
  }
  return 0;
}
