import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import {
  addTag,
  promoteTag,
  removeTag,
  renameTag,
  type TagEditResult,
  type TagRole,
} from '@lora/caption-markup';
import { type CaptionEdit, type ScannedImage, updateCaptions } from '@lora/dataset';
import { UiError } from '../errors.ts';
import type { Checks } from './checks.ts';
import {
  CONFIG_TASKS,
  type ConfigTask,
  findConfigs,
  newConfig,
  readConfig,
  saveConfig,
  validateConfig,
} from './configs.ts';
import { captionTarget, findDatasets, scanDataset } from './datasets.ts';
import { LABEL_DEVICES, LABEL_MODELS, type LabelDevice, type LabelModel, type Labels } from './labels.ts';
import { projectRelative, resolveInside } from './project-path.ts';
import {
  findRuns,
  isSamplePath,
  lastMetrics,
  listSamples,
  type MetricsCursor,
  type MetricsRecord,
  readMetrics,
  readStarts,
} from './run-files.ts';
import { RUN_MODES, type RunMode, type Runs, readSnapshot } from './runs.ts';
import type { Thumbnails } from './thumbnails.ts';

/** What the routes share: the project's real path, the thumbnail cache, the write queue. */
export interface ApiContext {
  readonly root: string;
  readonly thumbnails: Thumbnails;
  /** Runs writes one after another, so two tabs' saves never interleave. */
  readonly serialize: <T>(work: () => Promise<T>) => Promise<T>;
  readonly runs: Runs;
  readonly checks: Checks;
  readonly labels: Labels;
}

/** A JSON answer, or bytes with their type (thumbnails). */
export type ApiResult = { json: unknown; status?: number } | { bytes: Buffer; type: string };

export interface ImageEntry {
  /** Relative to the project, `/` separators. */
  readonly path: string;
  /** The `N_name` folder (kohya dataset) the image belongs to. */
  readonly dataset: string;
  readonly caption: string | null;
  readonly captionFrom: 'metadata' | 'sidecar' | null;
  /** The file the caption is in, relative to the project; null when it has none. */
  readonly captionFile: string | null;
}

const bad = (message: string) => new UiError('E_BAD_REQUEST', message, 400);

/** An optional string field, left out when empty. */
function optional(body: Record<string, unknown>, key: string): Record<string, string> {
  const value = body[key];
  if (value !== undefined && value !== '' && typeof value !== 'string')
    throw bad(`"${key}" must be a string.`);
  return value ? { [key]: value as string } : {};
}

/** The labeller of a label or suggest request, and its files. */
function labelModel(body: Record<string, unknown>) {
  const model = str(body, 'model');
  if (!(LABEL_MODELS as readonly string[]).includes(model))
    throw bad(`"model" must be one of ${LABEL_MODELS.join(', ')}.`);
  const { device } = optional(body, 'device');
  if (device !== undefined && !(LABEL_DEVICES as readonly string[]).includes(device))
    throw bad(`"device" must be one of ${LABEL_DEVICES.join(', ')}.`);
  return {
    model: model as LabelModel,
    ...optional(body, 'modelPath'),
    ...optional(body, 'tags'),
    ...(device === undefined ? {} : { device: device as LabelDevice }),
  };
}

function str(body: Record<string, unknown>, key: string): string {
  const value = body[key];
  if (typeof value !== 'string') throw bad(`"${key}" must be a string.`);
  return value;
}

function strOrNull(body: Record<string, unknown>, key: string): string | null {
  const value = body[key];
  if (value !== null && typeof value !== 'string') throw bad(`"${key}" must be a string or null.`);
  return value;
}

function list(body: Record<string, unknown>, key: string): Record<string, unknown>[] {
  const value = body[key];
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'object' || item === null)) {
    throw bad(`"${key}" must be a list of objects.`);
  }
  return value as Record<string, unknown>[];
}

const entryOf = (root: string, image: ScannedImage): ImageEntry => ({
  path: projectRelative(root, image.path),
  dataset: image.dataset,
  caption: image.caption,
  captionFrom: image.captionFrom,
  captionFile: image.captionPath === null ? null : projectRelative(root, image.captionPath),
});

async function loadDataset(context: ApiContext, dataset: string) {
  const dir = await resolveInside(context.root, dataset);
  const images = await scanDataset(dir);
  return { dir, images, byPath: new Map(images.map((image) => [image.path, image])) };
}

const ROLES: readonly TagRole[] = ['core', 'mood', 'plain'];

function role(op: Record<string, unknown>): TagRole {
  const value = op['role'] ?? 'plain';
  if (!ROLES.includes(value as TagRole)) throw bad(`"role" must be one of ${ROLES.join(', ')}.`);
  return value as TagRole;
}

const SPLIT = 'the tag is split by markup here (edit it by hand)';

/**
 * The bulk edits the page offers, keyed by `op.kind`: the edit of one caption, what a left tag
 * means, and whether an image without a caption takes part (adding a tag gives it one).
 */
const BULK_OPERATIONS: Record<
  string,
  {
    edit: (caption: string, op: Record<string, unknown>) => TagEditResult;
    skipped: string;
    uncaptioned?: true;
  }
