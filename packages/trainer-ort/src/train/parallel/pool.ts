/**
 * The worker processes of a parallel run: one child process per device, each started with an IPC
 * channel, told to rebuild the model, then fed the shards of every step. A worker that exits,
 * is killed or throws fails every pending and later request with a `WORKER_FAILED` error naming
 * it; `close` ends every worker, killing those that do not exit in time, so none outlives the run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { MixedPrecision } from '@lora/config';
import type { FromWorker, ReadyMessage, SumsMessage, ToWorker } from './protocol.ts';
import type { ModelRecipe, WorkerDevice } from './recipe.ts';
import { WorkerError, type WorkerErrorCode } from './worker-error.ts';

// The worker process imports the module this code was loaded from and calls `runTrainingWorker`:
// this file when running from sources, the package bundle (which exports it too) once built.
export { runTrainingWorker } from './worker.ts';

const SELF = import.meta.url;
const BOOT = 'const { runTrainingWorker } = await import(process.argv[1]); runTrainingWorker();';
/** From TypeScript sources (tests, tools) a worker needs hooks that transpile `.ts` modules. */
const LOADER = SELF.endsWith('.ts') ? ['--import', new URL('./typescript-hooks.mjs', SELF).href] : [];
/** Keeps the end of a worker's stderr for its failure message: enough for a stack trace, and bounded. */
const MAX_STDERR_TAIL = 4096;
/** How long a closed worker may take to exit before it is killed. */
const CLOSE_GRACE_MS = 5000;
/** How long a failed write waits for the worker's exit to report instead. */
const EXIT_REPORT_MS = 2000;

type Reply = ReadyMessage | SumsMessage;

class WorkerProcess {
  readonly exited: Promise<void>;
  private readonly child: ChildProcess;
  private readonly replies: Reply[] = [];
  private waiter: { resolve(reply: Reply): void; reject(error: WorkerError): void } | undefined;
  private failure: WorkerError | undefined;
  private stderr = '';
  private closing = false;
  private done = false;

  constructor(
    readonly index: number,
    readonly device: WorkerDevice,
    onNotice: (message: string) => void,
  ) {
    this.child = spawn(process.execPath, [...LOADER, '--input-type=module', '--eval', BOOT, SELF], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'advanced',
      env:
        device.deviceId === undefined
          ? process.env
          : { ...process.env, CUDA_VISIBLE_DEVICES: String(device.deviceId) },
    });
    this.child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      this.stderr = (this.stderr + text).slice(-MAX_STDERR_TAIL);
    });
    this.child.on('message', (message: FromWorker) => {
      if (message.type === 'notice') onNotice(message.message);
      else if (message.type === 'failed') this.failed(message.message, message.code);
      else this.deliver(message);
    });
    this.exited = new Promise((resolve) => {
      this.child.on('error', (error) => {
        this.fail(`could not be started or reached: ${error.message}`);
        if (this.child.pid === undefined) resolve();
      });
      this.child.on('close', (code, signal) => {
        this.done = true;
        const output = this.stderr.trim();
        this.fail(
          `${signal ? `was killed by ${signal}` : `exited with code ${code}`}${output ? `; its last output: ${output}` : ''}`,
        );
        resolve();
      });
    });
  }

  /** `worker 1 (cuda:1, pid 4242)`. */
  get label(): string {
    const { device, deviceId } = this.device;
    const where = deviceId === undefined ? device : `${device}:${deviceId}`;
    return `worker ${this.index} (${where}, pid ${this.pid})`;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  send(message: ToWorker): void {
    if (this.failure) throw this.failure;
    this.child.send(message, (error: Error | null) => {
      if (!error) return;
      // A worker that died fails the write (EPIPE) before its exit is seen: its exit, if it comes
      // soon, says why (killed by a signal, an exit code) better than the write does.
      const timer = setTimeout(() => this.fail(`could not be reached: ${error.message}`), EXIT_REPORT_MS);
      void this.exited.then(() => clearTimeout(timer));
    });
  }

  next<T extends Reply['type']>(type: T): Promise<Extract<Reply, { type: T }>> {
    return new Promise<Reply>((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      const queued = this.replies.shift();
      if (queued) return resolve(queued);
      this.waiter = { resolve, reject };
    }).then((reply) => {
      if (reply.type !== type) {
        throw new WorkerError(
          'E_WORKER_FAILED',
          `${this.label} answered '${reply.type}' where '${type}' was due`,
          {
            worker: this.index,
          },
        );
      }
      return reply as Extract<Reply, { type: T }>;
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.done) return;
    if (this.child.connected) this.child.send({ type: 'close' } satisfies ToWorker, () => {});
    const timer = setTimeout(() => this.child.kill('SIGKILL'), CLOSE_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }

  private deliver(reply: Reply): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter) waiter.resolve(reply);
    else this.replies.push(reply);
  }

  /** The worker threw: a recipe problem keeps its code, anything else is the worker failing. */
  private failed(message: string, code: string | undefined): void {
    if (code === 'E_WORKER_RECIPE_INVALID') this.fail(`could not build the model: ${message}`, code);
    else this.fail(`failed: ${code ? `${code}: ` : ''}${message}`);
  }

  /** Records the first reason this worker stopped working (none once the parent closes it). */
  private fail(reason: string, code: WorkerErrorCode = 'E_WORKER_FAILED'): void {
    if (this.failure || this.closing) return;
    this.failure = new WorkerError(code, `${this.label} ${reason}`, { worker: this.index });
    this.waiter?.reject(this.failure);
    this.waiter = undefined;
  }
}

