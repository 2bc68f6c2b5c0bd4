import { defineConfig } from 'tsdown';
import { baseConfig } from '../../tsdown.config.ts';

// `@lora/trainer-ort/testing` gates other packages' WebGPU tests the way this package's are gated.
export default defineConfig({
  ...baseConfig,
  entry: { index: 'src/index.ts', testing: 'src/webgpu/testing.ts' },
});
