// Run: pnpm run bench (vitest bench --run). Numbers go in the README.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, bench, describe } from 'vitest';
import { configTemplate, loadConfig, parseConfig, safeParseConfig, toJSONSchema } from '../src/index.ts';

const SEED = `train_data_dir: "./data/style_train"
metadata_path: "./data/style_train/metadata.csv"
base_model: "./models/sd-v1-5-pruned.safetensors"
lora_rank: 16
target_modules: ["q_proj", "v_proj"]
batch_size: 4
epochs: 15
learning_rate: 2e-4
output_dir: "./output/cyberpunk_lora"
`;
const BROKEN = `${SEED}lora_rank: x\nnetwork_dim: 8\nmixed_precision: fp32\nmax_seq_len: 9\nresolution: 500\n`;
const root = mkdtempSync(join(tmpdir(), 'lora-config-bench-'));
mkdirSync(join(root, 'data/style_train'), { recursive: true });
mkdirSync(join(root, 'models'));
writeFileSync(join(root, 'data/style_train/metadata.csv'), 'file_name,text\n');
writeFileSync(join(root, 'models/sd-v1-5-pruned.safetensors'), '');
writeFileSync(join(root, 'seed.yaml'), SEED);
const template = configTemplate('sd');
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('config', () => {
  bench('parseConfig(seed)', () => {
    parseConfig(SEED, '/c/seed.yaml');
  });
  bench('parseConfig(sd template, 120 lines)', () => {
    parseConfig(template, '/c/t.yaml');
  });
  bench('safeParseConfig(5 errors + located messages)', () => {
    safeParseConfig(BROKEN, '/c/broken.yaml');
  });
  bench('loadConfig(seed) with path checks', async () => {
    await loadConfig(join(root, 'seed.yaml'));
  });
  bench('toJSONSchema()', () => {
    toJSONSchema();
  });
});
