import type { TensorData } from '@lora/safetensors';
import { formsOf, type LoraModule, scalarOf } from './adapter.ts';
import { AdapterError } from './errors.ts';
import { VARIANTS, type VariantId } from './variants/registry.ts';
import type { LoraLayout } from './variants/variant.ts';

/** A key suffix and the role it names; `alpha` is every variant's scalar. */
export type Suffix = readonly [suffix: string, role: string];

/** Every suffix the variants use in `layout`, plus `.alpha` where the layout stores one, longest first. */
export function layoutSuffixes(layout: LoraLayout, extra: readonly Suffix[] = []): Suffix[] {
  const suffixes = new Map<string, string>(extra.map(([suffix, role]) => [suffix, role]));
  for (const variant of Object.values(VARIANTS)) {
    for (const [role, suffix] of Object.entries(variant.keys[layout] ?? {})) suffixes.set(suffix, role);
  }
  if (layout !== 'peft') suffixes.set('.alpha', 'alpha');
  return [...suffixes].sort(([a], [b]) => b.length - a.length);
}

/**
 * Groups `<module><suffix>` keys into modules, tells each module's variant from the roles it has
 * (LoRA: down and up; DoRA: also a magnitude), brings layout-specific shapes to the canonical
 * ones, and checks them. A module without alpha gets alpha = rank (scale 1), the convention of
 * every layout that omits it.
 */
export function groupModules(
  tensors: ReadonlyMap<string, TensorData>,
  layout: LoraLayout,
  suffixes: readonly Suffix[] = layoutSuffixes(layout),
): Map<string, LoraModule> {
  const parts = new Map<string, Record<string, TensorData>>();
  for (const [key, tensor] of tensors) {
    const match = suffixes.find(([suffix]) => key.endsWith(suffix) && key.length > suffix.length);
    if (match === undefined) {
      throw new AdapterError(
        'E_INVALID_LORA',
        `${JSON.stringify(key)} is not a ${layout} LoRA key (expected names ending in ${suffixes.map(([s]) => s).join(', ')})`,
      );
    }
    const [suffix, role] = match;
    const name = key.slice(0, -suffix.length);
    const entry = parts.get(name) ?? {};
    if (entry[role] !== undefined) {
      throw new AdapterError('E_INVALID_LORA', `module ${JSON.stringify(name)} has two ${role} tensors`);
    }
    entry[role] = tensor;
    parts.set(name, entry);
  }
  const modules = new Map<string, LoraModule>();
  for (const [name, { alpha, ...found }] of parts) {
    const id = variantWithRoles(name, Object.keys(found));
    const variant = VARIANTS[id];
    const roles = Object.fromEntries(
      variant.roles
        .filter((role) => found[role] !== undefined)
        .map((role) => {
          const tensor = found[role]!;
          const shape = variant.reshapeFor?.(layout, role, tensor.shape, 'read') ?? tensor.shape;
          return [role, shape === tensor.shape ? tensor : { ...tensor, shape }];
        }),
    );
    variant.checkShapes(name, roles);
    const rank = variant.rank(roles);
    modules.set(name, {
      variant: id,
      tensors: roles,
      alpha: alpha === undefined ? rank : scalarOf(`${name} alpha`, alpha),
    });
  }
  return modules;
}

/** The variant one of whose forms is exactly `roles`. */
function variantWithRoles(name: string, roles: readonly string[]): VariantId {
  const found = new Set(roles);
  const match = (Object.keys(VARIANTS) as VariantId[]).find((id) =>
    formsOf(id).some((form) => form.length === found.size && form.every((role) => found.has(role))),
  );
  if (match !== undefined) return match;
  const missing = (['down', 'up'] as const).find((role) => !found.has(role));
  throw new AdapterError(
    'E_INVALID_LORA',
    missing === undefined
      ? `module ${JSON.stringify(name)} has ${roles.join(', ')}, which no variant (${Object.values(VARIANTS)
          .map((v) => `${v.id}: ${v.roles.join(' + ')}`)
          .join('; ')}) is made of`
      : `module ${JSON.stringify(name)} has no ${missing === 'down' ? 'down (A)' : 'up (B)'} weight`,
  );
}

/** The keys a module is written with in `layout`: the variant's suffix for each role. */
export function moduleKeys(
  name: string,
  module: LoraModule,
  layout: LoraLayout,
): Array<[key: string, tensor: TensorData]> {
  const variant = VARIANTS[module.variant];
  const suffixes = variant.keys[layout];
  if (suffixes === undefined) {
    throw new AdapterError(
      'E_INVALID_LORA',
      `${name} is a ${variant.id} module, which has no ${layout} form (it has: ${Object.keys(variant.keys).join(', ')})`,
    );
  }
  return variant.roles
    .filter((role) => module.tensors[role] !== undefined)
    .map((role) => {
      const tensor = module.tensors[role]!;
      const shape = variant.reshapeFor?.(layout, role, tensor.shape, 'write') ?? tensor.shape;
      return [`${name}${suffixes[role]}`, shape === tensor.shape ? tensor : { ...tensor, shape }];
    });
}
