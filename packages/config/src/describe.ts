import { type JSONSchema, toJSONSchema } from './json-schema.ts';
import type { ConfigKey } from './schema.ts';
import { KEY_INFO } from './schema.ts';

let properties: Record<string, JSONSchema> | undefined;

/** The JSON Schema of one key (built once, on first use). */
export function keySchema(key: ConfigKey): JSONSchema {
  properties ??= toJSONSchema().properties as Record<string, JSONSchema>;
  return Object.hasOwn(properties, key) ? properties[key]! : {};
}

/** The schema of the value at a key path: a key, then list indexes. */
export function schemaAt(path: readonly (string | number)[]): JSONSchema | undefined {
  let schema: JSONSchema | undefined = keySchema(path[0] as ConfigKey);
  for (const part of path.slice(1)) {
    if (typeof part !== 'number' || !schema) return undefined;
    const branches: JSONSchema[] = (schema.anyOf as JSONSchema[] | undefined) ?? [schema];
    const list: JSONSchema | undefined = branches.find((branch) => branch.type === 'array');
    const items: unknown = list?.items;
    schema = Array.isArray(items)
      ? (items[part] as JSONSchema | undefined)
      : (items as JSONSchema | undefined);
  }
  return schema;
}

/** A compact type for messages and the README: `integer 1–1024`, `sd | llm`, `path | path[]`. */
export function typeText(schema: JSONSchema, isPath = false): string {
  if (Array.isArray(schema.anyOf))
    return (schema.anyOf as JSONSchema[]).map((branch) => typeText(branch, isPath)).join(' | ');
  if (schema.const !== undefined) return String(schema.const);
  if (Array.isArray(schema.enum)) return schema.enum.join(' | ');
  switch (schema.type) {
    case 'boolean':
      return 'boolean';
    case 'string':
      return isPath ? 'path' : 'string';
    case 'integer':
    case 'number':
      return `${schema.type}${range(schema)}`;
    case 'array': {
      if (Array.isArray(schema.items))
        return `[${(schema.items as JSONSchema[]).map((item) => typeText(item, isPath)).join(', ')}]`;
      const item = typeText((schema.items as JSONSchema | undefined) ?? {}, isPath);
      return item.includes(' ') ? `(${item})[]` : `${item}[]`;
    }
    default:
      return 'value';
  }
}

function range(schema: JSONSchema): string {
  const { minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf } = schema as Record<
    string,
    number | undefined
  >;
  const step = multipleOf === undefined ? '' : ` (multiple of ${multipleOf})`;
  if (minimum !== undefined && maximum !== undefined) return ` ${minimum}–${maximum}${step}`;
  const lower =
    minimum !== undefined ? `≥ ${minimum}` : exclusiveMinimum !== undefined ? `> ${exclusiveMinimum}` : '';
  const upper =
    maximum !== undefined ? `≤ ${maximum}` : exclusiveMaximum !== undefined ? `< ${exclusiveMaximum}` : '';
  const bounds = [lower, upper].filter(Boolean).join(' and ');
  return `${bounds ? ` ${bounds}` : ''}${step}`;
}

/** The expected type of the value at a key path. */
export function expectedAt(path: readonly (string | number)[]): string {
  const key = path[0] as ConfigKey;
  const info = Object.hasOwn(KEY_INFO, key) ? KEY_INFO[key] : undefined;
  if (path.length === 1 && info?.typeText) return info.typeText;
  const schema = schemaAt(path);
  return schema ? typeText(schema, info?.path !== undefined) : 'a valid value';
}

/** How a received value reads in a message. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string')
    return value.length > 60 ? `"${value.slice(0, 57)}…"` : JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Uint8Array) return 'binary data';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}
