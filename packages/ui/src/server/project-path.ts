import { realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { UiError } from '../errors.ts';

const outside = (path: string) =>
  new UiError('E_PATH_OUTSIDE', `${JSON.stringify(path)} is not inside the project folder.`, 403);

/** Longest path accepted from a request; real paths are far shorter, and this bounds the work. */
export const MAX_PATH_CHARS = 4096;

const inside = (root: string, path: string): boolean => path === root || path.startsWith(`${root}${sep}`);

/**
 * A path from a request, relative to the project folder with `/` separators, as an absolute
 * path that is inside it: no absolute paths, no `..`, no NUL or backslash, and no symbolic link
 * (of the file or of any folder above it) that leads out. A path that does not exist yet is
 * checked through its nearest existing parent. `root` is the project folder's real path.
 */
export async function resolveInside(root: string, path: string): Promise<string> {
  if (
    path.length > MAX_PATH_CHARS ||
    isAbsolute(path) ||
    /[\0\\]/.test(path) ||
    path.split('/').some((part) => part === '..')
  ) {
    throw outside(path);
  }
  const absolute = join(root, path);
  if (!inside(root, absolute)) throw outside(path);
  let existing = absolute;
  for (;;) {
    const real = await realpath(existing).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined;
      throw error;
    });
    if (real !== undefined) {
      if (!inside(root, real)) throw outside(path);
      return absolute;
    }
    if (existing === root) return absolute;
    existing = dirname(existing);
  }
}

/** An absolute path inside the project as the page names it: relative, with `/`. */
export const projectRelative = (root: string, path: string): string =>
  relative(root, path).split(sep).join('/');
