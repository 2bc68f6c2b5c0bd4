import { defineConfig } from 'tsdown';
import { baseConfig } from '../../tsdown.config.ts';

// `@lora/engine/testing` runs graphs on onnxruntime in other packages' tests.
export default defineConfig({ ...baseConfig, entry: ['src/index.ts', 'src/testing.ts'] });
