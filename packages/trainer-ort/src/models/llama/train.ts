/**
 * The LLaMA family (LLaMA, Qwen2, Mistral): a Hugging Face model folder, instruction or text data
 * tokenized with the model's own tokenizer and chat template, a PEFT adapter in the run folder.
 */
import { join } from 'node:path';
import { VARIANTS } from '@lora/adapters';
import { configWarnings, type LlmConfig, type TrainerEvent, type TrainingRun } from '@lora/config';
import { TextDataset, type TextDatasetOptions, TextTokenizer } from '@lora/dataset';
import type { ModelFamily, PreparedRun } from '../../train/run.ts';
import { memoryOptions } from '../memory.ts';
import { ModelError } from '../model-error.ts';
import {
  ADAPTER_CONFIG,
  ADAPTER_WEIGHTS,
  llamaLoraAdapter,
  readLlamaAdapter,
  writeLlamaAdapter,
} from './adapter.ts';
import { openLlamaCheckpoint } from './checkpoint.ts';
import { type LlamaBatch, type LlamaLoraOptions, LlamaModel } from './model.ts';
import { llamaParallelModel } from './parallel.ts';
import { writeTextSamples } from './samples.ts';
import { TextBatches } from './text-batches.ts';

/** Tokenized data, keyed by content: a resumed or repeated run skips tokenization. */
const TOKEN_CACHE = join('cache', 'tokens');

export const llamaFamily: ModelFamily = {
  task: 'llm',
  prepare: (run) => {
    if (run.config.task !== 'llm') {
      throw new ModelError(
        'E_MODEL_CONFIG',
        `the LLaMA family trains task: llm, the config says task: ${run.config.task}`,
      );
    }
    const network = VARIANTS[run.config.network];
    if (network.keys.peft === undefined) {
      const peft = Object.values(VARIANTS).filter((v) => v.keys.peft !== undefined);
      throw new ModelError(
        'E_MODEL_CONFIG',
        `network: ${network.id} has no PEFT form, which LLM adapters are written in; use network: ${peft.map((v) => v.id).join(' or ')}`,
      );
    }
    return prepareLlama(run, run.config);
  },
};