> = {
  rename: { edit: (caption, op) => renameTag(caption, str(op, 'from'), str(op, 'to')), skipped: SPLIT },
  add: {
    edit: (caption, op) => addTag(caption, str(op, 'tag'), role(op)),
    skipped: SPLIT,
    uncaptioned: true,
  },
  remove: { edit: (caption, op) => removeTag(caption, str(op, 'tag')), skipped: SPLIT },
  promote: {
    edit: (caption, op) => promoteTag(caption, str(op, 'tag')),
    skipped: 'the tag is split by markup, or shares its *mood* emphasis with other tags (edit it by hand)',
  },
};

/**
 * Saves captions through `updateCaptions` after a fresh scan of the dataset (so each goes to
 * the file training reads now); a conflict is a 409 that carries what the files say now.
 */
async function save(
  context: ApiContext,
  dataset: string,
  edits: readonly { image: string; expected: string | null; caption: string }[],
) {
  return context.serialize(async () => {
    const { dir, byPath } = await loadDataset(context, dataset);
    const captionEdits: CaptionEdit[] = [];
    for (const edit of edits) {
      const image = byPath.get(await resolveInside(context.root, edit.image));
      if (image === undefined)
        throw bad(`${edit.image} is not an image of ${dataset || 'the project folder'}.`);
      const target = captionTarget(image, dir);
      await resolveInside(
        context.root,
        projectRelative(context.root, target.kind === 'metadata' ? target.csv : target.path),
      );
      captionEdits.push({ image: image.path, target, expected: edit.expected, caption: edit.caption });
    }
    const { written, conflicts } = await updateCaptions(captionEdits);
    if (conflicts.length > 0) {
      const error = new UiError(
        'E_CAPTION_CONFLICT',
        conflicts.length === 1
          ? `${projectRelative(context.root, conflicts[0]!.image)}: its caption changed on disk since the page read it; nothing was saved. Compare the two versions and save again.`
          : `${conflicts.length} captions changed on disk since the page read them; nothing was saved.`,
        409,
      );
      return {
        status: 409,
        json: {
          error: { code: error.code, message: error.message },
          conflicts: conflicts.map((conflict) => ({
            image: projectRelative(context.root, conflict.image),
            expected: conflict.expected,
            current: conflict.current,
          })),
        },
      };
    }
    const saved = await loadDataset(context, dataset);
    const images = captionEdits
      .map(({ image }) => saved.byPath.get(image))
      .filter((image) => image !== undefined);
    return {
      json: {
        written: written.map((path) => projectRelative(context.root, path)),
        images: images.map((image) => entryOf(context.root, image)),
      },
    };
  });
}

/** GET routes: the path below the token, and the query. */
export async function get(context: ApiContext, route: string, query: URLSearchParams): Promise<ApiResult> {
  switch (route) {
    case 'api/project':
      return { json: { name: basename(context.root), datasets: await findDatasets(context.root) } };
    case 'api/dataset': {
      const dataset = query.get('path') ?? '';
      const { images } = await loadDataset(context, dataset);
      return { json: { path: dataset, images: images.map((image) => entryOf(context.root, image)) } };
    }
    case 'thumbnail': {
      const image = await resolveInside(context.root, query.get('path') ?? '');
      return { bytes: await context.thumbnails.get(image), type: 'image/webp' };
    }
    case 'api/check':
      return { json: { check: (await context.checks.get(query.get('dataset') ?? '')) ?? null } };
    case 'api/label':
      return { json: { label: (await context.labels.get(query.get('dataset') ?? '')) ?? null } };
    case 'api/configs':
      return { json: { configs: await findConfigs(context.root) } };
    case 'api/config': {
      const path = query.get('path') ?? '';
      return { json: { path, text: await readConfig(context.root, path) } };
    }
    case 'api/runs':
      return { json: { runs: await listRuns(context) } };
    case 'api/run': {
      const dir = await resolveInside(context.root, query.get('path') ?? '');
      return {
        json: {
          status: await context.runs.status(dir),
          snapshot: await readSnapshot(dir),
          starts: await readStarts(dir),
          metrics: await allMetrics(dir),
          samples: await listSamples(context.root, dir),
        },
      };
    }
    case 'run-file': {
      const path = query.get('path') ?? '';
      if (!isSamplePath(path)) throw bad(`${path} is not a sample of a run (samples/step-<n>….png or .txt).`);
      const bytes = await readFile(await resolveInside(context.root, path));
      return { bytes, type: path.endsWith('.png') ? 'image/png' : 'text/plain; charset=utf-8' };
    }
    default:
      throw new UiError('E_BAD_REQUEST', `No such page: ${route}.`, 404);
  }
}

