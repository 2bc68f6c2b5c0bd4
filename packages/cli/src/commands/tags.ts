import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { TagFrequency, TagRole } from '@lora/caption-markup';
import { datasetTagFrequency, readMetadataCsv, scanImageFolders } from '@lora/dataset';
import { aboutFile, CliError } from '../cli-error.ts';
import { formatTable, print, printJson } from '../format.ts';
import { displayPath } from '../paths.ts';
import { type CloudTag, writeTagCloud } from '../tags/cloud.ts';

export interface TagsOptions {
  top?: number | string;
  svg?: string;
  png?: string;
  json?: boolean;
}

export interface TagRow {
  tag: string;
  count: number;
  core: number;
  mood: number;
  plain: number;
}

export interface TagsReport {
  source: string;
  captions: number;
  /** Every tag, most frequent first. */
  tags: TagRow[];
  /** Per folder, as kohya's `ss_tag_frequency` has it. */
  datasets: Record<string, TagFrequency>;
}

const ROLES: readonly TagRole[] = ['core', 'mood', 'plain'];
const DEFAULT_TOP = 50;

/** Captions per dataset folder, from a metadata.csv or from a folder's images. */
async function readCaptions(source: string): Promise<{ dataset: string; caption: string | null }[]> {
  const info = await aboutFile(source, () => stat(source));
  if (info.isDirectory()) return (await scanImageFolders({ dirs: [source] })).images;
  const dataset = basename(dirname(source));
  const { captions } = await readMetadataCsv(source);
  return [...captions.values()].map(({ caption }) => ({ dataset, caption }));
}

/** Tag counts summed over folders, with the split by role; ties in name order. */
export function tagRows(datasets: Record<string, TagFrequency>): TagRow[] {
  const rows = new Map<string, TagRow>();
  for (const frequency of Object.values(datasets)) {
    for (const [tag, count] of Object.entries(frequency.counts)) {
      const row = rows.get(tag) ?? { tag, count: 0, core: 0, mood: 0, plain: 0 };
      row.count += count;
      for (const role of ROLES) row[role] += frequency.byRole[role][tag] ?? 0;
      rows.set(tag, row);
    }
  }
  return [...rows.values()].sort((a, b) => b.count - a.count || (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
}

/** The role a tag had most often; core wins ties, then mood, as the stronger emphasis. */
export function mainRole(row: TagRow): TagRole {
  return ROLES.reduce((best, role) => (row[role] > row[best] ? role : best), 'core');
}

function topOption(top: TagsOptions['top']): number {
  const value = Number(top ?? DEFAULT_TOP);
  if (!Number.isInteger(value) || value < 1) {
    throw new CliError('E_USAGE', `--top must be a whole number of tags ≥ 1 (got "${top}"), e.g. --top 50.`);
  }
  return value;
}

export async function tagStats(source: string): Promise<TagsReport> {
  const images = await readCaptions(source);
  const datasets = datasetTagFrequency(images);
  return {
    source,
    captions: images.filter((image) => image.caption !== null).length,
    tags: tagRows(datasets),
    datasets,
  };
}

export function formatTags(report: TagsReport, top: number): string {
  const occurrences = (role: TagRole) => report.tags.reduce((sum, row) => sum + row[role], 0);
  const distinct = (role: TagRole) => report.tags.filter((row) => row[role] > 0).length;
  const lines = [
    `${displayPath(report.source)}: ${report.tags.length} distinct tags in ${report.captions} captions`,
    `  core (bold):    ${occurrences('core')} uses of ${distinct('core')} tags`,
    `  mood (italic):  ${occurrences('mood')} uses of ${distinct('mood')} tags`,
    `  plain:          ${occurrences('plain')} uses of ${distinct('plain')} tags`,
  ];
  const shown = report.tags.slice(0, top);
  if (shown.length > 0) {
    lines.push(
      '',
      shown.length === report.tags.length ? 'tags:' : `top ${shown.length} tags:`,
      formatTable([
        ['tag', 'count', 'core', 'mood', 'plain'],
        ...shown.map((row) => [
          row.tag,
          String(row.count),
          String(row.core),
          String(row.mood),
          String(row.plain),
        ]),
      ]),
    );
  }
  return lines.join('\n');
}

export async function tags(source: string, options: TagsOptions): Promise<number> {
  const top = topOption(options.top);
  const report = await tagStats(source);
  const written = [options.svg, options.png].filter((path) => path !== undefined).map(String);
  if (written.length > 0) {
    const cloud: CloudTag[] = report.tags
      .slice(0, top)
      .map((row) => ({ tag: row.tag, count: row.count, role: mainRole(row) }));
    await writeTagCloud(cloud, {
      ...(options.svg === undefined ? {} : { svg: String(options.svg) }),
      ...(options.png === undefined ? {} : { png: String(options.png) }),
    });
  }
  if (options.json) printJson({ ...report, ...(written.length > 0 ? { cloud: written } : {}) });
  else {
    const cloud =
      written.length > 0 ? [`keyword cloud: ${written.map((path) => displayPath(path)).join(', ')}`] : [];
    print([formatTags(report, top), ...cloud].join('\n'));
  }
  return 0;
}
