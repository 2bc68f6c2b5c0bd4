import { fileURLToPath } from 'node:url';

/** This CLI's `bin.js` (one folder up from both src/ and dist/): `lora ui` starts runs with it. */
export const BIN_PATH = fileURLToPath(new URL('../bin.js', import.meta.url));