export interface PoolSettings {
  recipe: ModelRecipe;
  workers: readonly WorkerDevice[];
  /** Intra-op threads per worker; default: CPU workers share the machine's cores equally. */
  threads?: number;
  mixedPrecision: MixedPrecision;
  copyExternalData: boolean;
  /** Worker k writes its graph into `<graphsFolder>/worker-<k>/`. */
  graphsFolder: string;
  seed: number;
  onNotice: (worker: number, message: string) => void;
}

/** Started, model-loaded worker processes; `ready[k]` is what worker k built. */
export class WorkerPool {
  private constructor(
    private readonly processes: readonly WorkerProcess[],
    readonly ready: readonly ReadyMessage[],
  ) {}

  /** Starts one process per device and waits until every one has loaded the model. */
  static async start(settings: PoolSettings): Promise<WorkerPool> {
    const cpuWorkers = settings.workers.filter((w) => w.device === 'cpu').length;
    const cpuShare = Math.max(1, Math.floor(availableParallelism() / Math.max(1, cpuWorkers)));
    const processes = settings.workers.map(
      (device, index) => new WorkerProcess(index, device, (message) => settings.onNotice(index, message)),
    );
    try {
      processes.forEach((worker, index) => {
        const threads = settings.threads ?? (worker.device.device === 'cpu' ? cpuShare : undefined);
        worker.send({
          type: 'init',
          worker: index,
          recipe: settings.recipe,
          device: worker.device.device,
          ...(threads === undefined ? {} : { threads }),
          mixedPrecision: settings.mixedPrecision,
          copyExternalData: settings.copyExternalData,
          folder: join(settings.graphsFolder, `worker-${index}`),
          seed: settings.seed,
        });
      });
      const ready = await Promise.all(processes.map((worker) => worker.next('ready')));
      return new WorkerPool(processes, ready);
    } catch (error) {
      await Promise.all(processes.map((worker) => worker.close()));
      throw error;
    }
  }

  get size(): number {
    return this.processes.length;
  }

  label(worker: number): string {
    return this.processes[worker]!.label;
  }

  pid(worker: number): number {
    return this.processes[worker]!.pid;
  }

  begin(values: ReadonlyMap<string, Float32Array>, scale: number): void {
    const message: ToWorker = { type: 'begin', values: Object.fromEntries(values), scale };
    for (const worker of this.processes) worker.send(message);
  }

  shard(worker: number, batch: unknown, epoch: number, index: number): void {
    this.processes[worker]!.send({ type: 'shard', batch, epoch, index });
  }

  /** Every worker's sums of the step, in worker order. */
  async end(): Promise<SumsMessage[]> {
    for (const worker of this.processes) worker.send({ type: 'end' });
    return Promise.all(this.processes.map((worker) => worker.next('sums')));
  }

  async close(): Promise<void> {
    await Promise.all(this.processes.map((worker) => worker.close()));
  }
}
