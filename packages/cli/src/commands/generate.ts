import { TextTokenizer } from '@lora/dataset';
import { CliError } from '../cli-error.ts';
import { print, printJson } from '../format.ts';
import { deviceOption, listOption, numberOption } from '../options.ts';
import { parseLoraSpec } from './merge.ts';

export interface GenerateCommandOptions {
  model?: string;
  adapter?: string | string[];
  prompt?: string;
  system?: string;
  template?: string;
  raw?: boolean;
  maxNewTokens?: number | string;
  temperature?: number | string;
  topP?: number | string;
  topK?: number | string;
  seed?: number | string;
  device?: string;
  json?: boolean;
}

export interface GenerateReport {
  model: string;
  adapters: { path: string; strength: number }[];
  /** The text the model was given (the prompt in its chat template, unless --raw). */
  input: string;
  text: string;
  tokens: number;
  /** `stop`: an end-of-turn or end-of-text token; `length`: --max-new-tokens. */
  finish: 'stop' | 'length';
}

/**
 * Answers a prompt with a LLaMA-family model and zero or more PEFT LoRA adapters, streaming the
 * text as it is generated (or printing one JSON report with --json).
 */
export async function generate(options: GenerateCommandOptions): Promise<GenerateReport> {
  const { model, prompt } = options;
  if (!model || prompt === undefined) {
    throw new CliError(
      'E_USAGE',
      'lora generate needs --model <folder> and --prompt <text>, e.g. lora generate --model models/tiny-llama --adapter output/run --prompt "Name a colour."',
    );
  }
  const maxNewTokens = numberOption(
    options.maxNewTokens,
    '--max-new-tokens',
    256,
    (n) => Number.isInteger(n) && n >= 1,
    'give a whole number ≥ 1',
  );
  const temperature = numberOption(
    options.temperature,
    '--temperature',
    0,
    (n) => n >= 0,
    'give 0 (greedy) or more',
  );
  const topP = numberOption(options.topP, '--top-p', 1, (n) => n > 0 && n <= 1, 'give a number in (0, 1]');
  const topK = numberOption(
    options.topK,
    '--top-k',
    0,
    (n) => Number.isInteger(n) && n >= 0,
    'give a whole number ≥ 0 (0 keeps all)',
  );
  const seed = numberOption(options.seed, '--seed', 0, Number.isSafeInteger, 'give a whole number');
  const device = deviceOption(options.device);
  const specs = listOption(options.adapter).map((spec) => parseLoraSpec(spec, '--adapter'));

  const { LlamaGenerator, openLlamaCheckpoint, readPeftAdapter, renderPrompt, stopIdsOf } = await import(
    '@lora/trainer-ort'
  );
  const checkpoint = await openLlamaCheckpoint(model);
  const tokenizer = await TextTokenizer.fromDir(model);
  const { text: input, ids } = renderPrompt(tokenizer, prompt, {
    ...(options.template === undefined ? {} : { template: options.template }),
    ...(options.system === undefined ? {} : { system: options.system }),
    ...(options.raw ? { raw: true } : {}),
  });
  const adapters = await Promise.all(
    specs.map(async ({ path, multiplier }) => ({
      adapter: (await readPeftAdapter(path, 'adapter')).adapter,
      strength: multiplier,
      name: path,
    })),
  );
  const stopIds = stopIdsOf(tokenizer);

  const generator = await LlamaGenerator.open(checkpoint, adapters, {
    device,
  });
  const answer: number[] = [];
  let shown = '';
  try {
    for await (const id of generator.generate(ids, {
      maxNewTokens,
      temperature,
      topP,
      topK,
      seed,
      stopIds,
    })) {
      answer.push(id);
      if (options.json) continue;
      const text = tokenizer.decode(answer, true);
      // A byte-level token may end inside a character; wait for the rest of it.
      if (text.endsWith('\uFFFD')) continue;
      process.stdout.write(text.slice(shown.length));
      shown = text;
    }
  } finally {
    await generator.dispose();
  }
  const report: GenerateReport = {
    model,
    adapters: specs.map(({ path, multiplier }) => ({ path, strength: multiplier })),
    input,
    text: tokenizer.decode(answer, true),
    tokens: answer.length,
    finish: answer.length < maxNewTokens ? 'stop' : 'length',
  };
  if (options.json) printJson(report);
  else print(report.text.slice(shown.length));
  return report;
}
