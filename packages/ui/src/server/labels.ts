import { spawn } from 'node:child_process';
import { isImagePath } from '@lora/dataset';
import { UiError } from '../errors.ts';
import { scanDataset } from './datasets.ts';
import { projectRelative, resolveInside } from './project-path.ts';
import { cliError } from './runs.ts';

// Labelling from the page: the CLI's `lora label --dry-run --json` proposes captions and writes
// nothing; the page shows them as a preview, and the ones applied are saved as any caption is.

/** The labellers `lora label` has; wd14 and clip read a model from the project. */
export const LABEL_MODELS = ['none', 'wd14', 'clip'] as const;
export type LabelModel = (typeof LABEL_MODELS)[number];

/** Where wd14 and clip run (`lora label --device`); auto: CUDA, then a GPU through WebGPU, then the CPU. */
export const LABEL_DEVICES = ['auto', 'cpu', 'cuda', 'webgpu'] as const;
export type LabelDevice = (typeof LABEL_DEVICES)[number];

/** Most bytes of `lora label`'s output kept: its JSON report lists every caption (about 100 bytes each) and a model's tags (about 50 bytes each). */
const MAX_LABEL_OUTPUT_BYTES = 64 * 1024 * 1024;

/** The labeller and its files. */
interface LabelModelChoice {
  readonly model: LabelModel;
  /** wd14: the tagger's model.onnx; clip: the folder of the ONNX export. Relative to the project. */
  readonly modelPath?: string;
  /** wd14: selected_tags.csv, relative to the project. */
  readonly tags?: string;
  /** wd14, clip: where the model runs; `lora label`'s default (auto) when absent. */
  readonly device?: LabelDevice;
}

export interface LabelRequest extends LabelModelChoice {
  readonly dataset: string;
  /** `lora label --template`; its default when absent. */
  readonly template?: string;
  /** Propose captions for images that have one too. */
  readonly overwrite: boolean;
}

export type LabelState =
  | { state: 'running'; done?: number; total?: number }
  | {
      state: 'done';
      changes: { image: string; before: string | null; after: string }[];
      skipped: { image: string; reason: string }[];
      kept: number;
    }
  | { state: 'failed'; message: string };

export interface SuggestRequest extends LabelModelChoice {
  /** The image, relative to the project. */
  readonly image: string;
}

/** A tag as `lora label --json` reports it: its caption role and the model's score. */
export interface SuggestedTag {
  readonly text: string;
  readonly role: 'core' | 'mood' | 'plain';
  /** WD14: confidence 0–1; CLIP: cosine similarity. */
  readonly score: number;
}

export interface Suggestions {
  readonly image: string;
  /** Highest score first. */
  readonly tags: SuggestedTag[];
  /** Why `lora label` would not caption the image (it found no content tags, could not read it). */
  readonly note?: string;
}

/** The part of `lora label --json`'s report read here. */
interface LabelReport {
  written: { image: string; caption: string; tags?: SuggestedTag[] }[];
  skipped: { image: string; reason: string; tags?: SuggestedTag[] }[];
  kept: number;
}

/** `lora label`'s own message and code, when it failed. */
function failure(code: number | null, stderr: string): string {
  const error = cliError(stderr);
  return error ? `${error.message} [${error.code}]` : `lora label ended with exit code ${code}.`;
}

