/**
 * What the SD golden tests share: a copy of a reference's weights in a folder of its own (the
 * graphs go beside it, as onnxruntime wants external data), graphs run there on the CPU, and the
 * loss graph fed the reference's inputs and LoRA factors, its gradients checked one by one.
 */
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Graph, gradients, type HostTensor, hostTensor, type Tensor, writeModel } from '@lora/engine';
import { expect } from 'vitest';
import { Session } from '../../session.ts';
import { relativeError } from '../../testing.ts';
import { type OpenedSdCheckpoint, openSdCheckpoint } from './checkpoint.ts';
import type { SdModelConfig } from './config.ts';
import { FIXTURES, type GoldenCore } from './golden-fixture.ts';
import type { SdLoss } from './loss.ts';

export const f32 = (shape: readonly number[], values: readonly number[]): HostTensor =>
  hostTensor('float32', shape, Float32Array.from(values));
export const i64 = (shape: readonly number[], values: readonly number[]): HostTensor =>
  hostTensor('int64', shape, BigInt64Array.from(values.map(BigInt)));
export const floats = (t: HostTensor | undefined): Float32Array => t!.data as Float32Array;

/** Every LoRA target of the references: all UNet and text-encoder linears. */
export const GOLDEN_LORA_TARGETS = {
  unet: ['to_q', 'to_k', 'to_v', 'to_out', 'proj_in', 'proj_out', 'ff'],
  textEncoder: ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'],
};

/** A fixture's weights copied into a temporary folder and opened; graphs run beside them. */
export class GoldenModel {
  private runs = 0;

  private constructor(
    /** The temporary folder: the weights' copy, the graphs, whatever else a test puts beside them. */
    readonly folder: string,
    readonly opened: OpenedSdCheckpoint,
  ) {}

  static async open(fixture: string, config: SdModelConfig): Promise<GoldenModel> {
    const folder = await mkdtemp(join(tmpdir(), 'sd-golden-'));
    await copyFile(join(FIXTURES, fixture), join(folder, 'model.safetensors'));
    return new GoldenModel(folder, await openSdCheckpoint(join(folder, 'model.safetensors'), config));
  }

  get checkpoint(): OpenedSdCheckpoint['checkpoint'] {
    return this.opened.checkpoint;
  }

  /** `graph` once, single-threaded at basic optimisation (so tests see this package's graph). */
  async run(graph: Graph, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
    const path = await writeModel(graph, this.folder, { fileName: `m${this.runs++}.onnx` });
    const session = await Session.create(path, { device: 'cpu', threads: 1, optimization: 'basic' });
    try {
      return await session.run(feeds);
    } finally {
      await session.dispose();
    }
  }

  async close(): Promise<void> {
    await this.opened.close();
    await rm(this.folder, { recursive: true, force: true });
  }
}

/** A LoRA factor of the loss graph, the reference's value fed to it and the reference's gradient. */
type GoldenFactor = [tensor: Tensor, value: number[], gradient: number[]];

/**
 * Feeds for `built` (a loss over `latentShape` latents and token ids): the reference's inputs and
 * LoRA factors, checked to be the reference's modules and shapes. With `withGradients`, the graph
 * also outputs each factor's gradient of the loss as `grad.<name>`.
 */
export function goldenLossFeeds(
  graph: Graph,
  built: Pick<SdLoss, 'loss' | 'lora'>,
  golden: GoldenCore,
  latentShape: readonly number[],
  withGradients: boolean,
): { feeds: Record<string, HostTensor>; factors: GoldenFactor[] } {
  expect(built.lora.map((m) => `${m.component}.${m.path}`).toSorted()).toEqual(
    Object.keys(golden.lora).toSorted(),
  );
  const factors = built.lora.flatMap((m): GoldenFactor[] => {
    const g = golden.lora[`${m.component}.${m.path}`]!;
    const [down, up] = m.layer.parameters;
    expect(down!.shape).toEqual(g.A_shape);
    return [
      [down!.tensor, g.A, g.A_grad],
      [up!.tensor, g.B, g.B_grad],
    ];
  });
  if (withGradients) {
    gradients(
      built.loss,
      factors.map(([t]) => t),
    ).forEach((g, i) => {
      graph.output(g, `grad.${factors[i]![0].name}`);
    });
  }
  const batch = golden.timesteps.length;
  const feeds: Record<string, HostTensor> = {
    latents: f32(latentShape, golden.latents),
    noise: f32(latentShape, golden.noise),
    timesteps: i64([batch], golden.timesteps),
    input_ids: i64([batch, golden.input_ids[0]!.length], golden.input_ids.flat()),
    loss_weights: f32([batch], golden.loss_weights),
  };
  for (const [t, value] of factors) feeds[t.name] = f32(t.shape as number[], value);
  return { feeds, factors };
}

/** Each factor's gradient within `tolerance` of the reference's; returns the worst relative error. */
export function expectGoldenGradients(
  out: Record<string, HostTensor>,
  factors: readonly GoldenFactor[],
  tolerance: number,
): number {
  let worst = 0;
  for (const [t, , gradient] of factors) {
    const error = relativeError(floats(out[`grad.${t.name}`]), gradient);
    worst = Math.max(worst, error);
    expect(error, t.name).toBeLessThan(tolerance);
  }
  return worst;
}
