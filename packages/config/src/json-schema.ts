import * as z from 'zod';
import { configSchema } from './schema.ts';

/** A JSON Schema (draft-07, the dialect the YAML language server reads best) as a plain object. */
export type JSONSchema = { [key: string]: unknown };

/**
 * The JSON Schema of the config file, generated from the zod schema: editors use it to complete and
 * check the YAML (`# yaml-language-server: $schema=…`). Rules that span keys are checked only by
 * `loadConfig`.
 */
export function toJSONSchema(): JSONSchema {
  return z.toJSONSchema(configSchema, {
    target: 'draft-7',
    io: 'input',
    override: ({ jsonSchema }) => {
      // z.int() adds the safe-integer bounds; they say nothing to a user and clutter completions.
      if (jsonSchema.maximum === Number.MAX_SAFE_INTEGER) delete jsonSchema.maximum;
      if (jsonSchema.minimum === Number.MIN_SAFE_INTEGER) delete jsonSchema.minimum;
    },
  }) as JSONSchema;
}
