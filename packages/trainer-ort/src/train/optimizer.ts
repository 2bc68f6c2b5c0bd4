/**
 * The update graph: one optimizer step over every LoRA parameter, with the learning rate and the
 * bias corrections fed as scalars each step. Its arithmetic follows PyTorch's single-tensor
 * `AdamW` and `SGD` operation by operation (including `lerp` for the first moment), so the
 * float32 results match `torch.optim` to the last bit or two.
 */
import { add, div, Graph, type HostTensor, hostTensor, mul, sqrt, sub, type Tensor } from '@lora/engine';

export type OptimizerOptions =
  | {
      type: 'adamw';
      betas: readonly [number, number];
      eps: number;
      /** Decoupled: each step multiplies the weights by 1 − lr·weightDecay. */
      weightDecay: number;
    }
  | {
      type: 'sgd';
      momentum: number;
      /** L2 (PyTorch SGD's): weightDecay·w is added to the gradient. */
      weightDecay: number;
    };

/** A trainable tensor as the update graph sees it. */
export interface UpdateParameter {
  readonly name: string;
  readonly shape: readonly number[];
  readonly group: string;
}

/** Graph input scaling every accumulated gradient sum: clip coefficient / (Σ weight · loss scale). */
export const GRAD_MULTIPLIER = 'grad_multiplier';

/** Per-parameter optimizer state tensors, in the order they are stored. */
export function optimizerSlots(optimizer: OptimizerOptions): readonly string[] {
  return optimizer.type === 'adamw' ? ['exp_avg', 'exp_avg_sq'] : ['momentum_buffer'];
}

export const gradName = (parameter: string) => `${parameter}.grad`;
export const slotName = (parameter: string, slot: string) => `${parameter}.${slot}`;
export const nextName = (tensor: string) => `${tensor}.next`;

/** Inputs: each parameter, its gradient sum and state, the scalars; outputs: `<name>.next` of each. */
export function buildUpdateGraph(parameters: readonly UpdateParameter[], optimizer: OptimizerOptions): Graph {
  const graph = new Graph(`${optimizer.type}_update`);
  const scalar = (name: string) => graph.input(name, 'float32', []);
  const multiplier = scalar(GRAD_MULTIPLIER);
  const groups = new Map<string, Record<string, Tensor>>();
  const groupInputs = (group: string) => {
    let inputs = groups.get(group);
    if (!inputs) {
      const names = optimizer.type === 'adamw' ? ['step_size', 'decay'] : ['lr'];
      inputs = Object.fromEntries(names.map((n) => [n, scalar(`${n}.${group}`)]));
      groups.set(group, inputs);
    }
    return inputs;
  };
  const bc2Sqrt = optimizer.type === 'adamw' ? scalar('bias_correction2_sqrt') : undefined;
  for (const p of parameters) {
    const param = graph.input(p.name, 'float32', p.shape);
    const grad = mul(graph.input(gradName(p.name), 'float32', p.shape), multiplier);
    const state = optimizerSlots(optimizer).map((s) => graph.input(slotName(p.name, s), 'float32', p.shape));
    const scalars = groupInputs(p.group);
    graph.scope(p.name, () => {
      if (optimizer.type === 'adamw') {
        const [beta1, beta2] = optimizer.betas;
        const [m, v] = state as [Tensor, Tensor];
        const decayed = mul(param, scalars['decay']!);
        // exp_avg.lerp_(grad, 1 − β1): for a weight below 0.5 torch computes m + w·(g − m).
        const weight = Math.fround(1 - beta1);
        const m1 =
          weight < 0.5
            ? add(m, mul(sub(grad, m), weight))
            : sub(grad, mul(sub(grad, m), Math.fround(1 - weight)));
        const v1 = add(mul(v, beta2), mul(mul(grad, 1 - beta2), grad));
        const denom = add(div(sqrt(v1), bc2Sqrt!), optimizer.eps);
        graph.output(sub(decayed, div(mul(m1, scalars['step_size']!), denom)), nextName(p.name));
        graph.output(m1, nextName(slotName(p.name, 'exp_avg')));
        graph.output(v1, nextName(slotName(p.name, 'exp_avg_sq')));
      } else {
        const [buffer] = state as [Tensor];
        const d = optimizer.weightDecay ? add(grad, mul(param, optimizer.weightDecay)) : grad;
        const b1 = add(mul(buffer, optimizer.momentum), d);
        graph.output(sub(param, mul(b1, scalars['lr']!)), nextName(p.name));
        graph.output(b1, nextName(slotName(p.name, 'momentum_buffer')));
      }
    });
  }
  return graph;
}

const f32 = (value: number) => hostTensor('float32', [], Float32Array.of(value));

/**
 * The scalar feeds of update number `t` (1-based, as PyTorch's `state['step']` after increment),
 * computed in float64 as PyTorch does in Python and rounded to float32 once.
 */
export function updateScalars(
  optimizer: OptimizerOptions,
  learningRates: ReadonlyMap<string, number>,
  t: number,
  gradMultiplier: number,
): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = { [GRAD_MULTIPLIER]: f32(gradMultiplier) };
  if (optimizer.type === 'adamw') {
    const [beta1, beta2] = optimizer.betas;
    const bc1 = 1 - beta1 ** t;
    feeds['bias_correction2_sqrt'] = f32(Math.sqrt(1 - beta2 ** t));
    for (const [group, lr] of learningRates) {
      feeds[`step_size.${group}`] = f32(lr / bc1);
      feeds[`decay.${group}`] = f32(1 - lr * optimizer.weightDecay);
    }
  } else {
    for (const [group, lr] of learningRates) feeds[`lr.${group}`] = f32(lr);
  }
  return feeds;
}
