import { type LoraLayout, rankOf, VARIANTS } from '@lora/adapters';
import { openSafetensors } from '@lora/safetensors';
import { aboutFile } from '../cli-error.ts';
import { formatBytes, formatCount, formatTable, print, printJson, truncate } from '../format.ts';
import { loraInput, loraLayoutOf, MAX_ADAPTER_BYTES, readAdapterFile } from '../lora-files.ts';

export interface InspectOptions {
  json?: boolean;
  /** Tensors listed in the text output; --json always lists all. */
  tensors?: number;
}

export interface TensorRow {
  name: string;
  dtype: string;
  shape: number[];
  bytes: number;
}

export interface LoraSummary {
  modules: number;
  /** rank → modules with that rank. */
  /** Modules per variant (`LoRA`, `DoRA`). */
  variants: Record<string, number>;
  ranks: Record<string, number>;
  /** alpha → modules with that alpha. */
  alphas: Record<string, number>;
  /** First path segment (unet, text_encoder, model …) → modules. */
  components: Record<string, number>;
}

export interface InspectReport {
  file: string;
  fileBytes: number;
  /** kohya / diffusers / peft for a LoRA; `checkpoint` for anything else. */
  layout: LoraLayout | 'checkpoint';
  /** What kind of full checkpoint, when the names tell. */
  checkpoint?: string;
  tensorCount: number;
  parameters: number;
  dtypes: Record<string, { tensors: number; bytes: number }>;
  tensors: TensorRow[];
  lora?: LoraSummary;
  /** Known kohya `ss_*` / `sshs_*` values under readable names. */
  training: Record<string, string>;
  /** Most frequent tags of `ss_tag_frequency`, over all its folders. */
  topTags: { tag: string; count: number }[];
  metadata: Record<string, string>;
}

/** Tensors listed by default in the text output. */
const DEFAULT_TENSOR_ROWS = 20;
const TOP_TAGS = 10;

/** sd-scripts' metadata keys worth showing, in the order people read them. */
const TRAINING_KEYS: readonly (readonly [string, string])[] = [
  ['ss_output_name', 'name'],
  ['ss_network_module', 'network module'],
  ['ss_network_dim', 'rank'],
  ['ss_network_alpha', 'alpha'],
  ['ss_network_args', 'network args'],
  ['ss_sd_model_name', 'base model'],
  ['ss_base_model_version', 'base model version'],
  ['ss_v2', 'SD 2.x'],
  ['ss_resolution', 'resolution'],
  ['ss_num_train_images', 'training images'],
  ['ss_num_epochs', 'epochs'],
  ['ss_epoch', 'saved at epoch'],
  ['ss_steps', 'steps'],
  ['ss_max_train_steps', 'max steps'],
  ['ss_learning_rate', 'learning rate'],
  ['ss_unet_lr', 'unet lr'],
  ['ss_text_encoder_lr', 'text encoder lr'],
  ['ss_lr_scheduler', 'lr scheduler'],
  ['ss_optimizer', 'optimizer'],
  ['ss_mixed_precision', 'mixed precision'],
  ['ss_training_started_at', 'started'],
  ['ss_training_finished_at', 'finished'],
  ['sshs_model_hash', 'model hash'],
];

const TIMESTAMP_KEYS = new Set(['ss_training_started_at', 'ss_training_finished_at']);

/** What kind of full checkpoint the tensor names belong to. */
export function describeCheckpoint(names: readonly string[]): string | undefined {
  const has = (prefix: string) => names.some((name) => name.startsWith(prefix));
  if (has('model.diffusion_model.') && has('conditioner.embedders.1.model.'))
    return 'Stable Diffusion XL single-file checkpoint (sgm keys)';
  if (has('model.diffusion_model.')) return 'Stable Diffusion single-file checkpoint (original LDM keys)';
  if (has('down_blocks.') && has('conv_in.')) return 'diffusers UNet';
  if (has('text_model.encoder.')) return 'CLIP text encoder';
  if (has('model.layers.') || has('model.embed_tokens.')) return 'transformers decoder LLM';
  return undefined;
}

/** kohya's readable training metadata: known keys only, unset ("None") values left out. */
export function trainingMetadata(metadata: Readonly<Record<string, string>>): Record<string, string> {
  const training: Record<string, string> = {};
  for (const [key, label] of TRAINING_KEYS) {
    const value = metadata[key];
    if (value === undefined || value === 'None' || value === '') continue;
    const seconds = Number(value);
    training[label] =
      TIMESTAMP_KEYS.has(key) && Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : value;
  }
  return training;
}

/** Tag counts of `ss_tag_frequency` (`{folder: {tag: count}}`) summed over folders, most frequent first. */
export function topTags(value: string | undefined, limit: number): { tag: string; count: number }[] {
  if (value === undefined) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return [];
  }
  const totals = new Map<string, number>();
  if (typeof parsed !== 'object' || parsed === null) return [];
  for (const folder of Object.values(parsed)) {
    if (typeof folder !== 'object' || folder === null) continue;
    for (const [tag, count] of Object.entries(folder)) {
      if (typeof count === 'number') totals.set(tag, (totals.get(tag) ?? 0) + count);
    }
  }
  return [...totals]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, limit)
    .map(([tag, count]) => ({ tag, count }));
}