/** POST routes, with the parsed JSON body. */
export async function post(
  context: ApiContext,
  route: string,
  body: Record<string, unknown>,
): Promise<ApiResult> {
  switch (route) {
    case 'api/caption':
      return save(context, str(body, 'dataset'), [
        { image: str(body, 'image'), expected: strOrNull(body, 'expected'), caption: str(body, 'caption') },
      ]);
    case 'api/bulk/preview': {
      const op = body['op'];
      if (typeof op !== 'object' || op === null) throw bad('"op" must be an object.');
      const kind = str(op as Record<string, unknown>, 'kind');
      const operation = Object.hasOwn(BULK_OPERATIONS, kind) ? BULK_OPERATIONS[kind]! : undefined;
      if (operation === undefined) throw bad(`Unknown bulk edit "${kind}".`);
      const { images } = await loadDataset(context, str(body, 'dataset'));
      const only = Array.isArray(body['images']) ? new Set(body['images'].map(String)) : undefined;
      const changes: { image: string; before: string | null; after: string }[] = [];
      const skipped: { image: string; reason: string }[] = [];
      for (const image of images) {
        const path = projectRelative(context.root, image.path);
        if (only !== undefined && !only.has(path)) continue;
        if (image.caption === null && !operation.uncaptioned) continue;
        const result = operation.edit(image.caption ?? '', op as Record<string, unknown>);
        if (result.changed > 0) changes.push({ image: path, before: image.caption, after: result.text });
        if (result.skipped > 0) skipped.push({ image: path, reason: operation.skipped });
      }
      return { json: { changes, skipped } };
    }
    case 'api/bulk/apply':
      return save(
        context,
        str(body, 'dataset'),
        list(body, 'changes').map((change) => ({
          image: str(change, 'image'),
          expected: strOrNull(change, 'before'),
          caption: str(change, 'after'),
        })),
      );
    case 'api/check':
      return { json: { check: await context.checks.start(str(body, 'dataset')) } };
    case 'api/check/cancel':
      return { json: { check: (await context.checks.cancel(str(body, 'dataset'))) ?? null } };
    case 'api/label':
      return {
        json: {
          label: await context.labels.start({
            dataset: str(body, 'dataset'),
            ...labelModel(body),
            ...optional(body, 'template'),
            overwrite: body['overwrite'] === true,
          }),
        },
      };
    case 'api/suggest': {
      const choice = labelModel(body);
      if (choice.model === 'none')
        throw bad('Tag suggestions come from a model: choose wd14 or clip (and its files) under Label….');
      return { json: await context.labels.suggest({ image: str(body, 'image'), ...choice }) };
    }
    case 'api/config/validate':
      return { json: await validateConfig(context.root, str(body, 'path'), str(body, 'text')) };
    case 'api/config/new': {
      const path = str(body, 'path');
      const task = str(body, 'task');
      if (!(CONFIG_TASKS as readonly string[]).includes(task))
        throw bad(`"task" must be one of ${CONFIG_TASKS.join(', ')}.`);
      const dataset = body['dataset'];
      if (dataset !== undefined && typeof dataset !== 'string') throw bad('"dataset" must be a string.');
      const text = await context.serialize(() =>
        newConfig(context.root, path, task as ConfigTask, dataset as string | undefined),
      );
      return { json: { path, text } };
    }
    case 'api/config/save': {
      const path = str(body, 'path');
      await context.serialize(() =>
        saveConfig(context.root, path, strOrNull(body, 'expected'), str(body, 'text')),
      );
      return { json: { path, saved: true } };
    }
    case 'api/run/start': {
      const mode = str(body, 'mode');
      if (!Object.hasOwn(RUN_MODES, mode))
        throw bad(`"mode" must be one of ${Object.keys(RUN_MODES).join(', ')}.`);
      return { json: await context.runs.start(str(body, 'config'), mode as RunMode) };
    }
    case 'api/run/stop':
      return { json: await context.runs.stop(str(body, 'path')) };
    default:
      throw new UiError('E_BAD_REQUEST', `No such action: ${route}.`, 404);
  }
}

/** Every record of a run's `metrics.jsonl`, for the chart of a run that is not followed live. */
async function allMetrics(dir: string): Promise<MetricsRecord[]> {
  const records: MetricsRecord[] = [];
  let cursor: MetricsCursor | undefined;
  for (;;) {
    const read = await readMetrics(dir, cursor);
    if (read === undefined || read.cursor.offset === cursor?.offset) return records;
    records.push(...read.records);
    cursor = read.cursor;
  }
}

/** The run folders of the project (and those this server started, which may have no runs.jsonl yet), newest first. */
async function listRuns(context: ApiContext) {
  const paths = new Set(await findRuns(context.root));
  for (const dir of context.runs.folders()) paths.add(projectRelative(context.root, dir));
  const runs = await Promise.all(
    [...paths].map(async (path) => {
      const dir = await resolveInside(context.root, path);
      const starts = await readStarts(dir);
      return {
        path,
        status: await context.runs.status(dir),
        starts: starts.length,
        startedAt: starts[0]?.started_at ?? null,
        lastStartedAt: starts.at(-1)?.started_at ?? null,
        ...(await lastMetrics(dir)),
      };
    }),
  );
  return runs.sort((a, b) => (b.lastStartedAt ?? '').localeCompare(a.lastStartedAt ?? ''));
}
