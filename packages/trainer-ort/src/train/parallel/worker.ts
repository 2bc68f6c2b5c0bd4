/**
 * The main function of a worker process: rebuild the model from its recipe, open the gradients
 * session on this worker's device, then for each step sum the gradients of the shards it is sent
 * and return the sums. The worker holds no training state of its own, so it can die at any time
 * without losing anything the parent's last checkpoint does not have.
 */

import { LORA_DROPOUT_SEED } from '@lora/adapters';
import { type HostTensor, hostTensor } from '@lora/engine';
import { dropoutSeedFeed, gradientOutputs, parameterFeeds } from '../engine.ts';
import { GradientSum } from '../gradient-sum.ts';
import type { TrainableModel } from '../model.ts';
import { type GradientsSession, LOSS_SCALE, openGradientsSession } from '../step-graphs.ts';
import type { FromWorker, InitMessage, ToWorker } from './protocol.ts';
import { modelFromRecipe } from './recipe.ts';

interface Loaded {
  init: InitMessage;
  model: TrainableModel<unknown>;
  gradients: GradientsSession;
  outputs: string[];
}

interface Step {
  feeds: Record<string, HostTensor>;
  sum: GradientSum;
  seconds: number;
}

/** Runs until the parent sends `close` or goes away. Only a process the training loop spawned calls this. */
export function runTrainingWorker(): void {
  const send = process.send?.bind(process);
  if (!send) {
    throw new Error(
      'runTrainingWorker: this process has no IPC channel; worker processes are started by runTrainingLoop',
    );
  }
  // Ctrl-C reaches the whole process group; the parent finishes its step and closes the workers.
  process.on('SIGINT', () => {});
  // Never outlive the parent: its death closes the channel.
  process.on('disconnect', () => process.exit(1));

  let loaded: Loaded | undefined;
  let step: Step | undefined;
  const handle = async (message: ToWorker): Promise<void> => {
    switch (message.type) {
      case 'init': {
        const model = await modelFromRecipe(message.recipe);
        const gradients = await openGradientsSession(model, message.folder, {
          device: message.device,
          mixedPrecision: message.mixedPrecision,
          copyExternalData: message.copyExternalData,
          ...(message.threads === undefined ? {} : { threads: message.threads }),
          onNotice: (notice) => send({ type: 'notice', message: notice } satisfies FromWorker),
        });
        loaded = { init: message, model, gradients, outputs: gradientOutputs(gradients.parameters) };
        send({
          type: 'ready',
          parameters: gradients.parameters.map((p) => ({
            name: p.name,
            shape: [...p.shape],
            ...(p.group === undefined ? {} : { group: p.group }),
            initial: p.initial,
          })),
          precision: gradients.precision,
          device: gradients.session.device,
        } satisfies FromWorker);
        return;
      }
      case 'begin': {
        const { parameters } = loaded!.gradients;
        step = {
          feeds: {
            ...parameterFeeds(parameters, new Map(Object.entries(message.values))),
            [LOSS_SCALE]: hostTensor('float32', [], Float32Array.of(message.scale)),
          },
          sum: new GradientSum(parameters),
          seconds: 0,
        };
        return;
      }
      case 'shard': {
        const { model, gradients, outputs, init } = loaded!;
        const started = performance.now();
        const feeds: Record<string, HostTensor> = { ...model.feeds(message.batch), ...step!.feeds };
        if (gradients.dropout) {
          feeds[LORA_DROPOUT_SEED] = dropoutSeedFeed(init.seed, message.epoch, message.index, init.worker);
        }
        step!.sum.add(await gradients.session.run(feeds, outputs));
        step!.seconds += (performance.now() - started) / 1000;
        return;
      }
      case 'end': {
        const { sum, seconds } = step!;
        send({
          type: 'sums',
          lossSum: sum.lossSum,
          weight: sum.weight,
          sums: Object.fromEntries(sum.sums),
          seconds,
        } satisfies FromWorker);
        return;
      }
    }
  };

  let failed = false;
  const fail = (error: unknown): void => {
    failed = true;
    const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
    const report: FromWorker = {
      type: 'failed',
      message: error instanceof Error ? error.message : String(error),
      ...(typeof code === 'string' ? { code } : {}),
    };
    // Exit once the message is out, so the parent hears the reason before the exit.
    send(report, undefined, undefined, () => process.exit(1));
  };
  let queue = Promise.resolve();
  process.on('message', (message: ToWorker) => {
    // Nothing pending matters once the parent closes: exit without waiting for the queue.
    if (message.type === 'close') process.exit(0);
    queue = queue.then(() => (failed ? undefined : handle(message))).catch(fail);
  });
}
