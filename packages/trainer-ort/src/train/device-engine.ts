/**
 * The WebGPU engine: the LoRA values, the optimizer state and the step's gradient sums stay in GPU
 * memory for the whole run (onnxruntime-node keeps WebGPU outputs on the device and takes them
 * back as inputs of any session on it). Per micro-batch only the batch goes up and the loss comes
 * down; per step Σ g² comes down (the loop's clipping and finiteness check) and the scalars go up;
 * the update graph runs on the device. The values reach the host only for checkpoints and the
 * result. The CUDA provider has no such binding in Node.js, so CUDA runs keep the host engine.
 */
import { join } from 'node:path';
import { LORA_DROPOUT_SEED } from '@lora/adapters';
import { add, Graph, type HostTensor, hostTensor, identity, mul, reduceSum, writeModel } from '@lora/engine';
import { type DeviceTensor, Session } from '../session.ts';
import { dropoutSeedFeed, type GradientEngine, type LocalEngineSettings, type StepSums } from './engine.ts';
import { GradientSessions } from './gradient-sessions.ts';
import type { TrainState } from './host-state.ts';
import type { TrainableModel } from './model.ts';
import { buildUpdateGraph, gradName, nextName, optimizerSlots, slotName } from './optimizer.ts';
import {
  GRAPHS_FOLDER,
  groupOf,
  LOSS_SCALE,
  LOSS_SUM,
  LOSS_WEIGHT,
  type TrainedParameter,
} from './step-graphs.ts';

const SQUARED_NORM = 'squared_norm';
const addend = (name: string) => `${name}.addend`;
const summed = (name: string) => `${name}.sum`;
const copied = (name: string) => `${name}.copy`;

type DeviceMap = Map<string, DeviceTensor>;

