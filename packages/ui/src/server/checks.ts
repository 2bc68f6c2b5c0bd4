import { sep } from 'node:path';
import { DEFAULTS } from '@lora/config';
import { checkDataset, type DatasetSummary } from '@lora/dataset';
import { projectRelative, resolveInside } from './project-path.ts';

/**
 * Images decoded at once by a check: two leave the machine free for the page's thumbnails and a
 * training run, and a check is not in a hurry the way a run's start is.
 */
export const CHECK_CONCURRENCY = 2;

/** A finding of `lora dataset check` as the page shows it, its path relative to the project. */
export interface CheckFinding {
  readonly code: string;
  readonly severity: 'error' | 'warning' | 'info';
  readonly path: string;
  readonly reason: string;
  readonly line?: number;
}

export type CheckState =
  | { state: 'running'; decoded: number; total: number }
  | { state: 'done'; summary: DatasetSummary; findings: CheckFinding[]; finishedAt: string }
  | { state: 'failed'; message: string }
  /** Stopped from the page: `decoded` of `total` images were decoded. */
  | { state: 'cancelled'; decoded: number; total: number };

interface Job {
  state: CheckState;
  readonly controller: AbortController;
  /** Settles once checkDataset has ended (a cancelled one: after its decodes in flight). */
  readonly ended: Promise<void>;
}

/**
 * `lora dataset check` of a dataset (it decodes every image, so it runs in the background): one
 * job per dataset, whose progress and report the page reads while it goes, and which the page
 * may cancel. Checking a dataset again replaces its report.
 */
export class Checks {
  private readonly jobs = new Map<string, Job>();

  constructor(private readonly root: string) {}

  async start(dataset: string): Promise<CheckState> {
    const dir = await resolveInside(this.root, dataset);
    const current = this.jobs.get(dataset);
    if (current?.state.state === 'running') return current.state;
    const progress = { state: 'running' as const, decoded: 0, total: 0 };
    const controller = new AbortController();
    const ended = checkDataset({
      dirs: [dir],
      resolution: DEFAULTS.resolution,
      concurrency: CHECK_CONCURRENCY,
      signal: controller.signal,
      onProgress: (decoded, total) => Object.assign(progress, { decoded, total }),
    }).then(
      (report) => {
        job.state = {
          state: 'done',
          summary: report.summary,
          findings: report.findings.map(({ code, severity, path, reason, line }) => {
            const relative = projectRelative(this.root, path);
            // The page names files relative to the project, once: the library's sentences name them in full.
            const sentence = reason.replaceAll(`${this.root}${sep}`, '');
            return {
              code,
              severity,
              path: relative,
              reason: sentence.startsWith(`${relative}: `) ? sentence.slice(relative.length + 2) : sentence,
              ...(line === undefined ? {} : { line }),
            };
          }),
          finishedAt: new Date().toISOString(),
        };
      },
      (error: unknown) => {
        job.state = controller.signal.aborted
          ? { state: 'cancelled', decoded: progress.decoded, total: progress.total }
          : { state: 'failed', message: (error as Error).message ?? String(error) };
      },
    );
    const job: Job = { state: progress, controller, ended };
    this.jobs.set(dataset, job);
    return job.state;
  }

  /**
   * Stops the dataset's running check and answers once it has stopped decoding (after the images
   * in flight, at most CHECK_CONCURRENCY); a check that has ended is left as it is.
   */
  async cancel(dataset: string): Promise<CheckState | undefined> {
    await resolveInside(this.root, dataset);
    const job = this.jobs.get(dataset);
    if (job === undefined) return undefined;
    job.controller.abort();
    await job.ended;
    return job.state;
  }

  /** The dataset's job, or undefined when it was never checked in this session. */
  async get(dataset: string): Promise<CheckState | undefined> {
    await resolveInside(this.root, dataset);
    return this.jobs.get(dataset)?.state;
  }
}
