import { defineConfig } from 'tsdown';
import { baseConfig } from '../../tsdown.config.ts';

// The server (dist/index.js) and the page it serves (dist/client/): the page is bundled with
// preact and @lora/caption-markup, so the package ships it ready and nothing builds or downloads
// anything on the user's machine.
export default defineConfig([
  baseConfig,
  {
    entry: { app: 'src/client/main.tsx' },
    outDir: 'dist/client',
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    dts: false,
    clean: false,
    minify: true,
    sourcemap: false,
    noExternal: () => true,
    copy: [
      { from: 'src/client/index.html', to: 'dist/client/index.html' },
      { from: 'src/client/app.css', to: 'dist/client/app.css' },
    ],
  },
]);
