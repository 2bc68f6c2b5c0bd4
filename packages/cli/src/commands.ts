import type { CAC } from 'cac';
import { DEFAULT_TEMPLATE } from './label/default-template.ts';
import { stringOptions } from './options.ts';

type Options = Record<string, unknown>;

const JSON_HELP = 'Print the result as JSON';

/** Declares every command; each command's module is imported only when it runs. */
export function registerCommands(cli: CAC): void {
  cli
    .command('init [folder]', 'Start a project: a commented config, the data folders and a .gitignore')
    .option('--task <task>', 'sd (images + captions) or llm (instruction data)', { default: 'sd' })
    .option('--overwrite', 'Replace a config of the same name')
    .option('--json', JSON_HELP)
    .example('  $ lora init my-style            # configs/my_style_style_v1.yaml, data/style_train/, models/')
    .example('  $ lora init chatbot --task llm')
    .action(async (folder: string | undefined, options: Options) => {
      const { init } = await import('./commands/init.ts');
      return init(folder === undefined ? undefined : String(folder), stringOptions(options, ['task']));
    });

  cli
    .command('dataset <action> <target>', 'Check a dataset: lora dataset check <folder|config.yaml>')
    .usage('dataset check <folder|config.yaml> [options]')
    .option('--json', JSON_HELP)
    .example('  $ lora dataset check data/style_train')
    .example('  $ lora dataset check configs/my_style_v1.yaml --json')
    .action(async (action: string, target: string, options: Options) => {
      const { datasetCommand } = await import('./commands/dataset.ts');
      return datasetCommand(String(action), String(target), options);
    });

  cli
    .command('label', 'Caption images into metadata.csv (or .txt files)')
    .usage('label --input <dir> [--output <dir>/metadata.csv] [--model none] [options]')
    .option('--input <dir>', 'Folder of images (subfolders included)')
    .option('--output <file>', 'metadata.csv to write (default: <input>/metadata.csv)')
    .option('--model <model>', 'Labeller: none (captions from folder and file names)', { default: 'none' })
    .option('--template <text>', 'Caption template; {caption} is the labeller output', {
      default: DEFAULT_TEMPLATE,
    })
    .option('--format <format>', 'csv (one metadata.csv) or txt (a .txt beside each image)', {
      default: 'csv',
    })
    .option('--overwrite', 'Replace captions images already have')
    .option('--json', JSON_HELP)
    .example('  $ lora label --input data/style_train --output data/style_train/metadata.csv --model none')
    .example('  $ lora label --input data/10_neon --format txt --template "{caption}, neon style"')
    .action(async (options: Options) => {
      const { label } = await import('./commands/label.ts');
      return label(stringOptions(options, ['input', 'output', 'model', 'template', 'format']));
    });

  cli
    .command('tags <source>', 'Tag frequencies by role (core, mood, plain) and a keyword cloud')
    .option('--top <n>', 'Tags listed and drawn', { default: 50 })
    .option('--svg <file>', 'Write the keyword cloud as SVG')
    .option('--png <file>', 'Write the keyword cloud as PNG')
    .option('--json', JSON_HELP)
    .example('  $ lora tags data/style_train/metadata.csv --top 30 --svg cloud.svg --png cloud.png')
    .example('  $ lora tags data/style_train --json')
    .action(async (source: string, options: Options) => {
      const { tags } = await import('./commands/tags.ts');
      return tags(String(source), stringOptions(options, ['svg', 'png']));
    });

  cli
    .command('config <action> [file]', 'Validate a config (line:column errors) or print its JSON Schema')
    .usage('config validate <file.yaml> [--set key=value …] [--json]\n  $ lora config schema')
    .option('--set <key=value>', 'Override a key, as lora train does (repeatable)')
    .option('--json', JSON_HELP)
    .example('  $ lora config validate configs/my_style_v1.yaml --set lora_rank=8')
    .example('  $ lora config schema > lora-config.schema.json')
    .action(async (action: string, file: string | undefined, options: Options) => {
      const { configCommand } = await import('./commands/config.ts');
      return configCommand(String(action), file === undefined ? undefined : String(file), options);
    });

  cli
    .command('inspect <file>', 'Show tensors, metadata and LoRA layout of a .safetensors file')
    .option('--tensors <n>', 'Tensors listed (--json lists all)', { default: 20 })
    .option('--json', JSON_HELP)
    .example('  $ lora inspect output/style_lora/style_lora.safetensors')
    .example('  $ lora inspect models/sd-v1-5-pruned.safetensors --tensors 5')
    .action(async (file: string, options: Options) => {
      const { inspect } = await import('./commands/inspect.ts');
      return inspect(String(file), options);
    });

  cli
    .command('convert <input> <output>', 'Rewrite a LoRA in another key layout')
    .option('--to <layout>', 'kohya (A1111, ComfyUI), diffusers or peft')
    .option('--base-model <name>', 'peft: base_model_name_or_path for adapter_config.json')
    .option('--overwrite', 'Replace existing output files')
    .option('--json', JSON_HELP)
    .example('  $ lora convert pytorch_lora_weights.safetensors style_kohya.safetensors --to kohya')
    .example(
      '  $ lora convert llm_kohya.safetensors out/adapter_model.safetensors --to peft --base-model meta-llama/Llama-3.2-1B',
    )
    .action(async (input: string, output: string, options: Options) => {
      const { convert } = await import('./commands/convert.ts');
      return convert(String(input), String(output), stringOptions(options, ['to', 'baseModel']));
    });

  cli
    .command('merge', 'Merge LoRAs into a base checkpoint')
    .usage('merge --base <file> --lora <file[:strength]> [--lora …] --output <file>')
    .option('--base <file>', 'Base checkpoint (.safetensors or a sharded .index.json)')
    .option('--lora <file[:strength]>', 'LoRA to merge, with an optional strength (repeatable; default 1)')
    .option('--output <file>', 'Merged checkpoint to write')
    .option('--overwrite', 'Replace an existing output')
    .option('--json', JSON_HELP)
    .example(
      '  $ lora merge --base models/sd-v1-5.safetensors --lora style.safetensors:0.7 --lora detail.safetensors:0.3 --output merged.safetensors',
    )
    .action(async (options: Options) => {
      const { merge } = await import('./commands/merge.ts');
      return merge(stringOptions(options, ['base', 'output']));
    });
}
