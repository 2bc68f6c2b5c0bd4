import type { CAC } from 'cac';
import { DEFAULT_TEMPLATE } from './label/default-template.ts';
import { stringOptions } from './options.ts';

type Options = Record<string, unknown>;

const JSON_HELP = 'Print the result as JSON';

/** Declares every command; each command's module is imported only when it runs. */
export function registerCommands(cli: CAC): void {
  cli
    .command('init [folder]', 'Start a project: a commented config, the data folders and a .gitignore')
    .option('--task <task>', 'sd (images + captions) or llm (instruction data); default sd')
    .option(
      '--demo',
      'Also write a tiny random model (LLaMA; SD with --task sd), its data and a config that trains in a minute on a CPU',
    )
    .option(
      '--base <family>',
      'With --task sd --demo: the tiny model architecture, sd1 (default), sd2 or sdxl',
    )
    .option('--overwrite', 'Replace a config (or demo files) of the same name')
    .option('--json', JSON_HELP)
    .example('  $ lora init my-style            # configs/my_style_v1.yaml, data/style_train/, models/')
    .example('  $ lora init chatbot --task llm')
    .example('  $ lora init demo --demo && lora train --config demo/configs/demo_demo_v1.yaml')
    .example(
      '  $ lora init shapes --task sd --demo && lora train --config shapes/configs/shapes_demo_v1.yaml',
    )
    .action(async (folder: string | undefined, options: Options) => {
      const { init } = await import('./commands/init.ts');
      return init(
        folder === undefined ? undefined : String(folder),
        stringOptions(options, ['task', 'base']),
      );
    });

  cli
    .command('train', 'Train a LoRA from a config: progress, checkpoints, and the adapter in output_dir')
    .usage('train --config <file.yaml> [--resume auto|<checkpoint>] [--set key=value …] [--overwrite]')
    .option('--config <file>', 'The training config (YAML)')
    .option(
      '--resume <auto|folder>',
      'Continue from the latest checkpoint in output_dir (auto) or from a checkpoint folder',
    )
    .option('--set <key=value>', 'Override a config key (repeatable)')
    .option(
      '--overwrite',
      'Start afresh in an output_dir that holds an earlier run (its checkpoints, logs and metrics are deleted)',
    )
    .example('  $ lora train --config configs/my_style_v1.yaml')
    .example('  $ lora train --config configs/my_style_v1.yaml --resume auto')
    .example(
      '  $ lora train --config configs/chat_llm_v1.yaml --set learning_rate=1e-4 --set output_dir=output/chat_v2',
    )
    .action(async (options: Options) => {
      const { train } = await import('./commands/train.ts');
      return train(stringOptions(options, ['config', 'resume']));
    });

  cli
    .command(
      'dataset <action> <target>',
      'Check a dataset: lora dataset check <folder|file.jsonl|config.yaml>',
    )
    .usage('dataset check <folder|file.jsonl|config.yaml> [options]')
    .option('--json', JSON_HELP)
    .example('  $ lora dataset check data/style_train')
    .example('  $ lora dataset check configs/my_style_v1.yaml --json')
    .action(async (action: string, target: string, options: Options) => {
      const { datasetCommand } = await import('./commands/dataset.ts');
      return datasetCommand(String(action), String(target), options);
    });

  cli
    .command('label', 'Caption images into metadata.csv (or .txt files)')
    .usage('label --input <dir|image> [--output <dir>/metadata.csv] [--model none|wd14|clip] [options]')
    .option('--input <dir|image>', 'Folder of images (subfolders included), or one image')
    .option(
      '--output <file>',
      "metadata.csv to write (default: metadata.csv in the input folder, or the image's)",
    )
    .option(
      '--model <model>',
      'Labeller: none (folder and file names), wd14 (ONNX tagger), clip (CLIP ranking)',
      {
        default: 'none',
      },
    )
    .option('--model-path <path>', 'wd14: the tagger model.onnx; clip: the folder of the CLIP ONNX export')
    .option('--tags <file>', 'wd14: the selected_tags.csv of the tagger')
    .option('--threshold <score>', 'wd14: keep general tags scoring above this (default 0.35)')
    .option('--character-threshold <score>', 'wd14: keep character tags scoring above this (default 0.85)')
    .option('--ratings', 'wd14: add the rating tag (general, sensitive, questionable, explicit)')
    .option('--vocab <file>', 'clip: candidate phrases, one per line under [category] headers')
    .option('--top-k <n>', 'clip: phrases kept per category (default 3)')
    .option(
      '--template <text>',
      'Caption template: {caption} core tags, {tags} other tags, {mood} mood tags',
      {
        default: DEFAULT_TEMPLATE,
      },
    )
    .option('--format <format>', 'csv (one metadata.csv) or txt (a .txt beside each image)', {
      default: 'csv',
    })
    .option('--overwrite', 'Replace captions images already have')
    .option('--dry-run', 'List the captions it would write, and write nothing')
    .option(
      '--device <device>',
      'wd14, clip: auto (default), cpu, cuda or webgpu; `lora doctor` shows what auto takes',
    )
    .option('--json', JSON_HELP)
    .example('  $ lora label --input data/style_train --output data/style_train/metadata.csv --model none')
    .example(
      '  $ lora label --input data/style_train --model wd14 --model-path models/wd14/model.onnx --tags models/wd14/selected_tags.csv',
    )
    .example(
      '  $ lora label --input data/style_train --model clip --model-path models/clip-vit-base-patch32 --top-k 2',
    )
    .example('  $ lora label --input data/10_neon --format txt --template "{caption}, neon style"')
    .example(
      '  $ lora label --input data/style_train/001.png --model wd14 --model-path models/wd14/model.onnx --tags models/wd14/selected_tags.csv --dry-run',
    )
    .action(async (options: Options) => {
      const { label } = await import('./commands/label.ts');
      return label(
        stringOptions(options, [
          'input',
          'output',
          'model',
          'modelPath',
          'tags',
          'vocab',
          'template',
          'format',
          'device',
        ]),
      );
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
    .command(
      'ui [folder]',
      'A local web app to curate captions: thumbnails, markup-aware editor, bulk tag edits',
    )
    .option('--port <port>', 'Port on 127.0.0.1 (default: a free one)')
    .option('--no-open', 'Print the address without opening a browser')
    .example('  $ lora ui my-style                 # opens the browser on the project')
    .example('  $ lora ui data/style_train --port 7870 --no-open')
    .action(async (folder: string | undefined, options: Options) => {
      const { ui } = await import('./commands/ui.ts');
      return ui(folder === undefined ? undefined : String(folder), stringOptions(options, ['port']));
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
    .command(
      'doctor',
      'What this machine offers: Node, onnxruntime providers, CUDA, WebGPU adapters, the device auto takes',
    )
    .option('--json', JSON_HELP)
    .example('  $ lora doctor')
    .action(async (options: Options) => {
      const { doctor } = await import('./commands/doctor.ts');
      return doctor(options);
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
      '  $ lora convert output/style/style.safetensors out/pytorch_lora_weights.safetensors --to diffusers',
    )
    .action(async (input: string, output: string, options: Options) => {
      const { convert } = await import('./commands/convert.ts');
      return convert(String(input), String(output), stringOptions(options, ['to', 'baseModel']));
    });

  cli
    .command('generate', 'Answer a prompt with an LLM and its LoRA adapters, streamed as it is written')
    .usage('generate --model <folder> [--adapter <folder[:strength]> …] --prompt <text> [options]')
    .option('--model <folder>', 'The base model: config.json, safetensors weights and tokenizer files')
    .option(
      '--adapter <folder[:strength]>',
      'A PEFT LoRA adapter, with an optional strength (repeatable; default 1)',
    )
    .option('--prompt <text>', 'What the user says (put into the chat template unless --raw)')
    .option('--system <text>', 'A system message before the prompt')
    .option(
      '--template <name>',
      "Chat template: chatml, llama3, alpaca or Jinja source (default: the model's own)",
    )
    .option('--raw', 'Give the prompt to the model as it is, without a chat template')
    .option('--max-new-tokens <n>', 'Most tokens to generate (default 256)')
    .option('--temperature <t>', '0 picks the most likely token (default); higher samples more freely')
    .option('--top-p <p>', 'Sample from the most likely tokens whose probabilities add up to p (default 1)')
    .option('--top-k <k>', 'Sample from the k most likely tokens (default 0: all)')
    .option('--seed <n>', 'Seed of the sampling (default 0)')
    .option('--device <device>', 'cpu (default), cuda, webgpu or auto')
    .option('--json', JSON_HELP)
    .example(
      '  $ lora generate --model models/tiny-llama --adapter output/tiny_llama_demo --prompt "Name a colour."',
    )
    .example(
      '  $ lora generate --model models/Qwen2-0.5B --adapter out/chat:0.8 --prompt "Hi" --temperature 0.7 --top-p 0.9',
    )
    .action(async (options: Options) => {
      const { generate } = await import('./commands/generate.ts');
      await generate(stringOptions(options, ['model', 'prompt', 'system', 'template', 'device']));
    });

  cli
    .command(
      'sample',
      'Text to image with an SD 1.x, 2.x or XL model and LoRAs, as a PNG with A1111 parameters',
    )
    .usage('sample --model <checkpoint.safetensors> --prompt <text> --output <file.png> [options]')
    .option(
      '--model <file>',
      'The base model: an SD 1.x, 2.x or XL single-file checkpoint (or a diffusers folder, without LoRAs)',
    )
    .option(
      '--prompt <text>',
      'A1111 prompt: (word:1.2), [word], BREAK, <lora:name:weight>; **core** and *mood* markup is ignored',
    )
    .option('--negative <text>', 'Negative prompt')
    .option(
      '--lora <file[:strength]>',
      'A LoRA to apply besides the prompt tags (repeatable; default strength 1)',
    )
    .option('--lora-dir <folder>', 'Where <lora:name> finds name.safetensors (default: the current folder)')
    .option('--tokenizer <folder>', "CLIP's tokenizer.json folder, when it is not beside the model")
    .option('--sampler <name>', 'euler, euler_a (default), ddim or dpmpp_2m (DPM++ 2M Karras)')
    .option('--steps <n>', 'Sampling steps (default 20)')
    .option('--cfg <scale>', 'Classifier-free guidance scale (default 7)')
    .option('--seed <n>', 'Seed of the noise (default 0)')
    .option('--width <px>', 'Width (default 512)')
    .option('--height <px>', 'Height (default 512)')
    .option('--clip-skip <n>', "2 takes the text encoder's penultimate layer (default 1; SDXL takes only 1)")
    .option('--device <device>', 'cpu (default), cuda, webgpu or auto')
    .option('--output <file>', 'The PNG to write')
    .option('--compare', 'Also render without the LoRAs and write both side by side: before | after')
    .option('--overwrite', 'Replace an existing output')
    .option('--json', JSON_HELP)
    .example(
      '  $ lora sample --model models/sd15.safetensors --prompt "a red circle <lora:shapes:0.8>" --lora-dir output/shapes --output red.png',
    )
    .action(async (options: Options) => {
      const { sample } = await import('./commands/sample.ts');
      await sample(
        stringOptions(options, [
          'model',
          'prompt',
          'negative',
          'loraDir',
          'tokenizer',
          'sampler',
          'device',
          'output',
        ]),
      );
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
