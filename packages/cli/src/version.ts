import { createRequire } from 'node:module';

/** The CLI's version, from its package.json (one folder up from both src/ and dist/). */
export const { version: VERSION } = createRequire(import.meta.url)('../package.json') as { version: string };
