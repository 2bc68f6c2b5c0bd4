import { configWarnings, safeLoadConfig, toJSONSchema } from '@lora/config';
import { CliError } from '../cli-error.ts';
import { print, printJson } from '../format.ts';
import { listOption } from '../options.ts';

export interface ConfigCommandOptions {
  set?: string | string[];
  json?: boolean;
}

export async function configCommand(
  action: string,
  file: string | undefined,
  options: ConfigCommandOptions,
): Promise<number> {
  if (action === 'schema') {
    if (file !== undefined)
      throw new CliError('E_USAGE', '"lora config schema" takes no file; it prints the schema.');
    printJson(toJSONSchema());
    return 0;
  }
  if (action !== 'validate') {
    throw new CliError(
      'E_USAGE',
      `Unknown config action "${action}"; use "lora config validate <file.yaml>" or "lora config schema".`,
    );
  }
  if (file === undefined) {
    throw new CliError('E_USAGE', 'Which config? Usage: lora config validate configs/style_v1.yaml');
  }
  const result = await safeLoadConfig(file, { overrides: listOption(options.set) });
  if (!result.success) {
    if (!options.json) throw result.error;
    // A machine asked: the problems go to stdout as data, and the exit code says invalid.
    printJson({ valid: false, file, code: result.error.code, issues: result.error.issues });
    return 1;
  }
  const config = result.value;
  const warnings = configWarnings(config);
  if (options.json) {
    printJson({ valid: true, file, task: config.task, warnings, config });
    return 0;
  }
  const lines = [`${file}: valid (task ${config.task}, output ${config.output_dir})`];
  for (const warning of warnings) lines.push(`  warning ${warning.path.join('.')}: ${warning.message}`);
  print(lines.join('\n'));
  return 0;
}
