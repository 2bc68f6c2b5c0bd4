import { isAbsolute } from 'node:path';
import { EngineError, type EngineErrorCode } from '../errors.ts';
import { BYTES_PER_ELEMENT, type DType, encodeValues } from './dtype.ts';
import { OPSETS, type OpDomain } from './opsets.ts';
import { type Dim, formatShape, type Shape, staticSize } from './shape.ts';

/** Raw little-endian tensor bytes with their type and static shape. */
export interface ConstantData {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
}

export type AttributeValue =
  | { readonly type: 'int'; readonly value: number }
  | { readonly type: 'float'; readonly value: number }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'ints'; readonly value: readonly number[] }
  | { readonly type: 'floats'; readonly value: readonly number[] }
  | { readonly type: 'tensor'; readonly value: ConstantData };

export type Attributes = Readonly<Record<string, AttributeValue>>;

/** Helpers that make attribute literals read like the ONNX spec. */
export const attr = {
  int: (value: number): AttributeValue => ({ type: 'int', value }),
  float: (value: number): AttributeValue => ({ type: 'float', value }),
  string: (value: string): AttributeValue => ({ type: 'string', value }),
  ints: (value: readonly number[]): AttributeValue => ({ type: 'ints', value }),
  floats: (value: readonly number[]): AttributeValue => ({ type: 'floats', value }),
  tensor: (value: ConstantData): AttributeValue => ({ type: 'tensor', value }),
};

export interface Node {
  /** The operator set; `''` is ONNX's default domain. */
  readonly domain: OpDomain;
  readonly opType: string;
  readonly name: string;
  /** `undefined` marks an omitted optional input. */
  readonly inputs: readonly (Tensor | undefined)[];
  readonly outputs: readonly Tensor[];
  readonly attributes: Attributes;
}

/** Where an external initializer's bytes live: an absolute file path and a byte range in it. */
export interface ExternalData {
  readonly path: string;
  readonly offset: number;
  readonly length: number;
}

export type InitializerData =
  | { readonly kind: 'inline'; readonly bytes: Uint8Array }
  | ({ readonly kind: 'external' } & ExternalData);

/** A block of nodes from one input to one output that the backward pass recomputes. */
export interface CheckpointBlock {
  readonly input: Tensor;
  readonly output: Tensor;
  readonly nodes: readonly Node[];
}

export interface GraphOutput {
  readonly name: string;
  readonly tensor: Tensor;
}

/** A symbolic tensor: a name in one graph with an element type and a shape. */
export class Tensor {
  constructor(
    readonly graph: Graph,
    readonly name: string,
    readonly dtype: DType,
    readonly shape: Shape,
    /** The node that computes it; undefined for graph inputs and initializers. */
    readonly producer?: Node,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  toString(): string {
    return `${this.name}: ${this.dtype}${formatShape(this.shape)}`;
  }
}

/** Matches ONNX names to keep serialised models readable; also rules out empty names. */
const NAME_PATTERN = /^[\w.:/[\]-]+$/;

/**
 * An ONNX graph under construction. Op builders (`matmul`, `add`, …) append nodes to the graph
 * of their operands, infer output shapes, and throw `EngineError`s that name the op, the
 * shapes and the current scope.
 */
export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Tensor[] = [];
  readonly outputs: GraphOutput[] = [];
  readonly initializers = new Map<Tensor, InitializerData>();
  /** Nodes autodiff treats as constants (`stopGradient`): no gradient flows through them. */
  readonly gradientStops = new Set<Node>();
  /** Blocks whose activations the backward pass recomputes (`checkpoint`). */
  readonly checkpoints: CheckpointBlock[] = [];
  /** Weights converted at each use (`castAtUse`): how to convert again, anchored to another value. */
  readonly recasts = new Map<Tensor, (anchor: Tensor) => Tensor>();
  /** Small constant values, kept so builders and VJP rules can read them back (e.g. Reshape targets). */
  readonly constants = new Map<Tensor, ConstantData>();
  private readonly names = new Set<string>();
  private readonly scopes: string[] = [];
  private readonly scalarCache = new Map<string, Tensor>();
  private counter = 0;

  constructor(readonly name = 'graph') {}

  /** The current scope path, e.g. `layers.0.self_attn`; prefixes node names and error messages. */
  get scopeName(): string {
    return this.scopes.join('.');
  }

  /** Runs `build` with `name` pushed on the scope path. */
  scope<T>(name: string, build: () => T): T {
    this.scopes.push(name);
    try {
      return build();
    } finally {
      this.scopes.pop();
    }
  }

  input(name: string, dtype: DType, shape: Shape): Tensor {
    const tensor = new Tensor(this, this.claim(name), dtype, checkShape(this, name, shape));
    this.inputs.push(tensor);
    return tensor;
  }

  /** A weight stored in the model (`bytes`) or in another file (`ExternalData`, path absolute). */
  initializer(name: string, dtype: DType, shape: readonly number[], data: Uint8Array | ExternalData): Tensor {
    const expected = (staticSize(checkShape(this, name, shape)) ?? 0) * BYTES_PER_ELEMENT[dtype];
    const length = data instanceof Uint8Array ? data.byteLength : data.length;
    if (length !== expected) {
      throw this.error(
        'E_INVALID_ARGUMENT',
        `initializer '${name}'`,
        `${dtype}${formatShape(shape)} needs ${expected} bytes, got ${length}`,
      );
    }
    if (!(data instanceof Uint8Array) && (!isAbsolute(data.path) || data.offset < 0)) {
      throw this.error(
        'E_INVALID_ARGUMENT',
        `initializer '${name}'`,
        `external data needs an absolute path and an offset ≥ 0, got '${data.path}' at ${data.offset}`,
      );
    }
    const tensor = new Tensor(this, this.claim(name), dtype, shape);
    if (data instanceof Uint8Array) {
      this.initializers.set(tensor, { kind: 'inline', bytes: data });
      this.constants.set(tensor, { dtype, shape, bytes: data });
    } else this.initializers.set(tensor, { kind: 'external', ...data });
    return tensor;
  }