export async function openDeviceEngine<Batch>(
  model: TrainableModel<Batch>,
  settings: LocalEngineSettings,
  firstKey: string | undefined,
): Promise<GradientEngine<Batch>> {
  const folder = join(settings.outputDir, GRAPHS_FOLDER);
  const gradients = await GradientSessions.open(
    model,
    folder,
    { ...settings, device: 'webgpu', gradientsOnDevice: true },
    firstKey,
  );
  const { parameters } = gradients;
  const slots = optimizerSlots(settings.optimizer);
  const stateNames = parameters.flatMap((p) => [p.name, ...slots.map((slot) => slotName(p.name, slot))]);
  const shapes = new Map(
    parameters.flatMap((p) => [
      [p.name, p.shape],
      ...slots.map((s) => [slotName(p.name, s), p.shape] as const),
    ]),
  );
  const open = (graph: Graph, fileName: string, deviceOutputs: readonly string[]) =>
    writeModel(graph, folder, { fileName }).then((path) =>
      Session.create(path, { device: 'webgpu', deviceOutputs }),
    );
  const sessions: Session[] = [];
  try {
    const update = buildUpdateGraph(
      parameters.map((p) => ({ name: p.name, shape: p.shape, group: groupOf(p) })),
      settings.optimizer,
    );
    const graphs: [Graph, string, readonly string[]][] = [
      [update, 'update.onnx', stateNames.map(nextName)],
      [accumulateGraph(parameters), 'accumulate.onnx', parameters.map((p) => summed(gradName(p.name)))],
      [normGraph(parameters), 'norm.onnx', []],
      [copyGraph(stateNames, shapes), 'upload.onnx', stateNames.map(copied)],
      [copyGraph(stateNames, shapes), 'download.onnx', []],
    ];
    // One at a time, so that the ones opened before a failure are disposed below.
    for (const [graph, fileName, kept] of graphs) sessions.push(await open(graph, fileName, kept));
  } catch (error) {
    await Promise.all([gradients.dispose(), ...sessions.map((s) => s.dispose())]);
    throw error;
  }
  const [updateSession, accumulate, norm, upload, download] = sessions as [
    Session,
    Session,
    Session,
    Session,
    Session,
  ];

  let state: DeviceMap = new Map();
  /** The step's gradient sums, by gradient name, and its loss; absent before the first micro-batch. */
  let sums: DeviceMap | undefined;
  let loss = { lossSum: 0, weight: 0 };
  let scale = 1;
  const disposeAll = (tensors: Iterable<DeviceTensor> | undefined) => {
    for (const t of tensors ?? []) t.dispose();
  };
  const renamed = (tensors: Record<string, DeviceTensor>, name: (key: string) => string, keys: string[]) =>
    new Map(keys.map((key) => [key, tensors[name(key)]!]));

  return {
    parameters,
    precision: gradients.precision,
    stateLocation: 'device',
    async load({ values, optimizerState }: TrainState) {
      const feeds: Record<string, HostTensor> = {};
      for (const name of stateNames) {
        feeds[name] = hostTensor('float32', shapes.get(name)!, values.get(name) ?? optimizerState.get(name)!);
      }
      const { device } = await upload.runKeeping(feeds);
      disposeAll(state.values());
      state = renamed(device, copied, stateNames);
    },
    begin(stepScale) {
      // A step the loop did not update (non-finite fp16 gradients) leaves its sums behind.
      disposeAll(sums?.values());
      sums = undefined;
      loss = { lossSum: 0, weight: 0 };
      scale = stepScale;
    },
    async add(batch, epoch, index) {
      const graph = await gradients.forBatch(batch);
      const feeds: Record<string, HostTensor | DeviceTensor> = {
        ...model.feeds(batch),
        [LOSS_SCALE]: hostTensor('float32', [], Float32Array.of(scale)),
      };
      for (const p of parameters) feeds[p.name] = state.get(p.name)!;
      if (graph.dropout) feeds[LORA_DROPOUT_SEED] = dropoutSeedFeed(settings.seed, epoch, index);
      const gradNames = parameters.map((p) => gradName(p.name));
      const out = await graph.session.runKeeping(feeds, [LOSS_SUM, LOSS_WEIGHT, ...gradNames]);
      loss.lossSum += scalar(out.host[LOSS_SUM]);
      loss.weight += scalar(out.host[LOSS_WEIGHT]);
      const fresh = renamed(out.device, (key) => key, gradNames);
      if (sums === undefined) {
        sums = fresh;
        return;
      }
      const accFeeds: Record<string, DeviceTensor> = {};
      for (const name of gradNames) {
        accFeeds[name] = sums.get(name)!;
        accFeeds[addend(name)] = fresh.get(name)!;
      }
      try {
        const { device } = await accumulate.runKeeping(accFeeds);
        disposeAll(sums.values());
        sums = renamed(device, summed, gradNames);
      } finally {
        disposeAll(fresh.values());
      }
    },
    async end() {
      const feeds = Object.fromEntries(sums ?? []);
      const { host } = await norm.runKeeping(feeds);
      const squared = scalar(host[SQUARED_NORM]);
      const sum: StepSums = { ...loss, squaredNorm: () => squared };
      return { sum };
    },
    async update(scalars) {
      const feeds: Record<string, HostTensor | DeviceTensor> = { ...scalars };
      for (const [name, tensor] of state) feeds[name] = tensor;
      for (const [name, tensor] of sums!) feeds[name] = tensor;
      const { device } = await updateSession.runKeeping(feeds);
      disposeAll(state.values());
      disposeAll(sums!.values());
      sums = undefined;
      state = renamed(device, nextName, stateNames);
    },
    async state() {
      const { host } = await download.runKeeping(Object.fromEntries(state));
      const values = new Map<string, Float32Array>();
      const optimizerState = new Map<string, Float32Array>();
      for (const p of parameters) {
        values.set(p.name, host[copied(p.name)]!.data as Float32Array);
        for (const slot of slots) {
          const key = slotName(p.name, slot);
          optimizerState.set(key, host[copied(key)]!.data as Float32Array);
        }
      }
      return { values, optimizerState };
    },
    async dispose() {
      disposeAll(state.values());
      disposeAll(sums?.values());
      await Promise.all([gradients.dispose(), ...sessions.map((s) => s.dispose())]);
    },
  };
}

function scalar(t: HostTensor | undefined): number {
  return (t!.data as Float32Array)[0]!;
}

/** `<grad>` + `<grad>.addend` → `<grad>.sum` for every parameter: float32 sums in micro-batch order, as on the host. */
function accumulateGraph(parameters: readonly TrainedParameter[]): Graph {
  const graph = new Graph('accumulate');
  for (const p of parameters) {
    const name = gradName(p.name);
    const sum = graph.input(name, 'float32', p.shape);
    graph.output(add(sum, graph.input(addend(name), 'float32', p.shape)), summed(name));
  }
  return graph;
}

/** Σ g² over every gradient sum: the loop's global norm, NaN or ∞ when some gradient is. */
function normGraph(parameters: readonly TrainedParameter[]): Graph {
  const graph = new Graph('squared_norm');
  const parts = parameters.map((p) => {
    const g = graph.input(gradName(p.name), 'float32', p.shape);
    return reduceSum(mul(g, g));
  });
  graph.output(
    parts.reduce((total, part) => add(total, part)),
    SQUARED_NORM,
  );
  return graph;
}

/** `<name>` → `<name>.copy`: with device outputs it uploads the state, with host outputs it downloads it. */
function copyGraph(names: readonly string[], shapes: ReadonlyMap<string, readonly number[]>): Graph {
  const graph = new Graph('copy');
  for (const name of names)
    graph.output(identity(graph.input(name, 'float32', shapes.get(name)!)), copied(name));
  return graph;
}
