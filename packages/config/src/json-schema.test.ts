import { describe, expect, it } from 'vitest';
import { toJSONSchema } from './json-schema.ts';
import { CONFIG_KEYS, DEFAULTS } from './schema.ts';

describe('toJSONSchema', () => {
  const schema = toJSONSchema();
  const properties = schema.properties as Record<
    string,
    { default?: unknown; description?: string; maximum?: number }
  >;

  it('describes every key, closed to others, with the two required ones', () => {
    expect(Object.keys(properties)).toEqual(CONFIG_KEYS);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(['base_model', 'output_dir']);
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
  });

  it.each(CONFIG_KEYS)('documents %s', (key) => {
    expect(properties[key]?.description?.length).toBeGreaterThan(10);
    expect(properties[key]?.maximum).not.toBe(Number.MAX_SAFE_INTEGER);
  });

  it.each(Object.entries(DEFAULTS))('records the default of %s', (key, value) => {
    expect(properties[key]?.default).toEqual(value);
  });
});
