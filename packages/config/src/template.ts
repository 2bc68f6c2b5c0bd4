import { stringify } from 'yaml';
import { keySchema } from './describe.ts';
import { CONFIG_KEYS, type ConfigKey, KEY_INFO } from './schema.ts';

/**
 * The JSON Schema file `lora init` writes beside the configs it makes (`toJSONSchema()`): editors
 * read it through the comment below, offline and matching the CLI that wrote it.
 */
export const SCHEMA_FILE = 'lora-config.schema.json';

/** The first line of a config: tells the YAML language server where the schema is. */
export const SCHEMA_COMMENT = `# yaml-language-server: $schema=./${SCHEMA_FILE}`;

const TITLES = {
  sd: 'a Stable Diffusion 1.x LoRA (images + captions)',
  llm: 'a LLaMA-family LLM LoRA (instruction data)',
} as const;

/** The keys a template sets; every other key of the task is listed commented out with its default. */
const EXAMPLES: Record<'sd' | 'llm', Partial<Record<ConfigKey, unknown>>> = {
  sd: {
    task: 'sd',
    base_model: './models/sd-v1-5-pruned.safetensors',
    train_data_dir: './data/style_train',
    metadata_path: './data/style_train/metadata.csv',
    output_dir: './output/style_lora-{timestamp}',
    lora_rank: 16,
    target_modules: ['to_q', 'to_k', 'to_v', 'to_out'],
    batch_size: 4,
    epochs: 15,
    learning_rate: 2e-4,
  },
  llm: {
    task: 'llm',
    base_model: './models/llama-3.2-1b-instruct',
    train_data: './data/train.jsonl',
    output_dir: './output/llm_lora-{timestamp}',
    lora_rank: 16,
    target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
    batch_size: 4,
    epochs: 3,
    learning_rate: 2e-4,
  },
};

const WIDTH = 100;

export interface TemplateOptions {
  /**
   * The project folder relative to the config's folder (`..` for `configs/x.yaml`): the
   * template's paths (`./data/…`, `./models/…`, `./output/…`) start there. Default `.`.
   */
  projectFolder?: string;
  /** Values in place of the template's examples, paths written from the project folder (`./data/x`); null leaves the key commented out. */
  values?: Partial<Record<ConfigKey, unknown>>;
}

/** A commented YAML starting point for a task (what `lora init` writes); it validates as it is. */
export function configTemplate(task: 'sd' | 'llm', options: TemplateOptions = {}): string {
  const fromConfig = (value: unknown) =>
    typeof value === 'string' && value.startsWith('./') && options.projectFolder
      ? `${options.projectFolder}/${value.slice(2)}`
      : value;
  const lines = [
    SCHEMA_COMMENT,
    `# Training config for ${TITLES[task]}.`,
    '# Run it with: lora train --config <this file>',
    "# Relative paths start at this file's folder. Commented-out keys show their defaults.",
  ];
  let section = '';
  for (const key of CONFIG_KEYS) {
    const info = KEY_INFO[key];
    if (info.task && info.task !== task) continue;
    if (info.section !== section) {
      section = info.section;
      lines.push('', `# --- ${section} ---`);
    }
    const schema = keySchema(key);
    const fallback = info.defaultText ? ` Default: ${info.defaultText.replaceAll('`', '')}.` : '';
    lines.push(...wrap(`${info.templateText?.[task] ?? String(schema.description)}${fallback}`));
    const example = options.values && key in options.values ? options.values[key] : EXAMPLES[task][key];
    if (example !== undefined && example !== null) lines.push(`${key}: ${yamlValue(fromConfig(example))}`);
    else lines.push(schema.default === undefined ? `# ${key}:` : `# ${key}: ${yamlValue(schema.default)}`);
  }
  return `${lines.join('\n')}\n`;
}

export function yamlValue(value: unknown): string {
  // Learning rates read better as 2e-4 than as 0.0002.
  if (typeof value === 'number' && value !== 0 && Math.abs(value) < 1e-3) return value.toExponential();
  return stringify(value, { collectionStyle: 'flow', flowCollectionPadding: false }).trimEnd();
}

/** Comment lines of at most WIDTH characters. */
function wrap(text: string): string[] {
  const lines: string[] = [];
  let line = '#';
  for (const word of text.split(' ')) {
    if (line.length + 1 + word.length > WIDTH && line !== '#') {
      lines.push(line);
      line = '#';
    }
    line += ` ${word}`;
  }
  lines.push(line);
  return lines;
}
