// Calls to the lora ui server. Every URL is relative to the page's /<token>/ address, so the
// session token travels with each request without the script ever handling it.

// The server's own type, erased from the page's bundle: one list of run states.
import type { RunState } from '../server/runs.ts';

export interface ImageEntry {
  path: string;
  dataset: string;
  caption: string | null;
  captionFrom: 'metadata' | 'sidecar' | null;
  captionFile: string | null;
}

export interface Conflict {
  image: string;
  expected: string | null;
  current: string | null;
}

export interface Change {
  image: string;
  /** null: the image had no caption (adding a tag gives it one). */
  before: string | null;
  after: string;
}

/** A bulk tag edit, as the server's `BULK_OPERATIONS` take it. */
export type BulkOperation =
  | { kind: 'rename'; from: string; to: string }
  | { kind: 'add'; tag: string; role: 'core' | 'mood' | 'plain' }
  | { kind: 'remove'; tag: string }
  | { kind: 'promote'; tag: string };

/** A refused request: the server's code and message, and the conflicts of a 409. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly conflicts: Conflict[] = [],
  ) {
    super(message);
  }
}

async function call<T>(path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(
      path,
      body === undefined
        ? {}
        : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) },
    );
  } catch {
    throw new ApiError('E_OFFLINE', 'Cannot reach the lora ui server; is `lora ui` still running?');
  }
  const json = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = json.error ?? { code: 'E_HTTP', message: `The server answered ${response.status}.` };
    throw new ApiError(error.code, error.message, json.conflicts);
  }
  return json as T;
}

export interface ConfigProblem {
  file: string;
  line: number;
  column: number;
  key: string;
  message: string;
}

export type Validation =
  | {
      valid: true;
      task: string;
      outputDir: string;
      runFolder?: string;
      warnings: { key: string; message: string }[];
    }
  | { valid: false; problems: ConfigProblem[] };

export type { RunState };

export interface RunStatus {
  path: string;
  state: RunState;
  pid?: number;
  /** Another machine's run (its lock names that host). */
  host?: string;
  ours: boolean;
  config?: string;
  exitCode?: number | null;
  error?: { code: string; message: string };
  output?: string;
}

export type RunMode = 'start' | 'resume' | 'overwrite';

/** A `metrics.jsonl` record: a step's `loss`, `lr`, … or a validation's `val/loss`. */
export type MetricsRecord = { step: number; epoch?: number } & Record<string, number>;

export interface SampleFile {
  path: string;
  step: number;
  kind: 'text' | 'image';
}

export interface RunSummary {
  path: string;
  status: RunStatus;
  starts: number;
  startedAt: string | null;
  lastStartedAt: string | null;
  step?: number;
  loss?: number;
  valLoss?: number;
}

export interface RunDetails {
  status: RunStatus;
  snapshot: string | null;
  starts: { started_at: string; resumed_from: string | null }[];
  metrics: MetricsRecord[];
  samples: SampleFile[];
}

export interface CheckFinding {
  code: string;
  severity: 'error' | 'warning' | 'info';
  path: string;
  reason: string;
  line?: number;
}

export type CheckState =
  | { state: 'running'; decoded: number; total: number }
  | {
      state: 'done';
      summary: {
        imagesFound: number;
        imagesUsed: number;
        imagesSkipped: number;
        uncaptioned: number;
        duplicates: number;
        samplesPerEpoch: number;
      };
      findings: CheckFinding[];
      finishedAt: string;
    }
  | { state: 'failed'; message: string }
  | { state: 'cancelled'; decoded: number; total: number };

export type LabelState =
  | { state: 'running'; done?: number; total?: number }
  | { state: 'done'; changes: Change[]; skipped: { image: string; reason: string }[]; kept: number }
  | { state: 'failed'; message: string };

/** The labeller and its files (relative to the project), for labelling and for tag suggestions. */
export interface LabellerChoice {
  model: 'none' | 'wd14' | 'clip';
  /** wd14: the tagger's model.onnx; clip: the export's folder. */
  modelPath?: string;
  /** wd14: selected_tags.csv. */
  tags?: string;
  /** wd14, clip: where the model runs; auto when absent. */
  device?: 'auto' | 'cpu' | 'cuda' | 'webgpu';
}

export interface LabelRequest extends LabellerChoice {
  dataset: string;
  template?: string;
  overwrite: boolean;
}

/** A tag the labeller sees in an image: its caption role and score (WD14 confidence 0–1, CLIP similarity). */
export interface SuggestedTag {
  text: string;
  role: 'core' | 'mood' | 'plain';
  score: number;
}

export const api = {
  project: () => call<{ name: string; datasets: { path: string }[] }>('api/project'),
  dataset: (path: string) =>
    call<{ path: string; images: ImageEntry[] }>(`api/dataset?path=${encodeURIComponent(path)}`),
  saveCaption: (dataset: string, image: string, expected: string | null, caption: string) =>
    call<{ images: ImageEntry[] }>('api/caption', { dataset, image, expected, caption }),
  /** `images`: only these (the filtered grid); all of the dataset when absent. */
  previewBulk: (dataset: string, op: BulkOperation, images?: string[]) =>
    call<{ changes: Change[]; skipped: { image: string; reason: string }[] }>('api/bulk/preview', {
      dataset,
      op,
      ...(images ? { images } : {}),
    }),
  applyChanges: (dataset: string, changes: Change[]) =>
    call<{ images: ImageEntry[] }>('api/bulk/apply', { dataset, changes }),
  check: (dataset: string) =>
    call<{ check: CheckState | null }>(`api/check?dataset=${encodeURIComponent(dataset)}`),
  startCheck: (dataset: string) => call<{ check: CheckState }>('api/check', { dataset }),
  cancelCheck: (dataset: string) => call<{ check: CheckState | null }>('api/check/cancel', { dataset }),
  label: (dataset: string) =>
    call<{ label: LabelState | null }>(`api/label?dataset=${encodeURIComponent(dataset)}`),
  startLabel: (request: LabelRequest) => call<{ label: LabelState }>('api/label', request),
  suggest: (image: string, labeller: LabellerChoice) =>
    call<{ image: string; tags: SuggestedTag[]; note?: string }>('api/suggest', { image, ...labeller }),
  configs: () => call<{ configs: string[] }>('api/configs'),
  config: (path: string) =>
    call<{ path: string; text: string }>(`api/config?path=${encodeURIComponent(path)}`),
  validateConfig: (path: string, text: string) => call<Validation>('api/config/validate', { path, text }),
  /** `dataset`: the image folder an SD config trains on. */
  newConfig: (path: string, task: 'sd' | 'llm', dataset?: string) =>
    call<{ path: string; text: string }>('api/config/new', {
      path,
      task,
      ...(dataset === undefined ? {} : { dataset }),
    }),
  saveConfig: (path: string, expected: string | null, text: string) =>
    call<{ path: string }>('api/config/save', { path, expected, text }),
  startRun: (config: string, mode: RunMode) => call<RunStatus>('api/run/start', { config, mode }),
  stopRun: (path: string) => call<RunStatus>('api/run/stop', { path }),
  runs: () => call<{ runs: RunSummary[] }>('api/runs'),
  run: (path: string) => call<RunDetails>(`api/run?path=${encodeURIComponent(path)}`),
};

export const runEventsUrl = (path: string): string => `api/run/events?path=${encodeURIComponent(path)}`;
export const sampleUrl = (path: string): string => `run-file?path=${encodeURIComponent(path)}`;

export const thumbnailUrl = (path: string): string => `thumbnail?path=${encodeURIComponent(path)}`;
