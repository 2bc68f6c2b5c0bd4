import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEMO_CONFIG,
  makeDemoProject,
  post,
  send,
  serve,
  trainInTerminal,
  writeFileIn,
} from '../test-fixtures.ts';
import type { UiServer } from './start.ts';

// The config and run endpoints against the real lora CLI on `lora init --demo`'s tiny model.

let server: UiServer;
let root: string;
const base = () => new URL(server.url).pathname;
const errorOf = (body: string) => (JSON.parse(body) as { error: { code: string; message: string } }).error;

interface Event {
  event: string;
  id?: string;
  data: unknown;
}

/** Reads the run's event stream until `enough` says so, then hangs up (as a closed tab does). */
function events(path: string, enough: (seen: Event[]) => boolean, lastEventId?: string): Promise<Event[]> {
  return new Promise((resolve, reject) => {
    const seen: Event[] = [];
    const req = request(
      {
        host: '127.0.0.1',
        port: server.port,
        path: `${base()}api/run/events?path=${encodeURIComponent(path)}`,
        headers: {
          host: `127.0.0.1:${server.port}`,
          ...(lastEventId ? { 'last-event-id': lastEventId } : {}),
        },
      },
      (res) => {
        let buffer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffer += chunk;
          let end = buffer.indexOf('\n\n');
          while (end >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            end = buffer.indexOf('\n\n');
            const fields = Object.fromEntries(
              block
                .split('\n')
                .filter((l) => !l.startsWith(':'))
                .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]),
            );
            if (fields['event'] === undefined) continue;
            seen.push({ event: fields['event'], id: fields['id'], data: JSON.parse(fields['data']!) });
            if (enough(seen)) {
              req.destroy();
              resolve(seen);
            }
          }
        });
      },
    );
    req.on('error', (error) =>
      (error as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(error),
    );
    req.end();
  });
}

const steps = (seen: readonly Event[]) =>
  seen
    .filter((e) => e.event === 'metrics')
    .flatMap((e) => e.data as { step: number; loss?: number }[])
    .filter((r) => r.loss !== undefined)
    .map((r) => r.step);

const statusOf = async (path: string) =>
  (
    JSON.parse((await send(server, `${base()}api/run?path=${encodeURIComponent(path)}`)).body) as {
      status: { state: string; exitCode?: number; pid?: number; host?: string; ours: boolean };
    }
  ).status;

/** A process's end: its exit code, or the signal that ended it. */
const ended = (child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null)
      resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });

beforeAll(async () => {
  root = await makeDemoProject((config) => config.replace('max_steps: 1000', 'max_steps: 2000'));
  await writeFile(join(root, 'configs/bad.yaml'), 'task: llm\nlora_rank: 0\n');
  server = await serve(root);
});
afterAll(() => server?.close());

