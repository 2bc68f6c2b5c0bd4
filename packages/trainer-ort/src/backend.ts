/**
 * The `ort` backend (`backend: ort` in a config): `@lora/config`'s `TrainerBackend` contract on
 * top of the models and the training loop. `task: sd` runs `trainSd`; for `task: llm` it opens the model folder, tokenizes
 * the data, builds the LLaMA graph with LoRA, runs (or resumes) the loop and writes the PEFT
 * adapter into the run folder, also when the run is stopped through the signal.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { VARIANTS } from '@lora/adapters';
import {
  configWarnings,
  type LlmConfig,
  type TrainerBackend,
  type TrainerEvent,
  type TrainingResult,
  type TrainingRun,
} from '@lora/config';
import { TextDataset, TextTokenizer } from '@lora/dataset';
import { EngineError } from '@lora/engine';
import {
  ADAPTER_CONFIG,
  ADAPTER_WEIGHTS,
  readLlamaAdapter,
  writeLlamaAdapter,
} from './models/llama/adapter.ts';
import { openLlamaCheckpoint } from './models/llama/checkpoint.ts';
import { type LlamaLoraOptions, LlamaModel } from './models/llama/model.ts';
import { TextBatches } from './models/llama/text-batches.ts';
import { trainSd } from './models/sd/train.ts';
import { CHECKPOINTS_FOLDER, latestCheckpoint } from './train/checkpoint.ts';
import { runTrainingLoop } from './train/loop.ts';
import { loopSettingsFromConfig } from './train/options.ts';
import { llamaParallelModel } from './train/parallel/llama.ts';
import { announceRunDevice } from './train/run-device.ts';
import { GRAPHS_FOLDER } from './train/step-graphs.ts';

/** Where the run folder's files are; the CLI writes the config snapshot, metrics and logs. */
const RUN_FILES = { config: 'config.yaml', metrics: 'metrics.jsonl', logs: 'logs' } as const;
/** Tokenized data, keyed by content: a resumed or repeated run skips tokenization. */
const TOKEN_CACHE = join('cache', 'tokens');

export const backend: TrainerBackend = {
  name: 'ort',
  async train(run: TrainingRun): Promise<TrainingResult> {
    const { config } = run;
    return config.task === 'sd' ? trainSd(run) : trainLlm(run, config);
  },
};

async function trainLlm(run: TrainingRun, config: LlmConfig): Promise<TrainingResult> {
  const { outputDir, logger, emit } = run;
  const checkpoint = await openLlamaCheckpoint(config.base_model);
  const { spec } = checkpoint;
  const tokenizer = await TextTokenizer.fromDir(config.base_model);
  const datasets: TextDataset[] = [];
  try {
    for (const path of config.train_data) {
      datasets.push(
        await TextDataset.build({
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
        }),
      );
    }
    const data = new TextBatches(datasets, {
      batchSize: config.batch_size,
      seed: config.seed,
      padId: tokenizer.padId,
    });
    reportData(datasets, data, config, emit, (message) => logger.info(message));

    const lora: LlamaLoraOptions = {
      targetModules: config.target_modules,
      network: config.network,
      ...(config.use_rslora ? { rslora: true } : {}),
      rank: config.lora_rank,
      alpha: config.lora_alpha,
      dropout: config.lora_dropout,
      seed: config.seed,
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

    const settings = loopSettingsFromConfig(config);
    await announceRunDevice(
      config,
      (message) => logger.info(message),
      (code, message) => emit({ type: 'warning', code, message }),
    );
    await announceResume(settings.resume, outputDir, emit, (message) => logger.info(message));

    const stepsPerEpoch = Math.ceil(data.microBatchesPerEpoch / settings.gradientAccumulationSteps);
    const totalSteps = settings.maxSteps ?? settings.epochs! * stepsPerEpoch;
    logger.info(
      `training ${totalSteps} steps (${stepsPerEpoch} per epoch, ${data.microBatchesPerEpoch} micro-batches of ${config.batch_size}, ` +
        `${settings.gradientAccumulationSteps} per step)`,
    );

    const result = await runTrainingLoop({
      ...settings,
      model,
      // Data-parallel workers (num_workers, device_ids) rebuild the same model in their processes.
      ...(settings.workers === undefined ? {} : { parallel: llamaParallelModel(config.base_model, lora) }),
      data,
      outputDir,
      signal: run.signal,
      onEvent: emit,
    }).catch((error: unknown) => {
      throw explainLoopError(error, config);
    });

    const values = new Map([...result.parameters].map(([name, tensor]) => [name, tensor.data]));
    await writeLlamaAdapter(outputDir, spec, lora, values, { baseModelNameOrPath: config.base_model });
    const done: TrainingResult = {
      stopped: result.stopped,
      step: result.step,
      epoch: result.epoch,
      adapter: join(outputDir, ADAPTER_WEIGHTS),
      adapter_config: join(outputDir, ADAPTER_CONFIG),
      config: join(outputDir, RUN_FILES.config),
      metrics: join(outputDir, RUN_FILES.metrics),
      ...(config.tensorboard ? { logs: join(outputDir, RUN_FILES.logs) } : {}),
      ...(result.checkpoint === undefined ? {} : { checkpoint: result.checkpoint }),
    };
    emit({ type: 'done', ...done });
    return done;
  } finally {
    await Promise.all(datasets.map((dataset) => dataset.close()));
    // The graphs hard-link the base weights: left behind, they would keep a deleted model's bytes on disk.
    await rm(join(outputDir, GRAPHS_FOLDER), { recursive: true, force: true });
  }
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

async function announceResume(
  resume: string | undefined,
  outputDir: string,
  emit: (event: TrainerEvent) => void,
  info: (message: string) => void,
): Promise<void> {
  if (resume === undefined) return;
  const from = resume === 'auto' ? await latestCheckpoint(outputDir) : resume;
  if (from !== undefined) {
    info(`resuming from ${from}`);
    return;
  }
  emit({
    type: 'warning',
    code: 'resume_found_nothing',
    message: `resume: auto found no checkpoint in ${join(outputDir, CHECKPOINTS_FOLDER)}, so training starts at step 0`,
  });
}

/** Loop errors that name library options get the config key a user can change instead. */
function explainLoopError(error: unknown, config: LlmConfig): unknown {
  if (EngineError.isInstance(error) && error.code === 'E_EXTERNAL_DATA_CROSS_DEVICE') {
    return new EngineError(
      error.code,
      `training cannot reach the weights of base_model ${config.base_model} from output_dir ${config.output_dir}: ${error.message}. Put output_dir on the model's drive (or move the model)`,
      { cause: error },
    );
  }
  return error;
}
