import type { TensorData } from '@lora/safetensors';
import { type LoraModule, scalarOf } from './adapter.ts';
import { AdapterError } from './errors.ts';

export type Role = 'down' | 'up' | 'alpha';

/**
 * Groups `<module><suffix>` keys into modules, checking that each has a down and an up weight
 * of compatible shapes. A module without alpha gets alpha = rank (scale 1), the convention of
 * every layout that omits it.
 */
export function groupModules(
  tensors: ReadonlyMap<string, TensorData>,
  suffixes: ReadonlyArray<readonly [string, Role]>,
  layout: string,
): Map<string, LoraModule> {
  const parts = new Map<string, Partial<Record<Role, TensorData>>>();
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
  for (const [name, { down, up, alpha }] of parts) {
    if (down === undefined || up === undefined) {
      throw new AdapterError(
        'E_INVALID_LORA',
        `module ${JSON.stringify(name)} has no ${down === undefined ? 'down (A)' : 'up (B)'} weight`,
      );
    }
    checkShapes(name, down, up);
    const rank = down.shape[0]!;
    modules.set(name, { down, up, alpha: alpha === undefined ? rank : scalarOf(`${name} alpha`, alpha) });
  }
  return modules;
}

/** down `[r, in]` or `[r, in, k, k]`; up `[out, r]` or `[out, r, 1, 1]`. */
export function checkShapes(name: string, down: TensorData, up: TensorData): void {
  const rank = down.shape[0];
  const upOk =
    up.shape[1] === rank &&
    (up.shape.length === 2 || (up.shape.length === 4 && up.shape[2] === 1 && up.shape[3] === 1));
  if (rank === undefined || rank === 0 || (down.shape.length !== 2 && down.shape.length !== 4) || !upOk) {
    throw new AdapterError(
      'E_INVALID_LORA',
      `module ${JSON.stringify(name)} has down [${down.shape.join(', ')}] and up [${up.shape.join(', ')}]; ` +
        'expected down [r, in] or [r, in, k, k] and up [out, r] or [out, r, 1, 1]',
    );
  }
}
