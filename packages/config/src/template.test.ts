import { describe, expect, it } from 'vitest';
import { parseConfig } from './load.ts';
import { CONFIG_KEYS, KEY_INFO } from './schema.ts';
import { stringifyConfig } from './snapshot.ts';
import { configTemplate, SCHEMA_FILE } from './template.ts';

describe.each(['sd', 'llm'] as const)('configTemplate(%s)', (task) => {
  const template = configTemplate(task);

  it('validates as it is and trains its task', () => {
    const config = parseConfig(template, '/project/configs/new.yaml');
    expect(config.task).toBe(task);
    expect(config.base_model.startsWith('/project/configs/models/')).toBe(true);
  });

  it('points editors at the JSON Schema', () => {
    expect(template.split('\n')[0]).toBe(`# yaml-language-server: $schema=./${SCHEMA_FILE}`);
  });

  it.each(CONFIG_KEYS)('mentions %s only when it applies', (key) => {
    const applies = !KEY_INFO[key].task || KEY_INFO[key].task === task;
    expect(new RegExp(`^(# )?${key}:`, 'm').test(template)).toBe(applies);
  });

  it('writes learning rates the way people type them', () => {
    expect(template).toContain('learning_rate: 2e-4');
  });

  it('keeps comment lines within 100 columns', () => {
    expect(template.split('\n').filter((line) => line.length > 100 && !line.includes('$schema'))).toEqual([]);
  });
});

it('starts its paths at the project folder, and takes values in place of its examples', () => {
  const template = configTemplate('sd', {
    projectFolder: '..',
    values: { train_data_dir: './data/10_neon', metadata_path: null, lora_rank: 8 },
  });
  expect(template).toMatch(/^base_model: \.\.\/models\/sd-v1-5-pruned\.safetensors$/m);
  expect(template).toMatch(/^train_data_dir: \.\.\/data\/10_neon$/m);
  expect(template).toMatch(/^output_dir: "\.\.\/output\/style_lora-\{timestamp\}"$/m);
  expect(template).toMatch(/^# metadata_path:$/m);
  expect(template).toMatch(/^lora_rank: 8$/m);
  const config = parseConfig(template, '/project/configs/new.yaml');
  expect(config).toMatchObject({
    base_model: '/project/models/sd-v1-5-pruned.safetensors',
    train_data_dir: '/project/data/10_neon',
    lora_rank: 8,
  });
  expect(config).not.toHaveProperty('metadata_path');
});

it("speaks of each task's own outputs in its template", () => {
  const llm = configTemplate('llm');
  expect(llm).not.toMatch(/ss_output_name|suits a style/);
  expect(llm).toContain("# Titles the loss plot. The adapter keeps PEFT's fixed names");
  expect(configTemplate('sd')).toContain('(also `ss_output_name` in its metadata)');
  expect(configTemplate('sd')).toContain('8–16 suits a style');
});

describe('stringifyConfig', () => {
  it.each(['sd', 'llm'] as const)('round-trips a resolved %s config', (task) => {
    const config = parseConfig(configTemplate(task), '/project/configs/new.yaml', {
      overrides: ['max_steps=100', 'epochs=', 'warmup_ratio=0.05'],
    });
    expect(parseConfig(stringifyConfig(config), '/elsewhere/config.yaml')).toEqual(config);
  });
});
