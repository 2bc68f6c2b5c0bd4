/**
 * Renders a chat template that came with a model or a config in a worker thread, with a time,
 * memory and output budget. A template is a program: nested `range(20000)` loops would hang the
 * tokenization silently, and `range(300000000)` ends Node with a V8 fatal error. The caller stays
 * synchronous (the worker answers through shared memory while this thread waits on it), so
 * tokenization code does not change; a template over budget is a `TEMPLATE` error that says why.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { DatasetError } from './errors.ts';

/** Longest one rendering may take; a real chat template renders a conversation in microseconds. */
export const TEMPLATE_TIME_BUDGET_MS = 5_000;
/** Heap of the rendering thread; a conversation's text is kilobytes. */
export const TEMPLATE_MEMORY_MB = 256;
/** Longest rendering accepted, in UTF-8 bytes: far above any context window's worth of text. */
export const MAX_RENDERED_BYTES = 4 * 1024 * 1024;
/** Starting the thread and loading the Jinja engine, once per template. */
const START_BUDGET_MS = 30_000;

/** What the shared state word says: the rendering thread's side of the handshake. */
const State = { Idle: 0, Ready: 1, Done: 2, Failed: 3, TooLong: 4 } as const;

/** The thread's code: renders each context it is sent into the shared buffer. */
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const state = new Int32Array(workerData.shared, 0, 2);
const bytes = new Uint8Array(workerData.shared, 8);
const encoder = new TextEncoder();
const finish = (code, text) => {
  const { read, written } = encoder.encodeInto(text, bytes);
  state[1] = written;
  Atomics.store(state, 0, code === ${State.Done} && read < text.length ? ${State.TooLong} : code);
  Atomics.notify(state, 0);
};
let template;
try {
  template = new (require(workerData.jinja).Template)(workerData.source);
} catch (error) {
  finish(${State.Failed}, String((error && error.message) || error));
}
if (template !== undefined) {
  parentPort.on('message', (context) => {
    try {
      finish(${State.Done}, template.render(context));
    } catch (error) {
      finish(${State.Failed}, String((error && error.message) || error));
    }
  });
  Atomics.store(state, 0, ${State.Ready});
  Atomics.notify(state, 0);
}
`;

export class TemplateSandbox {
  private readonly worker: Worker;
  private readonly state: Int32Array;
  private readonly bytes: Uint8Array;
  private broken: string | undefined;

  constructor(
    source: string,
    private readonly name: string,
  ) {
    const shared = new SharedArrayBuffer(8 + MAX_RENDERED_BYTES);
    this.state = new Int32Array(shared, 0, 2);
    this.bytes = new Uint8Array(shared, 8);
    this.worker = new Worker(WORKER, {
      eval: true,
      workerData: { jinja: createRequire(import.meta.url).resolve('@huggingface/jinja'), source, shared },
      resourceLimits: { maxOldGenerationSizeMb: TEMPLATE_MEMORY_MB },
      stdout: true,
      stderr: true,
    });
    // An idle rendering thread must not keep the process alive.
    this.worker.unref();
    this.worker.on('error', () => {});
    if (Atomics.wait(this.state, 0, State.Idle, START_BUDGET_MS) === 'timed-out') {
      this.fail(`its rendering thread did not start within ${START_BUDGET_MS / 1000} s`);
    }
    if (Atomics.load(this.state, 0) === State.Failed) {
      this.fail(
        `its rendering thread could not load it (${new TextDecoder().decode(this.bytes.slice(0, this.state[1]))})`,
      );
    }
  }

  render(context: Record<string, unknown>): string {
    if (this.broken !== undefined) this.fail(this.broken);
    Atomics.store(this.state, 0, State.Ready);
    this.worker.postMessage(context);
    if (Atomics.wait(this.state, 0, State.Ready, TEMPLATE_TIME_BUDGET_MS) === 'timed-out') {
      this.fail(
        `it did not finish within ${TEMPLATE_TIME_BUDGET_MS / 1000} s or ran out of its ${TEMPLATE_MEMORY_MB} MB (loops over large ranges?)`,
      );
    }
    const state = Atomics.load(this.state, 0);
    const text = new TextDecoder().decode(this.bytes.slice(0, this.state[1]));
    if (state === State.Done) return text;
    if (state === State.TooLong) {
      throw new DatasetError(
        'E_TEMPLATE',
        `The ${this.name} chat template rendered more than MAX_RENDERED_BYTES (${MAX_RENDERED_BYTES}) for one conversation; is it the template you meant?`,
      );
    }
    throw new Error(text);
  }

  /** Stops the thread for good; every later render reports `reason`. */
  private fail(reason: string): never {
    this.broken = reason;
    void this.worker.terminate();
    throw new DatasetError(
      'E_TEMPLATE',
      `The ${this.name} chat template was stopped: ${reason}. Use a built-in template (template: chatml, llama3 or alpaca) or fix the template.`,
    );
  }
}