function countBy(values: Iterable<string>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

/** Everything `lora inspect` shows about one file; the tensor data is read only for a LoRA. */
export async function inspectFile(input: string): Promise<InspectReport> {
  const path = await loraInput(
    input,
    'lora inspect takes one .safetensors file (a LoRA or a checkpoint) or a PEFT adapter folder holding adapter_model.safetensors',
  );
  const file = await aboutFile(path, () => openSafetensors(path));
  const tensors: TensorRow[] = [];
  const dtypes: InspectReport['dtypes'] = {};
  let parameters = 0;
  try {
    for (const [name, info] of file.tensors) {
      tensors.push({ name, dtype: info.dtype, shape: [...info.shape], bytes: info.byteLength });
      const entry = dtypes[info.dtype] ?? { tensors: 0, bytes: 0 };
      entry.tensors++;
      entry.bytes += info.byteLength;
      dtypes[info.dtype] = entry;
      parameters += info.shape.reduce((product, dim) => product * dim, 1);
    }
  } finally {
    await file.close();
  }
  const names = tensors.map((tensor) => tensor.name);
  const layout = loraLayoutOf(names);
  const report: InspectReport = {
    file: path,
    fileBytes: file.fileLength,
    layout: layout ?? 'checkpoint',
    tensorCount: tensors.length,
    parameters,
    dtypes,
    tensors,
    training: trainingMetadata(file.metadata),
    topTags: topTags(file.metadata['ss_tag_frequency'], TOP_TAGS),
    metadata: { ...file.metadata },
  };
  if (layout === undefined) {
    const kind = describeCheckpoint(names);
    if (kind !== undefined) report.checkpoint = kind;
  } else if (file.fileLength <= MAX_ADAPTER_BYTES) {
    const { adapter } = await readAdapterFile(path);
    const modules = [...adapter];
    report.lora = {
      modules: modules.length,
      variants: countBy(modules.map(([, module]) => VARIANTS[module.variant].name)),
      ranks: countBy(modules.map(([, module]) => String(rankOf(module)))),
      alphas: countBy(modules.map(([, module]) => String(module.alpha))),
      components: countBy(modules.map(([modulePath]) => modulePath.split('.')[0]!)),
    };
  }
  return report;
}

const listCounts = (counts: Record<string, number>) =>
  Object.entries(counts)
    .map(([value, count]) => `${value} (${count})`)
    .join(', ');

export function formatInspect(report: InspectReport, tensorRows = DEFAULT_TENSOR_ROWS): string {
  const lines = [
    `${report.file}: ${formatBytes(report.fileBytes)}, ${formatCount(report.tensorCount)} tensors, ${formatCount(report.parameters)} parameters`,
  ];
  if (report.layout === 'checkpoint') {
    lines.push(
      `layout: full checkpoint${report.checkpoint ? ` (${report.checkpoint})` : ''}, no LoRA tensors`,
    );
  } else {
    lines.push(`layout: ${report.layout} LoRA`);
  }
  if (report.lora) {
    lines.push(
      `modules: ${report.lora.modules} (${listCounts(report.lora.components)})`,
      `variant: ${listCounts(report.lora.variants)}`,
      `rank: ${listCounts(report.lora.ranks)}`,
      `alpha: ${listCounts(report.lora.alphas)}`,
    );
  }
  lines.push(
    `dtypes: ${Object.entries(report.dtypes)
      .map(([dtype, { tensors, bytes }]) => `${dtype} ${tensors} tensors ${formatBytes(bytes)}`)
      .join(', ')}`,
  );
  const training = Object.entries(report.training);
  if (training.length > 0 || report.topTags.length > 0) {
    lines.push('', 'training metadata:');
    const rows = training.map(([label, value]) => [label, truncate(value, 100)]);
    if (report.topTags.length > 0) {
      rows.push(['top tags', report.topTags.map(({ tag, count }) => `${tag} (${count})`).join(', ')]);
    }
    lines.push(formatTable(rows));
  }
  const other = Object.entries(report.metadata).filter(
    ([key]) => !TRAINING_KEYS.some(([known]) => known === key) && key !== 'ss_tag_frequency',
  );
  if (other.length > 0) {
    lines.push('', 'other metadata:', formatTable(other.map(([key, value]) => [key, truncate(value, 100)])));
  }
  if (report.tensors.length > 0) {
    const shown = report.tensors.slice(0, tensorRows);
    lines.push(
      '',
      shown.length === report.tensors.length
        ? 'tensors:'
        : `tensors (first ${shown.length} of ${report.tensors.length}; --tensors N or --json for more):`,
      formatTable([
        ['name', 'dtype', 'shape', 'bytes'],
        ...shown.map((t) => [t.name, t.dtype, `[${t.shape.join(', ')}]`, formatBytes(t.bytes)]),
      ]),
    );
  }
  return lines.join('\n');
}

export async function inspect(path: string, options: InspectOptions): Promise<number> {
  const report = await inspectFile(path);
  if (options.json) printJson(report);
  else print(formatInspect(report, options.tensors ?? DEFAULT_TENSOR_ROWS));
  return 0;
}
