import { basename, extname } from 'node:path';

/** kohya's `N_name` folders: N is the repeat count, the rest is the concept. */
const REPEAT_FOLDER = /^\d+_(.+)$/;

/**
 * File-name words that camera apps, phones and screenshot tools add; they describe no content.
 * Lower case.
 */
const NAMING_NOISE = new Set([
  'img',
  'image',
  'dsc',
  'dscn',
  'dscf',
  'pxl',
  'photo',
  'screenshot',
  'copy',
  'final',
]);

/** "neonStreet_at-night (2)" → "neon street at night": words of a file or folder name. */
export function wordsOfName(name: string): string {
  return name
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .split(/[\s_\-.()[\]{},+]+/)
    .map((word) => word.toLowerCase())
    .filter((word) => word !== '' && !/^\d+$/.test(word) && !NAMING_NOISE.has(word))
    .join(' ');
}

/**
 * A caption from where an image sits: the words of its file name, then of each folder from the
 * innermost out (kohya `N_` prefixes removed). `relativePath` is relative to the labelled folder;
 * `rootName` is that folder's own name, used only when it is a kohya `N_name` folder, whose name is
 * the concept. Empty when no name carries words (`IMG_0001.jpg`).
 */
export function captionFromNames(relativePath: string, rootName: string): string {
  const parts = relativePath.split(/[\\/]/).filter((part) => part !== '');
  const file = parts.pop() ?? '';
  const folders = parts.reverse();
  if (REPEAT_FOLDER.test(rootName)) folders.push(rootName);
  const tags: string[] = [];
  for (const name of [basename(file, extname(file)), ...folders]) {
    const words = wordsOfName(REPEAT_FOLDER.exec(name)?.[1] ?? name);
    if (words !== '' && !tags.includes(words)) tags.push(words);
  }
  return tags.join(', ');
}
