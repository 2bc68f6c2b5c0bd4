import { mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AdapterError, mergeLora } from '@lora/adapters';
import { aboutFile, CliError, FileError } from '../cli-error.ts';
import { refuseExisting, requireExisting } from '../files.ts';
import { print, printJson } from '../format.ts';
import { loraInput, readAdapterFile, requireFile } from '../lora-files.ts';
import { listOption } from '../options.ts';

export interface MergeCommandOptions {
  base?: string;
  lora?: string | string[];
  output?: string;
  overwrite?: boolean;
  json?: boolean;
}

export interface LoraSpec {
  path: string;
  multiplier: number;
}

export interface MergeCommandReport {
  base: string;
  output: string;
  loras: (LoraSpec & { modules: number })[];
}

/** A trailing `:<number>` is the strength; `C:\lora.safetensors` or `a:b.safetensors` stay paths. */
const STRENGTH = /:([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)$/i;

/**
 * The largest strength taken: A1111 users work within ±2, beyond ±10 a LoRA swamps the base, and
 * a huge one (`:1e300`) would write infinities into the merged weights.
 */
export const MAX_MERGE_STRENGTH = 10;

/**
 * `a.safetensors:0.7` → { path: 'a.safetensors', multiplier: 0.7 }; no suffix means 1. `flag`
 * names the option in errors.
 */
export function parseLoraSpec(spec: string, flag = '--lora'): LoraSpec {
  const match = STRENGTH.exec(spec);
  if (!match) {
    // `style.safetensors:abc`: a strength that is not a number, rather than a file of that name.
    const typo = /^(.+\.safetensors):([^:/\\]*)$/i.exec(spec);
    if (typo) {
      throw new CliError(
        'E_USAGE',
        `${flag} "${spec}": the strength "${typo[2]}" is not a number; write it as ${typo[1]}:0.7.`,
      );
    }
  }
  const path = match ? spec.slice(0, match.index) : spec;
  const multiplier = match ? Number(match[1]) : 1;
  if (path === '' || !Number.isFinite(multiplier)) {
    throw new CliError(
      'E_USAGE',
      `${flag} "${spec}" is not <path>[:<strength>], e.g. ${flag} style.safetensors:0.7.`,
    );
  }
  if (Math.abs(multiplier) > MAX_MERGE_STRENGTH) {
    throw new CliError(
      'E_USAGE',
      `${flag} "${spec}": strength ${multiplier} is outside −${MAX_MERGE_STRENGTH} to ${MAX_MERGE_STRENGTH}; A1111 users merge at 0.3–1.5, and much more overflows the merged weights.`,
    );
  }
  return { path, multiplier };
}

function required(value: string | undefined, option: string): string {
  if (typeof value !== 'string' || value === '') {
    throw new CliError(
      'E_USAGE',
      `${option} is required: lora merge --base model.safetensors --lora a.safetensors:0.7 --output merged.safetensors`,
    );
  }
  return value;
}

/**
 * Merges LoRAs into a base checkpoint one after the other. Intermediate results go to a temporary
 * file, so the output appears only when every LoRA has merged.
 */
export async function mergeFiles(options: MergeCommandOptions): Promise<MergeCommandReport> {
  const base = required(options.base, '--base');
  const output = required(options.output, '--output');
  const specs = listOption(options.lora);
  if (specs.length === 0) required(undefined, '--lora');
  const loras = specs.map((spec) => parseLoraSpec(spec));
  requireExisting([base, ...loras.map((lora) => lora.path)]);
  await requireFile(
    base,
    '--base takes one checkpoint file: a .safetensors file, or the ….safetensors.index.json of a sharded one',
  );
  const files = await Promise.all(
    loras.map((lora) =>
      loraInput(
        lora.path,
        '--lora takes a LoRA .safetensors file, or a PEFT adapter folder holding adapter_model.safetensors',
      ),
    ),
  );
  refuseExisting([output], options.overwrite);
  await mkdir(dirname(output), { recursive: true });
  const partial = `${output}.partial-merge`;
  const merged: MergeCommandReport['loras'] = [];
  try {
    for (const [index, lora] of loras.entries()) {
      const from = index === 0 ? base : partial;
      const to = index === loras.length - 1 ? output : partial;
      // Read here, so a broken LoRA is named as the LoRA and anything else as the base.
      const { adapter } = await readAdapterFile(files[index]!);
      const report = await aboutFile(base, async () => {
        try {
          return await mergeLora(from, adapter, { output: to, multiplier: lora.multiplier });
        } catch (error) {
          if (!(error instanceof Error)) throw error;
          // The temporary file means nothing to the user: name the base it came from.
          error.message = error.message.replaceAll(partial, `${base} (after the LoRAs before it)`);
          // A module that fits no weight is about the pair: name the LoRA, and the base if not yet named.
          if (AdapterError.isInstance(error) && error.code === 'E_MERGE_MISMATCH') {
            const pair = error.message.includes(base) ? lora.path : `${lora.path} does not fit ${base}`;
            throw new FileError(error.code, `${pair}: ${error.message}`, { cause: error });
          }
          throw error;
        }
      });
      merged.push({ ...lora, modules: report.size });
    }
  } finally {
    await rm(partial, { force: true });
  }
  return { base, output, loras: merged };
}

export async function merge(options: MergeCommandOptions): Promise<number> {
  const report = await mergeFiles(options);
  if (options.json) {
    printJson(report);
  } else {
    const lines = report.loras.map((lora) => `  ${lora.path} ×${lora.multiplier}: ${lora.modules} modules`);
    print([`${report.output}: ${report.base} with`, ...lines].join('\n'));
  }
  return 0;
}