describe('configs', () => {
  it('validates unsaved text with lora config validate’s messages at their line:column', async () => {
    const text = (await readFile(join(root, DEMO_CONFIG), 'utf8')).replace('lora_rank: 16', 'lora_rank: x');
    const line = text.split('\n').findIndex((l) => l.startsWith('lora_rank')) + 1;
    const answer = await post(server, 'api/config/validate', { path: DEMO_CONFIG, text });
    expect(JSON.parse(answer.body)).toEqual({
      valid: false,
      problems: [
        {
          file: DEMO_CONFIG,
          line,
          column: 12,
          key: 'lora_rank',
          message: 'expected integer 1–1024, got "x"',
        },
      ],
    });
    const valid = JSON.parse(
      (await post(server, 'api/config/validate', { path: DEMO_CONFIG, text: text.replace('x', '8') })).body,
    );
    expect(valid).toMatchObject({ valid: true, task: 'llm', outputDir: 'output/tiny_llama_demo' });
  });

  it('saves atomically, and refuses (writing nothing) when the file changed since the page read it', async () => {
    const path = 'configs/copy.yaml';
    expect((await post(server, 'api/config/save', { path, expected: null, text: 'a: 1\n' })).status).toBe(
      200,
    );
    await writeFile(join(root, path), 'a: 2\n');
    const refused = await post(server, 'api/config/save', { path, expected: 'a: 1\n', text: 'a: 3\n' });
    expect(refused.status).toBe(409);
    expect(errorOf(refused.body).code).toBe('E_CONFIG_CONFLICT');
    expect(await readFile(join(root, path), 'utf8')).toBe('a: 2\n');
    expect((await readdir(join(root, 'configs'))).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    const other = await post(server, 'api/config/save', {
      path: 'data/train.jsonl',
      expected: null,
      text: '',
    });
    expect(errorOf(other.body).message).toMatch(/not a YAML file/);
  });
});

describe('runs', { timeout: 60_000 }, () => {
  it.each([
    ['a config outside the project', '../elsewhere.yaml', 403, 'E_PATH_OUTSIDE'],
    ['a file that is not a config', 'data/train.jsonl', 400, 'E_BAD_REQUEST'],
    ['an invalid config (its problems, located)', 'configs/bad.yaml', 422, 'E_RUN_REFUSED'],
  ])('refuses to start %s', async (_name, config, status, code) => {
    const answer = await post(server, 'api/run/start', { config, mode: 'start' });
    expect(answer.status).toBe(status);
    expect(errorOf(answer.body).code).toBe(code);
    if (code === 'E_RUN_REFUSED') expect(errorOf(answer.body).message).toMatch(/bad\.yaml:2:12 lora_rank: /);
  });

  it('refuses a mode that is not one of the fixed ones, and a config whose output_dir leaves the project', async () => {
    const mode = await post(server, 'api/run/start', { config: DEMO_CONFIG, mode: '--help' });
    expect(errorOf(mode.body).message).toBe('"mode" must be one of start, resume, overwrite.');
    const text = await readFile(join(root, DEMO_CONFIG), 'utf8');
    await writeFile(join(root, 'configs/out.yaml'), text.replace('../output/', '../../output/'));
    const outside = await post(server, 'api/run/start', { config: 'configs/out.yaml', mode: 'start' });
    expect(outside.status).toBe(403);
    expect(errorOf(outside.body).message).toMatch(/output_dir .* is outside the project folder/);
  });

  it('starts lora train, refuses a second run into its folder with the CLI’s E_RUN_LOCKED, streams its metrics across a reconnection, and stops it with a checkpoint', async () => {
    const path = 'output/tiny_llama_demo';
    const started = await post(server, 'api/run/start', { config: DEMO_CONFIG, mode: 'start' });
    expect(started.status, started.body).toBe(200);
    expect(JSON.parse(started.body)).toMatchObject({
      path,
      state: 'running',
      ours: true,
      config: DEMO_CONFIG,
    });

    const second = await post(server, 'api/run/start', { config: DEMO_CONFIG, mode: 'resume' });
    expect(second.status).toBe(409);
    expect(errorOf(second.body).message).toMatch(
      /is in use by another lora run \(pid \d+ .*\[E_RUN_LOCKED\]$/s,
    );
    expect((await statusOf(path)).state).toBe('running');

    const first = await events(path, (seen) => steps(seen).length >= 3);
    expect(first[0]).toMatchObject({ event: 'status', data: { state: 'running' } });
    const lastId = first.filter((e) => e.event === 'metrics').at(-1)!.id!;
    const seenSteps = steps(first);
    expect(seenSteps).toEqual(seenSteps.map((_, i) => i + 1));
    // A reconnection with Last-Event-ID goes on after the last record it had: no step twice, none missed.
    const more = await events(path, (seen) => steps(seen).length >= 2, lastId);
    expect(steps(more)[0]).toBe(seenSteps.at(-1)! + 1);

    const stopping = await post(server, 'api/run/stop', { path });
    expect(JSON.parse(stopping.body).state).toMatch(/stopping|stopped/);
    await expect
      .poll(() => statusOf(path), { timeout: 30_000 })
      .toMatchObject({ state: 'stopped', exitCode: 130 });
    // The checkpoint of the step it stopped after (an epoch's end may have saved one before).
    const metrics = (await readFile(join(root, path, 'metrics.jsonl'), 'utf8')).trim().split('\n');
    const last = (JSON.parse(metrics.at(-1)!) as { step: number }).step;
    expect(await readdir(join(root, path, 'checkpoints'))).toContain(`step-${last}`);
    expect(existsSync(join(root, path, 'adapter_model.safetensors'))).toBe(true);
    const again = await post(server, 'api/run/stop', { path });
    expect(errorOf(again.body)).toEqual({ code: 'E_STOP_REFUSED', message: `${path} is not running.` });
  });
});

describe('runs started outside this server', { timeout: 120_000 }, () => {
  it('stops a lora train started in a terminal with one SIGINT at the pid of its lock: it saves a checkpoint and exits, and the folder then reads stopped', async () => {
    const path = 'output/terminal';
    // More steps than the test takes.
    const terminal = trainInTerminal(root, path, 100_000, 'pipe');
    let output = '';
    terminal.stdout!.on('data', (chunk) => (output += chunk));
    terminal.stderr!.on('data', (chunk) => (output += chunk));
    try {
      await expect
        .poll(() => statusOf(path), { timeout: 60_000 })
        .toEqual({ path, state: 'running', pid: terminal.pid, ours: false });
      // A few steps in, so the checkpoint below is of a step it took.
      await expect
        .poll(
          async () => (await readFile(join(root, path, 'metrics.jsonl'), 'utf8').catch(() => '')).length,
          {
            timeout: 60_000,
          },
        )
        .toBeGreaterThan(0);

      const stopping = await post(server, 'api/run/stop', { path });
      expect(stopping.status, stopping.body).toBe(200);
      expect(JSON.parse(stopping.body)).toMatchObject({
        state: expect.stringMatching(/^(stopping|stopped)$/),
      });
      // A second Stop sends nothing: a second SIGINT would make lora train quit without saving.
      const twice = await post(server, 'api/run/stop', { path });
      if (twice.status === 200) expect(JSON.parse(twice.body).state).toMatch(/^(stopping|stopped)$/);
      else expect(errorOf(twice.body).message).toBe(`${path} is not running.`);

      expect(await ended(terminal)).toEqual({ code: 130, signal: null });
      expect(output).toMatch(/Ctrl-C: stopping after the current step/);
      expect(output).not.toMatch(/quitting without saving/);
      const metrics = (await readFile(join(root, path, 'metrics.jsonl'), 'utf8')).trim().split('\n');
      const last = (JSON.parse(metrics.at(-1)!) as { step: number }).step;
      expect(await readdir(join(root, path, 'checkpoints'))).toContain(`step-${last}`);
      expect(existsSync(join(root, path, 'adapter_model.safetensors'))).toBe(true);
      expect(existsSync(join(root, path, 'lora.lock'))).toBe(false);
      // Its state, from its files now that the lock is gone.
      expect(await statusOf(path)).toEqual({ path, state: 'stopped', ours: false });
      const { runs } = JSON.parse((await send(server, `${base()}api/runs`)).body) as {
        runs: { path: string; status: { state: string } }[];
      };
      expect(runs.find((run) => run.path === path)?.status.state).toBe('stopped');
      const again = await post(server, 'api/run/stop', { path });
      expect(errorOf(again.body)).toEqual({ code: 'E_STOP_REFUSED', message: `${path} is not running.` });
    } finally {
      if (terminal.exitCode === null && terminal.signalCode === null) terminal.kill('SIGKILL');
    }
  });

  describe('refuses to signal a pid its lock names unless it is a live lora train on this machine', () => {
    const lockIn = async (path: string, pid: number, host = hostname()) => {
      await writeFileIn(
        join(root, path, 'runs.jsonl'),
        '{"started_at":"2026-01-01T00:00:00.000Z","resumed_from":null}\n',
      );
      await writeFile(
        join(root, path, 'lora.lock'),
        `${JSON.stringify({ pid, host, started: '2026-01-01T00:00:00.000Z' })}\n`,
      );
    };

    it('another machine’s run', async () => {
      const path = 'output/elsewhere';
      await lockIn(path, process.pid, 'gpu-box.invalid');
      const refused = await post(server, 'api/run/stop', { path });
      expect(refused.status).toBe(409);
      expect(errorOf(refused.body)).toEqual({
        code: 'E_STOP_REFUSED',
        message: expect.stringMatching(
          /^output\/elsewhere runs on gpu-box\.invalid \(pid \d+, says its lock\), not on this machine/,
        ),
      });
      expect(await statusOf(path)).toEqual({
        path,
        state: 'running',
        pid: process.pid,
        host: 'gpu-box.invalid',
        ours: false,
      });
    });

    it('a run that ended without removing its lock (its pid is gone)', async () => {
      const path = 'output/gone';
      const done = spawn(process.execPath, ['-e', '']);
      await ended(done);
      await lockIn(path, done.pid!);
      const refused = await post(server, 'api/run/stop', { path });
      expect(errorOf(refused.body)).toEqual({
        code: 'E_STOP_REFUSED',
        message: expect.stringMatching(
          /^output\/gone is not running: its lock names pid \d+, which has ended without removing it/,
        ),
      });
      expect((await statusOf(path)).state).toBe('interrupted');
    });

    it.runIf(process.platform === 'linux')(
      'a pid that another program has now (/proc/<pid>/cmdline is not lora train)',
      async () => {
        const path = 'output/reused';
        const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
        try {
          await lockIn(path, other.pid!);
          const refused = await post(server, 'api/run/stop', { path });
          expect(errorOf(refused.body)).toEqual({
            code: 'E_STOP_REFUSED',
            message: expect.stringMatching(
              /^output\/reused is not running: its lock names pid \d+, which is not lora train now \(.*-e setInterval.*\).* Nothing was signalled\.$/,
            ),
          });
          expect((await statusOf(path)).state).toBe('interrupted');
        } finally {
          other.kill('SIGTERM');
        }
        // It was never sent SIGINT: the SIGTERM above is what ended it (a pending SIGINT, lower, would come first).
        expect(await ended(other)).toEqual({ code: null, signal: 'SIGTERM' });
      },
    );

    it('a folder outside the project', async () => {
      expect((await post(server, 'api/run/stop', { path: '../..' })).status).toBe(403);
    });
  });
});
