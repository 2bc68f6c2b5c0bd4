import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { runFolder, safeLoadConfig } from '@lora/config';
import { UiError } from '../errors.ts';
import { configPath } from './configs.ts';
import { projectRelative, resolveInside } from './project-path.ts';
import { endedState, lockHolder, lockOwner, type RunLock } from './run-files.ts';

// Runs started from the page: this package's own `lora train` (the CLI hands its bin.js to
// startUi), with arguments from the fixed list below and a config inside the project. No request
// names a program or an argument of its own.

/** How a run starts: `lora train --config <file>` plus these arguments. */
export const RUN_MODES = {
  start: [],
  resume: ['--resume', 'auto'],
  overwrite: ['--overwrite'],
} as const satisfies Record<string, readonly string[]>;
export type RunMode = keyof typeof RUN_MODES;

/** The end of a run's console output kept for the page: the last progress lines and any error. */
export const MAX_RUN_OUTPUT_CHARS = 16 * 1024;

/** How long a start waits for `lora train` to take the folder's lock (loading a big config and the backend). */
const LOCK_WAIT_MS = 120_000;

/** Exit codes of a run stopped by a signal after saving (128 + SIGINT, SIGTERM, SIGHUP). */
const STOPPED_CODES = new Set([130, 143, 129]);

/**
 * 'interrupted': it ended without removing its lock (killed, or the machine restarted); 'idle': a
 * folder without a run. A run this server did not start is read from its folder (see endedState).
 */
export type RunState =
  | 'starting'
  | 'running'
  | 'stopping'
  | 'finished'
  | 'stopped'
  | 'failed'
  | 'interrupted'
  | 'idle';

export interface RunStatus {
  /** The run folder, relative to the project. */
  readonly path: string;
  readonly state: RunState;
  /** The `lora train` process, while it runs. */
  readonly pid?: number;
  /** The machine of a run whose lock names another one (a shared disk): Stop cannot reach it. */
  readonly host?: string;
  /** Whether this server started it. */
  readonly ours: boolean;
  /** The config it was started with (relative to the project), for runs this server started. */
  readonly config?: string;
  readonly exitCode?: number | null;
  /** Why it failed: `lora train`'s own message and code. */
  readonly error?: { code: string; message: string };
  /** The end of its console output (this server's runs only). */
  readonly output?: string;
}

interface Child {
  readonly dir: string;
  readonly config: string;
  readonly process: ChildProcess;
  readonly exited: Promise<void>;
  output: string;
  stopping: boolean;
  /** It has held the folder's lock: past loading, its signal handlers are in place. */
  locked: boolean;
  exitCode?: number | null;
}

/** What `lora train` tells the page in its words, and what the page's buttons do about it. */
const HINTS: Record<string, string> = {
  E_OUTPUT_NOT_EMPTY:
    'Here: Resume goes on from its last checkpoint; Start over replaces only what lora wrote.',
};

/** `lora: <message> [E_CODE]`, the CLI's last word on a failure. */
export function cliError(output: string): { code: string; message: string } | undefined {
  const start = output.lastIndexOf('lora: ');
  if (start < 0 || (start > 0 && output[start - 1] !== '\n')) return undefined;
  const match = /^lora: ([\s\S]*?)\s*\[(E_[A-Z0-9_]+)\]\s*$/.exec(output.slice(start));
  if (!match) return undefined;
  const [, message, code] = match;
  return { code: code!, message: HINTS[code!] ? `${message} ${HINTS[code!]}` : message! };
}

export class Runs {
  /** Each folder's latest run started here. */
  private readonly children = new Map<string, Child>();
  /** Every process started here that has not exited, the refused ones included. */
  private readonly live = new Set<Child>();
  /** The locks of runs started elsewhere that this server has sent SIGINT, by folder. */
  private readonly stopped = new Map<string, RunLock>();

  constructor(
    private readonly root: string,
    /** The lora CLI's bin.js; without it (the package used on its own) runs cannot start. */
    private readonly cli: string | undefined,
  ) {}

