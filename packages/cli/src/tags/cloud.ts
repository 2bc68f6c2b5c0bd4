import { writeFile } from 'node:fs/promises';
import type { TagRole } from '@lora/caption-markup';
import sharp from 'sharp';

export interface CloudTag {
  tag: string;
  count: number;
  /** The role the tag had most often: shown bold (core), italic (mood) or plain. */
  role: TagRole;
}

const WIDTH = 800;
const MARGIN = 24;
const MIN_FONT = 14;
const MAX_FONT = 64;
const LINE_GAP = 1.25;
/**
 * Glyph advances of DejaVu Sans in em (Verdana is close; most other sans fonts are narrower, which
 * only widens the gaps). SVG renderers differ in text measurement and librsvg ignores
 * `textLength`, so rows are packed from these estimates.
 */
const NARROW = new Set([..."fijlrt.,:;!|'()[]"]);
const WIDE = new Set([...'mwMW@%']);
const BOLD_FACTOR = 1.1;

/** Estimated width of `text` in pixels at `size`. */
export function textWidth(text: string, size: number, bold: boolean): number {
  let em = 0;
  for (const char of text) {
    if (char === ' ') em += 0.32;
    else if (NARROW.has(char)) em += 0.36;
    else if (WIDE.has(char)) em += 0.95;
    else if (char !== char.toLowerCase()) em += 0.72;
    else em += 0.62;
  }
  return em * size * (bold ? BOLD_FACTOR : 1);
}

const STYLE: Record<TagRole, { fill: string; attributes: string }> = {
  core: { fill: '#1b4f9c', attributes: ' font-weight="bold"' },
  mood: { fill: '#8a3ca8', attributes: ' font-style="italic"' },
  plain: { fill: '#404040', attributes: '' },
};

const escapeXml = (text: string) =>
  text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);

/** Font size by frequency: area grows with the count, so the size with its square root. */
export function fontSize(count: number, maxCount: number): number {
  return Math.round(MIN_FONT + (MAX_FONT - MIN_FONT) * Math.sqrt(count / Math.max(1, maxCount)));
}

interface Placed extends CloudTag {
  size: number;
  width: number;
}

/**
 * A keyword cloud as a standalone SVG: tags packed into centred rows, most frequent first, sized
 * by count, bold for core and italic for mood tags, with a legend.
 */
export function tagCloudSvg(tags: readonly CloudTag[]): string {
  const maxCount = Math.max(1, ...tags.map((tag) => tag.count));
  const rows: Placed[][] = [];
  let row: Placed[] = [];
  let rowWidth = 0;
  const space = (size: number) => size * 0.6;
  for (const tag of [...tags].sort((a, b) => b.count - a.count)) {
    const size = fontSize(tag.count, maxCount);
    const width = textWidth(tag.tag, size, tag.role === 'core');
    if (row.length > 0 && rowWidth + space(size) + width > WIDTH - 2 * MARGIN) {
      rows.push(row);
      row = [];
      rowWidth = 0;
    }
    rowWidth += (row.length > 0 ? space(size) : 0) + width;
    row.push({ ...tag, size, width });
  }
  if (row.length > 0) rows.push(row);

  const parts: string[] = [];
  let y = MARGIN;
  for (const line of rows) {
    const height = Math.max(...line.map((tag) => tag.size)) * LINE_GAP;
    const total = line.reduce((sum, tag, i) => sum + tag.width + (i > 0 ? space(tag.size) : 0), 0);
    let x = (WIDTH - total) / 2;
    const baseline = y + height * 0.8;
    for (const [i, tag] of line.entries()) {
      if (i > 0) x += space(tag.size);
      const style = STYLE[tag.role];
      // Anchored at the middle of its slot, so a misestimated width eats into both gaps evenly.
      parts.push(
        `<text x="${(x + tag.width / 2).toFixed(1)}" y="${baseline.toFixed(1)}" text-anchor="middle" font-size="${tag.size}" fill="${style.fill}"${style.attributes}><title>${escapeXml(`${tag.tag}: ${tag.count}`)}</title>${escapeXml(tag.tag)}</text>`,
      );
      x += tag.width;
    }
    y += height;
  }
  if (tags.length === 0) {
    parts.push(
      `<text x="${WIDTH / 2}" y="${y + 30}" text-anchor="middle" font-size="16" fill="#808080">no tags</text>`,
    );
    y += 40;
  }
  const legendY = y + 28;
  const height = Math.ceil(legendY + MARGIN / 2);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="DejaVu Sans, Verdana, sans-serif">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    ...parts,
    `<text x="${WIDTH / 2}" y="${legendY}" text-anchor="middle" font-size="12" fill="#808080">` +
      `<tspan font-weight="bold" fill="${STYLE.core.fill}">core</tspan> · ` +
      `<tspan font-style="italic" fill="${STYLE.mood.fill}">mood</tspan> · ` +
      `<tspan fill="${STYLE.plain.fill}">plain</tspan> · size = frequency</text>`,
    '</svg>',
  ].join('\n');
}

/** Writes the cloud as SVG and/or PNG (sharp renders the SVG). */
export async function writeTagCloud(
  tags: readonly CloudTag[],
  paths: { svg?: string; png?: string },
): Promise<void> {
  const svg = tagCloudSvg(tags);
  if (paths.svg !== undefined) await writeFile(paths.svg, svg);
  if (paths.png !== undefined) await sharp(Buffer.from(svg)).png().toFile(paths.png);
}
