import { spawn } from 'node:child_process';
import { UiError } from '../errors.ts';
import { scanDataset } from './datasets.ts';
import { projectRelative, resolveInside } from './project-path.ts';
import { cliError } from './runs.ts';

// Labelling from the page: the CLI's `lora label --dry-run --json` proposes captions and writes
// nothing; the page shows them as a preview, and the ones applied are saved as any caption is.

/** The labellers `lora label` has; wd14 and clip read a model from the project. */
export const LABEL_MODELS = ['none', 'wd14', 'clip'] as const;
export type LabelModel = (typeof LABEL_MODELS)[number];

/** Most bytes of `lora label`'s output kept: its JSON report lists every caption (about 100 bytes each). */
const MAX_LABEL_OUTPUT_BYTES = 64 * 1024 * 1024;

export interface LabelRequest {
  readonly dataset: string;
  readonly model: LabelModel;
  /** wd14: the tagger's model.onnx; clip: the folder of the ONNX export. Relative to the project. */
  readonly modelPath?: string;
  /** wd14: selected_tags.csv, relative to the project. */
  readonly tags?: string;
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

/** One `lora label` per dataset at a time; its proposals stay until the next one. */
export class Labels {
  private readonly jobs = new Map<string, LabelState>();

  constructor(
    private readonly root: string,
    private readonly cli: string | undefined,
  ) {}

  async start(request: LabelRequest): Promise<LabelState> {
    if (this.cli === undefined) {
      throw new UiError(
        'E_BAD_REQUEST',
        'Labelling runs the lora CLI, which this server was not started by.',
      );
    }
    const dir = await resolveInside(this.root, request.dataset);
    if (this.jobs.get(request.dataset)?.state === 'running') return this.jobs.get(request.dataset)!;
    // `--key=value`: a value that starts with `--` stays a value.
    const args = [this.cli, 'label', `--input=${dir}`, `--model=${request.model}`, '--dry-run', '--json'];
    if (request.modelPath) args.push(`--model-path=${await resolveInside(this.root, request.modelPath)}`);
    if (request.tags) args.push(`--tags=${await resolveInside(this.root, request.tags)}`);
    if (request.template) args.push(`--template=${request.template}`);
    if (request.overwrite) args.push('--overwrite');
    const job: LabelState & { state: 'running' } = { state: 'running' };
    this.jobs.set(request.dataset, job);
    const child = spawn(process.execPath, args, { cwd: this.root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      if (stdout.length < MAX_LABEL_OUTPUT_BYTES) stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-16 * 1024);
      const progress = [...stderr.matchAll(/(\d+)\/(\d+) images/g)].at(-1);
      if (progress) Object.assign(job, { done: Number(progress[1]), total: Number(progress[2]) });
    });
    child.on('close', (code) => {
      this.finish(dir, code, stdout, stderr).then(
        (state) => this.jobs.set(request.dataset, state),
        (error: unknown) =>
          this.jobs.set(request.dataset, { state: 'failed', message: (error as Error).message }),
      );
    });
    child.on('error', (error) =>
      this.jobs.set(request.dataset, {
        state: 'failed',
        message: `cannot start lora label (${error.message})`,
      }),
    );
    return job;
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
    if (code !== 0) {
      const error = cliError(stderr);
      return {
        state: 'failed',
        message: error ? `${error.message} [${error.code}]` : `lora label ended with exit code ${code}.`,
      };
    }
    if (stdout.length >= MAX_LABEL_OUTPUT_BYTES) {
      return {
        state: 'failed',
        message:
          'lora label proposed more captions than the page can review at once; label the folders one by one.',
      };
    }
    const report = JSON.parse(stdout) as {
      written: { image: string; caption: string }[];
      skipped: { image: string; reason: string }[];
      kept: number;
    };
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
