/**
 * What the real-size header tests (sd15.test.ts, sd21.test.ts, sdxl.test.ts) share: the graphs of
 * a run built off a header-only checkpoint and the tensors they read; every variant's file for an
 * SD run's modules, written in kohya's layout, and each module's way through A1111's and
 * ComfyUI's loaders (peer-lora-keys.ts) to a weight its update fits.
 */
import { parameterName, toKohya, VARIANTS, type VariantId } from '@lora/adapters';
import type { PredictionType } from '@lora/config';
import { Graph } from '@lora/engine';
import type { TensorInfo } from '@lora/safetensors';
import { expect } from 'vitest';
import { kohyaPaths, magnitudesAsStored, sdLoraAdapter } from './adapter.ts';
import type { SdCheckpoint, WeightFile } from './checkpoint.ts';
import type { SdComponent } from './keys.ts';
import { isLoconConv } from './layers.ts';
import { buildSdLoss } from './loss.ts';
import { a1111Target, comfyTargets, updateShape } from './peer-lora-keys.ts';
import { buildVaeEncoder } from './vae.ts';

/** Every UNet and text-encoder (both of SDXL's) linear, and LoCon's convolutions at rank 2. */
const TARGETS = {
  unet: ['to_q', 'to_k', 'to_v', 'to_out', 'proj_in', 'proj_out', 'ff'],
  textEncoder: ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'],
  conv: { rank: 2, alpha: 1 },
};

/**
 * The loss graph of a run on `checkpoint` at `side` px (LoRA rank 4 on `lora`'s modules) and its
 * VAE encoder graph, built off the checkpoint's header.
 */
export function buildRunGraphs(
  checkpoint: SdCheckpoint,
  side: number,
  prediction: PredictionType,
  lora: { unet: string[]; textEncoder: string[] },
) {
  const graph = new Graph('sd_loss');
  const built = buildSdLoss(graph, checkpoint, {
    latentSize: [side / 8, side / 8],
    text: 'ids',
    prediction,
    lora: { rank: 4, alpha: 4, ...lora },
  });
  const vae = new Graph('vae');
  vae.output(
    buildVaeEncoder(
      { checkpoint, component: 'vae' },
      checkpoint.config.vae,
      vae.input('image', 'float32', ['batch', 3, side, side]),
    ),
    'latents',
  );
  return { graph, built, vae };
}

/** The frozen weights of `graphs`: external data, at byte offsets of the checkpoint file. */
export const externalData = (...graphs: Graph[]) =>
  graphs
    .flatMap((graph) => [...graph.initializers.values()])
    .flatMap((d) => (d.kind === 'external' ? [d] : []));

/** Whether the external-data offset lies in tensor `info`'s bytes. */
export const contains = (file: WeightFile, info: TensorInfo, offset: number) =>
  offset >= file.dataStart + info.byteOffset && offset < file.dataStart + info.byteOffset + info.byteLength;

/** The tensors of `file` whose key matches `models` that no external data of `graphs` reads. */
export function unreadTensors(file: WeightFile, models: RegExp, ...graphs: Graph[]): string[] {
  const read = new Set(
    externalData(...graphs).map((d) => [...file.tensors].find(([, i]) => contains(file, i, d.offset))![0]),
  );
  return [...file.tensors.keys()].filter((k) => !read.has(k) && models.test(k));
}

/**
 * The kohya file of `network` for every module an SD run trains (named as training names them:
 * SDXL's UNet by its LDM paths): tensor shapes by module, by suffix.
 */
export function kohyaModules(
  checkpoint: SdCheckpoint,
  network: VariantId,
  prediction: PredictionType,
): Map<string, Map<string, readonly number[]>> {
  const built = buildSdLoss(new Graph('sd_loss'), checkpoint, {
    latentSize: [8, 8],
    text: 'ids',
    prediction,
    lora: {
      rank: 4,
      alpha: 4,
      ...TARGETS,
      ...(checkpoint.config.textEncoder2 ? { textEncoder2: TARGETS.textEncoder } : {}),
    },
  });
  // The variant's tensors for each module as an SD run declares them (DoRA per input column).
  const rankOf = (path: string) => (isLoconConv(path) ? TARGETS.conv.rank : 4);
  const parameters = built.lora.flatMap((m) => {
    const path = `${m.component}.${m.path}`;
    const [down, up] = m.layer.parameters;
    const weightShape = [up!.shape[0]!, ...down!.shape.slice(1)];
    return VARIANTS[network]
      .parameters(weightShape, { rank: rankOf(path), alpha: 1, normAxis: 'input' })
      .map((spec) => ({ name: parameterName(path, network, spec.role), shape: spec.shape }));
  });
  const values = new Map(
    parameters.map((p) => [p.name, new Float32Array(p.shape.reduce((a, b) => a * b, 1))]),
  );
  const adapter = magnitudesAsStored(
    sdLoraAdapter(parameters, values, (path) => ({ network, rank: rankOf(path), alpha: 1 })),
    (path) => {
      const dot = path.indexOf('.');
      return checkpoint.storedShape(path.slice(0, dot) as SdComponent, `${path.slice(dot + 1)}.weight`);
    },
  );
  const modules = new Map<string, Map<string, readonly number[]>>();
  for (const [key, tensor] of toKohya(kohyaPaths(adapter, built.lora))) {
    const dot = key.indexOf('.');
    const entry = modules.get(key.slice(0, dot)) ?? new Map<string, readonly number[]>();
    entry.set(key.slice(dot + 1), tensor.shape);
    modules.set(key.slice(0, dot), entry);
  }
  return modules;
}

/** A1111's and ComfyUI's ways from a kohya module name to a checkpoint weight's shape. */
export interface PeerLoaders {
  a1111(name: string, tensors: ReadonlyMap<string, TensorInfo>): readonly number[] | undefined;
  comfy(tensors: ReadonlyMap<string, TensorInfo>): ReadonlyMap<string, readonly number[]>;
}

/** SD 1.x and 2.x (SDXL has its own, `a1111SdxlTarget` and `comfySdxlTargets`). */
export const SD_PEER_LOADERS: PeerLoaders = { a1111: a1111Target, comfy: comfyTargets };

/**
 * Each module reaches the same weight through A1111's and through ComfyUI's key mapping, has a
 * scalar alpha, and holds an update of that weight's shape.
 */
export function expectPeersLoad(
  modules: ReadonlyMap<string, ReadonlyMap<string, readonly number[]>>,
  tensors: ReadonlyMap<string, TensorInfo>,
  network: VariantId,
  peers: PeerLoaders = SD_PEER_LOADERS,
): void {
  const comfy = peers.comfy(tensors);
  for (const [name, shapes] of modules) {
    const weight = peers.a1111(name, tensors);
    expect(weight, `${name} (A1111)`).toBeDefined();
    expect(comfy.get(name), `${name} (ComfyUI)`).toEqual(weight);
    expect(shapes.get('alpha'), name).toEqual([]);
    expect(updateShape(network, shapes, weight!), name).toBe(true);
  }
}
