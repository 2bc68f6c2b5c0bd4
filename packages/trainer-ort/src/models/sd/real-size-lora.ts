/**
 * What the real-size header tests (sd15.test.ts, sd21.test.ts) check of every variant's file: an
 * SD run's modules on a header-only checkpoint, written in kohya's layout, and each module's way
 * through A1111's and ComfyUI's loaders (peer-lora-keys.ts) to a weight its update fits.
 */
import { parameterName, toKohya, VARIANTS, type VariantId } from '@lora/adapters';
import type { PredictionType } from '@lora/config';
import { Graph } from '@lora/engine';
import type { TensorInfo } from '@lora/safetensors';
import { expect } from 'vitest';
import { kohyaPaths, magnitudesAsStored, sdLoraAdapter } from './adapter.ts';
import type { SdCheckpoint } from './checkpoint.ts';
import type { SdComponent } from './keys.ts';
import { isLoconConv } from './layers.ts';
import { buildSdLoss } from './loss.ts';
import { a1111Target, comfyTargets, updateShape } from './peer-lora-keys.ts';

/** Every UNet and text-encoder (both of SDXL's) linear, and LoCon's convolutions at rank 2. */
const TARGETS = {
  unet: ['to_q', 'to_k', 'to_v', 'to_out', 'proj_in', 'proj_out', 'ff'],
  textEncoder: ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'],
  conv: { rank: 2, alpha: 1 },
};

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
