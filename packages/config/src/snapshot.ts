import { stringify } from 'yaml';
import type { LoraConfig } from './config.ts';

/**
 * The resolved config as YAML, for the run folder's `config.yaml`: every default written out and
 * every path absolute, so the run can be repeated with `lora train --config <output_dir>/config.yaml`.
 */
export function stringifyConfig(config: LoraConfig): string {
  return `# Resolved @lora config: defaults applied, paths absolute.\n${stringify(config)}`;
}
