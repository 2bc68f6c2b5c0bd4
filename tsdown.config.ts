import type { UserConfig } from 'tsdown';

/** Shared build settings: ESM only, declarations, dependencies never bundled. */
export const baseConfig: UserConfig = {
  entry: ['src/index.ts'],
  format: 'esm',
  platform: 'node',
  target: 'node20',
  dts: true,
  clean: true,
  sourcemap: false,
};
