import { existsSync } from 'node:fs';
import { CliError, EXIT_FAILURE } from './cli-error.ts';

/** Refuses to replace `paths` that exist unless the user passed --overwrite. */
export function refuseExisting(paths: readonly string[], overwrite: boolean | undefined): void {
  if (overwrite) return;
  const existing = paths.filter((path) => existsSync(path));
  if (existing.length > 0) {
    throw new CliError(
      'E_EXISTS',
      `${existing.join(' and ')} already exist${existing.length === 1 ? 's' : ''}; pass --overwrite to replace ${existing.length === 1 ? 'it' : 'them'}, or choose another output.`,
    );
  }
}

/** Fails before any work starts when an input is missing, naming every missing one. */
export function requireExisting(paths: readonly string[]): void {
  const missing = paths.filter((path) => !existsSync(path));
  if (missing.length > 0) {
    throw new CliError(
      'E_NOT_FOUND',
      `${missing.join(' and ')} ${missing.length === 1 ? 'does' : 'do'} not exist; check the path${missing.length === 1 ? '' : 's'}.`,
      EXIT_FAILURE,
    );
  }
}