async function prepareLlama(run: TrainingRun, config: LlmConfig): Promise<PreparedRun<LlamaBatch>> {
  const { outputDir, logger, emit } = run;
  const checkpoint = await openLlamaCheckpoint(config.base_model);
  const { spec } = checkpoint;
  const tokenizer = await TextTokenizer.fromDir(config.base_model);
  const datasets: TextDataset[] = [];
  const validationSets: TextDataset[] = [];
  const close = async () => {
    await Promise.all([...datasets, ...validationSets].map((dataset) => dataset.close()));
  };
  const build = (path: string, split?: TextDatasetOptions['split']) =>
    TextDataset.build({
      path,
      tokenizer,
      format: config.dataset_format,
      ...(config.template === 'auto' ? {} : { template: config.template }),
      maxSeqLen: config.max_seq_len,
      trainOnPrompt: config.train_on_prompt,
      packing: config.packing,
      batchSize: config.batch_size,
      seed: config.seed,
      cacheDir: join(outputDir, TOKEN_CACHE),
      ...(split ? { split } : {}),
    });
  const batches = (from: readonly TextDataset[]) =>
    new TextBatches(from, { batchSize: config.batch_size, seed: config.seed, padId: tokenizer.padId });
  try {
    const fraction = config.validation_split;
    const split = (part: 'train' | 'validation') =>
      fraction === undefined ? undefined : { fraction, seed: config.seed, part };
    for (const path of config.train_data) {
      datasets.push(await build(path, split('train')));
      if (fraction !== undefined) validationSets.push(await build(path, split('validation')));
    }
    for (const path of config.validation_data ?? []) validationSets.push(await build(path));
    const data = batches(datasets);
    reportData(datasets, data, config, emit, (message) => logger.info(message));

    const lora: LlamaLoraOptions = {
      targetModules: config.target_modules,
      network: config.network,
      ...(config.use_rslora ? { rslora: true } : {}),
      rank: config.lora_rank,
      alpha: config.lora_alpha,
      dropout: config.lora_dropout,
      seed: config.seed,
      memory: memoryOptions(config),
    };
    if (config.init_adapter !== undefined) {
      lora.initial = await readLlamaAdapter(config.init_adapter, spec, lora);
      logger.info(`starting from the adapter ${config.init_adapter}`);
    }
    const model = new LlamaModel(checkpoint, lora);
    const trained = [...model.loraShapes().values()].reduce(
      (sum, shape) => sum + shape.reduce((a, b) => a * b, 1),
      0,
    );
    logger.info(
      `model: ${spec.architecture}, ${spec.numLayers} layers, hidden ${spec.hiddenSize}, vocabulary ${spec.vocabSize}; ` +
        `${VARIANTS[config.network].name}${config.use_rslora ? ' (rsLoRA scale)' : ''} rank ${config.lora_rank} on ${model.targets.join(', ')}: ${trained.toLocaleString('en-US')} trainable parameters`,
    );
    return {
      model,
      data,
      // Data-parallel workers (num_workers, device_ids) rebuild the same model in their processes.
      parallel: llamaParallelModel(config.base_model, lora),
      async writeAdapter({ values }, folder) {
        await writeLlamaAdapter(folder, spec, lora, values, { baseModelNameOrPath: config.base_model });
        return { adapter: join(folder, ADAPTER_WEIGHTS), adapter_config: join(folder, ADAPTER_CONFIG) };
      },
      ...(validationSets.length === 0
        ? {}
        : {
            validation: {
              model: new LlamaModel(checkpoint, { ...lora, dropout: 0 }),
              data: batches(validationSets),
              description: describeValidation(validationSets, fraction !== undefined),
            },
          }),
      close,
      async sample(prompts, values, folder, name) {
        if (lora.network !== 'lora') {
          emit({
            type: 'warning',
            code: 'sample_skipped',
            message: `samples are generated with plain LoRA adapters; this run trains network: ${lora.network}, so it writes none`,
          });
          return [];
        }
        const adapter = llamaLoraAdapter(spec, lora, values);
        const prompt = config.template === 'auto' ? {} : { template: config.template };
        return [await writeTextSamples(checkpoint, tokenizer, adapter, prompts, { folder, name, prompt })];
      },
      memory: {
        dims: { batch: config.batch_size, seq: config.max_seq_len },
        modelWith: (memory) => new LlamaModel(checkpoint, { ...lora, memory }),
      },
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The validation data in a log line: records, sequences and the tokens its loss is over. */
function describeValidation(datasets: readonly TextDataset[], heldOut: boolean): string {
  const sum = (key: 'records' | 'sequences' | 'learnedTokens') =>
    datasets.reduce((total, dataset) => total + dataset.stats[key], 0);
  return `${sum('records')} ${heldOut ? 'held-out ' : ''}records (${sum('sequences')} sequences, ${sum('learnedTokens')} learned tokens)`;
}

function reportData(
  datasets: readonly TextDataset[],
  data: TextBatches,
  config: LlmConfig,
  emit: (event: TrainerEvent) => void,
  info: (message: string) => void,
): void {
  const sum = (key: 'records' | 'truncated' | 'skipped' | 'tokens' | 'learnedTokens') =>
    datasets.reduce((total, dataset) => total + dataset.stats[key], 0);
  const records = sum('records');
  info(
    `data: ${records} records → ${data.sequences} sequences, ${sum('tokens')} tokens (${sum('learnedTokens')} learned)`,
  );
  const truncated = sum('truncated');
  const skipped = sum('skipped');
  if (truncated > 0) {
    emit({
      type: 'warning',
      code: 'dataset_truncated',
      message:
        `${truncated} of ${records} records are longer than max_seq_len (${config.max_seq_len} tokens) and were cut to it` +
        `${skipped > 0 ? `; ${skipped} of them had no response left and are not trained on` : ''}. Raise max_seq_len if the model's context allows, or shorten those records`,
    });
  }
  const before = new Set(configWarnings(config).map((w) => w.message));
  for (const warning of configWarnings(config, { datasetSize: data.sequences })) {
    if (!before.has(warning.message)) emit({ type: 'warning', code: warning.code, message: warning.message });
  }
}
