/**
 * The gradients sessions of one model. A model without `shapeKey` has exactly one. A multi-shape
 * model (static sizes that differ between micro-batches, such as SD latents per aspect bucket)
 * gets one per shape key, built the first time a micro-batch needs it and kept for the run: the
 * first on the device `settings` ask for, every later one on the device and in the precision the
 * first really got, and each checked to train the very same LoRA parameters.
 */
import { TrainerOrtError } from '../errors.ts';
import type { TrainableModel } from './model.ts';
import { type GradientsSession, groupOf, openGradientsSession, type SessionSettings } from './step-graphs.ts';

/** A shape key names its graph file (`gradients-<key>.onnx`), so it is a short plain name. */
const SHAPE_KEY = /^[\w.-]{1,64}$/;

/**
 * Every shape key holds a session with its own copy of the frozen weights; kohya's bucket list
 * has 17 sizes at 512² (sides 256–1024) and 41 at 1024² (sides 256–2048), so more keys than this
 * is a `shapeKey` that is not a shape.
 */
export const MAX_SHAPE_KEYS = 64;

/** The model's shape key for `batch`, checked; `undefined` for a single-shape model. */
export function shapeKeyOf<Batch>(model: TrainableModel<Batch>, batch: Batch): string | undefined {
  if (model.shapeKey === undefined) return undefined;
  const key = model.shapeKey(batch);
  if (typeof key !== 'string' || !SHAPE_KEY.test(key)) {
    throw new TrainerOrtError(
      'E_INVALID_ARGUMENT',
      `TrainableModel.shapeKey returned ${JSON.stringify(key)}; a shape key is 1–64 characters from A–Z, a–z, 0–9, '_', '.' and '-' (it names the graph file)`,
    );
  }
  return key;
}

export class GradientSessions<Batch> {
  private readonly sessions: Map<string | undefined, GradientsSession>;

  private constructor(
    private readonly model: TrainableModel<Batch>,
    private readonly folder: string,
    private readonly settings: Omit<SessionSettings, 'outputDir'>,
    private readonly first: GradientsSession,
    firstKey: string | undefined,
  ) {
    this.sessions = new Map([[firstKey, first]]);
  }

  /**
   * Opens the session of `firstKey` (the shape key of the first micro-batch the run takes;
   * `undefined` for a single-shape model), which fixes the parameters, device and precision.
   */
  static async open<Batch>(
    model: TrainableModel<Batch>,
    folder: string,
    settings: Omit<SessionSettings, 'outputDir'>,
    firstKey: string | undefined,
  ): Promise<GradientSessions<Batch>> {
    const first = await openGradientsSession(model, folder, settings, firstKey);
    return new GradientSessions(model, folder, settings, first, firstKey);
  }

  get parameters(): GradientsSession['parameters'] {
    return this.first.parameters;
  }

  get precision(): GradientsSession['precision'] {
    return this.first.precision;
  }

  /** The session for `batch`, built now when its shape key is new. */
  async forBatch(batch: Batch): Promise<GradientsSession> {
    const key = shapeKeyOf(this.model, batch);
    const known = this.sessions.get(key);
    if (known) return known;
    if (this.sessions.size >= MAX_SHAPE_KEYS) {
      throw new TrainerOrtError(
        'E_INVALID_ARGUMENT',
        `TrainableModel.shapeKey gave a ${MAX_SHAPE_KEYS + 1}th shape key ('${key}'), each of which holds a session with its own copy of the model; at most ${MAX_SHAPE_KEYS} are supported (make shapeKey depend on graph sizes only)`,
      );
    }
    const session = await openGradientsSession(
      this.model,
      this.folder,
      { ...this.settings, device: this.first.session.device },
      key,
    );
    try {
      this.checkSameParameters(key, session);
    } catch (error) {
      await session.session.dispose();
      throw error;
    }
    this.sessions.set(key, session);
    return session;
  }

  async dispose(): Promise<void> {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(sessions.map((s) => s.session.dispose()));
  }

  /** One optimizer trains one set of parameters, whatever the shape of the micro-batch. */
  private checkSameParameters(key: string | undefined, session: GradientsSession): void {
    const [firstKey] = this.sessions.keys();
    const differ = (what: string) =>
      new TrainerOrtError(
        'E_INVALID_ARGUMENT',
        `TrainableModel.build: the graph for shape key '${key}' ${what} than the graph for '${firstKey}'; every shape key must declare the same LoRA parameters (names, shapes, groups, initial values) in the same order`,
      );
    const expected = this.first.parameters;
    if (session.parameters.length !== expected.length) {
      throw differ(`declares ${session.parameters.length} LoRA parameters, ${expected.length} are declared`);
    }
    session.parameters.forEach((p, i) => {
      const q = expected[i]!;
      if (p.name !== q.name || p.shape.join() !== q.shape.join() || groupOf(p) !== groupOf(q)) {
        throw differ(
          `declares parameter '${p.name}' [${p.shape.join(', ')}] in another place, shape or group`,
        );
      }
      if (!sameValues(p.initial, q.initial)) throw differ(`starts '${p.name}' at other values`);
    });
  }
}

function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}