/** One `lora label` per dataset at a time; its proposals stay until the next one. */
export class Labels {
  private readonly jobs = new Map<string, LabelState>();
  /** The last suggestion asked for: the next waits for it. */
  private suggesting: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly root: string,
    private readonly cli: string | undefined,
  ) {}

  async start(request: LabelRequest): Promise<LabelState> {
    const dir = await resolveInside(this.root, request.dataset);
    const args = await this.args(dir, request);
    if (request.template) args.push(`--template=${request.template}`);
    if (request.overwrite) args.push('--overwrite');
    if (this.jobs.get(request.dataset)?.state === 'running') return this.jobs.get(request.dataset)!;
    const job: LabelState & { state: 'running' } = { state: 'running' };
    this.jobs.set(request.dataset, job);
    this.run(args, (stderr) => {
      const progress = [...stderr.matchAll(/(\d+)\/(\d+) images/g)].at(-1);
      if (progress) Object.assign(job, { done: Number(progress[1]), total: Number(progress[2]) });
    })
      .then(({ code, stdout, stderr }) => this.finish(dir, code, stdout, stderr))
      .then(
        (state) => this.jobs.set(request.dataset, state),
        (error: unknown) =>
          this.jobs.set(request.dataset, { state: 'failed', message: (error as Error).message }),
      );
    return job;
  }

  /**
   * The labeller's tags for one image, with their scores and roles, best first: `lora label
   * --input <image> --dry-run`, one at a time (each loads the model; two at once only compete).
   */
  suggest(request: SuggestRequest): Promise<Suggestions> {
    const next = this.suggesting.then(async () => {
      const image = await resolveInside(this.root, request.image);
      // A folder would have lora label run over every image in it.
      if (!isImagePath(image)) throw new UiError('E_BAD_REQUEST', `${request.image} is not an image.`);
      const args = await this.args(image, request);
      const { code, stdout, stderr } = await this.run([...args, '--overwrite'], () => {});
      if (code !== 0) throw new UiError('E_LABEL_FAILED', failure(code, stderr), 422);
      const report = JSON.parse(stdout) as LabelReport;
      const entry = report.written[0] ?? report.skipped[0];
      return {
        image: request.image,
        tags: [...(entry?.tags ?? [])].sort((a, b) => b.score - a.score),
        ...(report.skipped[0] ? { note: report.skipped[0].reason } : {}),
      };
    });
    this.suggesting = next.catch(() => {});
    return next;
  }

  /** `lora label`'s arguments for a folder or an image and a model (`--key=value`: a value that starts with `--` stays a value). */
  private async args(input: string, request: LabelModelChoice): Promise<string[]> {
    if (this.cli === undefined) {
      throw new UiError(
        'E_BAD_REQUEST',
        'Labelling runs the lora CLI, which this server was not started by.',
      );
    }
    const args = [this.cli, 'label', `--input=${input}`, `--model=${request.model}`, '--dry-run', '--json'];
    if (request.modelPath) args.push(`--model-path=${await resolveInside(this.root, request.modelPath)}`);
    if (request.tags) args.push(`--tags=${await resolveInside(this.root, request.tags)}`);
    if (request.device && request.model !== 'none') args.push(`--device=${request.device}`);
    return args;
  }

  /** Runs `lora label`, keeping its report (stdout) and the end of its progress and errors (stderr). */
  private run(
    args: string[],
    onProgress: (stderr: string) => void,
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((done, fail) => {
      const child = spawn(process.execPath, args, { cwd: this.root, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => {
        if (stdout.length < MAX_LABEL_OUTPUT_BYTES) stdout += chunk.toString('utf8');
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString('utf8')).slice(-16 * 1024);
        onProgress(stderr);
      });
      child.on('close', (code) => done({ code, stdout, stderr }));
      child.on('error', (error) => fail(new Error(`cannot start lora label (${error.message})`)));
    });
  }

  async get(dataset: string): Promise<LabelState | undefined> {
    await resolveInside(this.root, dataset);
    return this.jobs.get(dataset);
  }

  /** The proposals beside the captions the images have now (what an apply expects to replace). */
  private async finish(
    dir: string,
    code: number | null,
    stdout: string,
    stderr: string,
  ): Promise<LabelState> {
    if (code !== 0) return { state: 'failed', message: failure(code, stderr) };
    if (stdout.length >= MAX_LABEL_OUTPUT_BYTES) {
      return {
        state: 'failed',
        message:
          'lora label proposed more captions than the page can review at once; label the folders one by one.',
      };
    }
    const report = JSON.parse(stdout) as LabelReport;
    const current = new Map((await scanDataset(dir)).map((image) => [image.path, image.caption]));
    return {
      state: 'done',
      changes: report.written
        .map(({ image, caption }) => ({
          image: projectRelative(this.root, image),
          before: current.get(image) ?? null,
          after: caption,
        }))
        .filter((change) => change.before !== change.after),
      skipped: report.skipped.map(({ image, reason }) => ({
        image: projectRelative(this.root, image),
        reason,
      })),
      kept: report.kept,
    };
  }
}