  /** An inline constant; scalars of the same value and type are shared. */
  constant(
    values: ArrayLike<number | bigint>,
    dtype: DType,
    shape: readonly number[] = [values.length],
  ): Tensor {
    const size = staticSize(shape);
    if (size !== values.length) {
      throw this.error(
        'E_INVALID_ARGUMENT',
        'constant',
        `${values.length} values for shape ${formatShape(shape)}`,
      );
    }
    const key = shape.length === 0 ? `${dtype}:${String(values[0])}` : undefined;
    const cached = key === undefined ? undefined : this.scalarCache.get(key);
    if (cached) return cached;
    const tensor = this.initializer(this.freshName('const'), dtype, shape, encodeValues(values, dtype));
    if (key !== undefined) this.scalarCache.set(key, tensor);
    return tensor;
  }

  scalar(value: number, dtype: DType): Tensor {
    return this.constant([value], dtype, []);
  }

  /** Marks `tensor` as a graph output, renamed through an Identity node when `name` differs. */
  output(tensor: Tensor, name = tensor.name): Tensor {
    this.own(tensor, 'output');
    if (this.outputs.some((o) => o.name === name)) {
      throw this.error('E_DUPLICATE_NAME', 'output', `graph output '${name}' is declared twice`);
    }
    let out = tensor;
    if (name !== tensor.name || this.inputs.includes(tensor) || this.initializers.has(tensor)) {
      out = this.addNode('Identity', [tensor], [{ dtype: tensor.dtype, shape: tensor.shape }], {}, [
        name,
      ])[0]!;
    }
    this.outputs.push({ name, tensor: out });
    return out;
  }

  /**
   * Appends a node. Op builders call this after checking their operands; `names` fixes output
   * names (default: derived from the node name); `domain` puts the op in another operator set.
   */
  addNode(
    opType: string,
    inputs: readonly (Tensor | undefined)[],
    outputs: readonly { dtype: DType; shape: Shape }[],
    attributes: Attributes = {},
    names?: readonly string[],
    domain: OpDomain = '',
  ): Tensor[] {
    if (!Object.hasOwn(OPSETS, domain)) {
      throw this.error(
        'E_INVALID_ARGUMENT',
        opType,
        `domain '${domain}' is not one of the operator sets a model imports (${Object.keys(OPSETS)
          .map((d) => `'${d}'`)
          .join(', ')})`,
      );
    }
    for (const input of inputs) if (input) this.own(input, opType);
    const nodeName = this.freshName(opType);
    const tensors: Tensor[] = [];
    const node: Node = { domain, opType, name: nodeName, inputs: [...inputs], outputs: tensors, attributes };
    outputs.forEach((o, i) => {
      const name = names?.[i] ?? (outputs.length === 1 ? nodeName : `${nodeName}:${i}`);
      tensors.push(new Tensor(this, this.claim(name), o.dtype, o.shape, node));
    });
    this.nodes.push(node);
    return tensors;
  }

  /** An error whose message names the op and the scope it was built in. */
  error(code: EngineErrorCode, op: string, message: string): EngineError {
    const where = this.scopeName ? ` in '${this.scopeName}'` : '';
    return new EngineError(code, `${op}${where} (graph '${this.name}'): ${message}`);
  }

  own(tensor: Tensor, op: string): void {
    if (tensor.graph !== this) {
      throw this.error(
        'E_FOREIGN_TENSOR',
        op,
        `tensor '${tensor.name}' belongs to graph '${tensor.graph.name}'; build each graph from its own inputs`,
      );
    }
  }

  private freshName(base: string): string {
    const prefix = this.scopeName ? `${this.scopeName}/` : '';
    let name: string;
    do name = `${prefix}${base}_${this.counter++}`;
    while (this.names.has(name));
    return name;
  }

  private claim(name: string): string {
    if (!NAME_PATTERN.test(name)) {
      throw this.error(
        'E_INVALID_ARGUMENT',
        'name',
        `'${name}' is not a usable tensor name (letters, digits, _.:/[]-)`,
      );
    }
    if (this.names.has(name))
      throw this.error('E_DUPLICATE_NAME', 'name', `'${name}' is already used in this graph`);
    this.names.add(name);
    return name;
  }
}

function checkShape(graph: Graph, name: string, shape: Shape): Dim[] {
  for (const d of shape) {
    // A name, or the product or sum of names that reshapes and concatenations make (`batch*seq`, `past+seq`).
    const ok = typeof d === 'number' ? Number.isInteger(d) && d >= 0 : /^[A-Za-z_][\w*+]*$/.test(d);
    if (!ok)
      throw graph.error(
        'E_INVALID_ARGUMENT',
        `'${name}'`,
        `bad dim ${JSON.stringify(d)} in ${formatShape(shape)}`,
      );
  }
  return [...shape];
}