  /**
   * Starts `lora train` on a config of the project and answers once it holds the run folder's
   * lock, or with its error when it stops before (an invalid config, a folder in use by another
   * run: `E_RUN_LOCKED`, an earlier run there: `E_OUTPUT_NOT_EMPTY`, …).
   */
  async start(config: string, mode: RunMode): Promise<RunStatus> {
    if (this.cli === undefined) {
      throw new UiError(
        'E_BAD_REQUEST',
        'Runs start from `lora ui` (the lora CLI), which this server was not started by.',
      );
    }
    const file = await configPath(this.root, config);
    const loaded = await safeLoadConfig(file);
    if (!loaded.success) {
      throw new UiError('E_RUN_REFUSED', `${loaded.error.message} [${loaded.error.code}]`, 422);
    }
    // The folder is fixed here (a `{timestamp}` output_dir filled in now, or the newest for a
    // resume), so the page follows the folder the run writes.
    const pattern = loaded.value.output_dir;
    const dir = runFolder(pattern, mode === 'resume' ? 'auto' : undefined, new Date());
    const path = projectRelative(this.root, dir);
    await resolveInside(this.root, path).catch(() => {
      throw new UiError(
        'E_PATH_OUTSIDE',
        `${config}: output_dir ${dir} is outside the project folder; lora ui runs and shows runs inside it. Set output_dir to a folder in the project (output/… ).`,
        403,
      );
    });
    const args = [
      this.cli,
      'train',
      '--config',
      file,
      ...(dir === pattern ? [] : ['--set', `output_dir=${JSON.stringify(dir)}`]),
      ...RUN_MODES[mode],
    ];
    // Its own process group: the terminal's Ctrl-C on `lora ui` does not reach it, and close() stops it with one SIGINT.
    const process_ = spawn(process.execPath, args, {
      cwd: this.root,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const child: Child = {
      dir,
      config: projectRelative(this.root, file),
      process: process_,
      output: '',
      stopping: false,
      locked: false,
      exited: new Promise((resolve) => {
        process_.once('close', (code) => {
          child.exitCode = code;
          this.live.delete(child);
          resolve();
        });
        process_.once('error', (error) => {
          child.output += `\nlora: cannot start lora train (${error.message}) [E_SPAWN]`;
        });
      }),
    };
    const keep = (chunk: Buffer) => {
      child.output = (child.output + chunk.toString('utf8')).slice(-MAX_RUN_OUTPUT_CHARS);
    };
    process_.stdout!.on('data', keep);
    process_.stderr!.on('data', keep);
    // The folder's run becomes this one once it holds the lock: one refused (E_RUN_LOCKED,
    // E_OUTPUT_NOT_EMPTY, …) leaves the folder's earlier run as the page shows it.
    this.live.add(child);
    const deadline = Date.now() + LOCK_WAIT_MS;
    while (child.exitCode === undefined && Date.now() < deadline) {
      if (await this.holds(child)) break;
      await Promise.race([child.exited, new Promise((resolve) => setTimeout(resolve, 100))]);
    }
    const status = await this.statusOf(child);
    if (status.state === 'failed') {
      const error = status.error!;
      throw new UiError('E_RUN_REFUSED', `${error.message} [${error.code}]`, 409);
    }
    // Holding the lock (or done already, or still loading after LOCK_WAIT_MS): the folder's run now.
    this.children.set(dir, child);
    return status;
  }

  /**
   * Asks a run to stop as Ctrl-C does: after the current step, with a checkpoint and the adapter.
   * A run this server did not start gets the same SIGINT, at the pid its folder's lock names.
   */
  async stop(path: string): Promise<RunStatus> {
    const dir = await resolveInside(this.root, path);
    const child = this.children.get(dir);
    if (child === undefined || child.exitCode !== undefined) return this.stopOutside(path, dir);
    // Before it holds the lock, lora train may not handle the signal yet (it would die unsaved).
    if (!child.stopping && !(await this.holds(child))) {
      throw new UiError('E_STOP_REFUSED', `${path} is still starting; stop it once it runs.`, 409);
    }
    // One signal only: a second one makes lora train quit without saving.
    if (!child.stopping) {
      child.stopping = true;
      child.process.kill('SIGINT');
    }
    return this.status(dir);
  }

  /**
   * Stops a run started elsewhere (a terminal, another lora ui) through its lock: the only pid
   * this signals is one a lock in the project names, and only while lockOwner finds it is a live
   * `lora train` on this machine.
   */
  private async stopOutside(path: string, dir: string): Promise<RunStatus> {
    const owner = await lockOwner(dir);
    const refuse = (why: string) => new UiError('E_STOP_REFUSED', `${path} ${why}`, 409);
    switch (owner.kind) {
      case 'none':
        throw refuse('is not running.');
      case 'elsewhere':
        throw refuse(
          `runs on ${owner.lock.host} (pid ${owner.lock.pid}, says its lock), not on this machine (${hostname()}): stop it there, with Ctrl-C or kill -INT ${owner.lock.pid}.`,
        );
      case 'gone':
        throw refuse(
          `is not running: its lock names pid ${owner.lock.pid}, which has ended without removing it (killed, or the machine restarted). The next lora train in the folder takes the lock over.`,
        );
      case 'other':
        throw refuse(
          `is not running: its lock names pid ${owner.lock.pid}, which is not lora train now (${owner.command || 'its command line is empty'}), so lora train ended without removing the lock and the number went to another program. Nothing was signalled.`,
        );
    }
    // One signal only, as for our own runs.
    if (!this.signalled(dir, owner.lock)) {
      try {
        process.kill(owner.lock.pid, 'SIGINT');
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EPERM')
          throw refuse(
            `runs as another user (pid ${owner.lock.pid}); stop it as that user, with Ctrl-C or kill -INT ${owner.lock.pid}.`,
          );
        // ESRCH: it ended between the look and the signal; its status says how.
        if (code !== 'ESRCH') throw error;
      }
      this.stopped.set(dir, owner.lock);
    }
    return this.status(dir);
  }

  /** Whether this server has sent SIGINT to the run that holds `lock`. */
  private signalled(dir: string, lock: RunLock): boolean {
    const sent = this.stopped.get(dir);
    return sent !== undefined && sent.pid === lock.pid && sent.started === lock.started;
  }

  async status(dir: string): Promise<RunStatus> {
    const child = this.children.get(dir);
    const owner = await lockOwner(dir);
    // Our run, unless it has ended and another (a terminal's) holds the folder now.
    if (child !== undefined && (child.exitCode === undefined || owner.kind === 'none'))
      return this.statusOf(child);
    const path = projectRelative(this.root, dir);
    switch (owner.kind) {
      case 'running': {
        const { pid } = owner.lock;
        return { path, state: this.signalled(dir, owner.lock) ? 'stopping' : 'running', pid, ours: false };
      }
      case 'elsewhere':
        return { path, state: 'running', pid: owner.lock.pid, host: owner.lock.host, ours: false };
      case 'gone':
      case 'other':
        return { path, state: 'interrupted', ours: false };
      case 'none':
        return { path, state: await endedState(dir), ours: false };
    }
  }

  private async statusOf(child: Child): Promise<RunStatus> {
    const base = {
      path: projectRelative(this.root, child.dir),
      ours: true,
      config: child.config,
      output: child.output,
    };
    if (child.exitCode === undefined) {
      const state = child.stopping ? 'stopping' : (await this.holds(child)) ? 'running' : 'starting';
      return { ...base, state, pid: child.process.pid! };
    }
    const code = child.exitCode;
    if (code === 0) return { ...base, state: 'finished', exitCode: code };
    // Stopped before it could handle the signal (still loading): nothing was written, nothing lost.
    if ((code !== null && STOPPED_CODES.has(code)) || (code === null && child.stopping))
      return { ...base, state: 'stopped', exitCode: code };
    const error = cliError(child.output) ?? {
      code: 'E_RUN_FAILED',
      message: `lora train ended with exit code ${code}; its output is below.`,
    };
    return { ...base, state: 'failed', exitCode: code, error };
  }

  /** Whether the run holds (or has held: it releases the lock just before it exits) its folder's lock. */
  private async holds(child: Child): Promise<boolean> {
    if (!child.locked) child.locked = (await lockHolder(child.dir)) === child.process.pid;
    return child.locked;
  }

  /** Folders of runs this server started, for the list (a run that failed to start has no runs.jsonl). */
  folders(): string[] {
    return [...this.children.keys()];
  }

  /** Stops every run still going (each saves a checkpoint) and waits for them: `lora ui` is closing. */
  async close(): Promise<void> {
    const going = [...this.live];
    for (const child of going) {
      if (!child.stopping) {
        child.stopping = true;
        child.process.kill('SIGINT');
      }
    }
    await Promise.all(going.map((child) => child.exited));
  }
}

/** The resolved config a run folder holds (`config.yaml`, the snapshot `lora train` writes). */
export const readSnapshot = (dir: string): Promise<string | null> =>
  readFile(join(dir, 'config.yaml'), 'utf8').catch(() => null);
