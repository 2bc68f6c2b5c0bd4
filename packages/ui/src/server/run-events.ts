import type { IncomingMessage, ServerResponse } from 'node:http';
import { cursorId, listSamples, type MetricsCursor, parseCursor, readMetrics } from './run-files.ts';
import type { RunStatus } from './runs.ts';

/** How often a stream looks at the run folder: progress at the pace a person reads it, at a few stats a second. */
export const POLL_MS = 400;
/** A comment line this often keeps proxies and the browser from calling a quiet stream dead. */
const KEEPALIVE_MS = 15_000;

export interface RunStream {
  readonly dir: string;
  readonly status: () => Promise<RunStatus>;
  readonly root: string;
}

/**
 * Server-sent events of one run folder, from its files: `metrics` (new `metrics.jsonl` records,
 * `val/loss` lines included; the event id is the reading position), `reset` (the file was
 * rewritten by a resume: drop what came before), `samples` (files of `samples/` not sent yet on
 * this connection), `status` (when it changes) and `problem` (the folder could not be read; a
 * null message when it can again). A browser that reconnects sends the last id as
 * `Last-Event-ID` and gets only what it has not seen; a fresh connection gets everything.
 */
export function streamRun(
  request: IncomingMessage,
  response: ServerResponse,
  headers: Readonly<Record<string, string>>,
  run: RunStream,
): void {
  response.writeHead(200, {
    ...headers,
    'Content-Type': 'text/event-stream; charset=utf-8',
    Connection: 'keep-alive',
  });
  let cursor: MetricsCursor | undefined = parseCursor(request.headers['last-event-id'] as string | undefined);
  const sentSamples = new Set<string>();
  let lastStatus = '';
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const send = (event: string, data: unknown, id?: string) => {
    response.write(
      `event: ${event}\n${id === undefined ? '' : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`,
    );
  };
  const keepalive = setInterval(() => response.write(': ping\n\n'), KEEPALIVE_MS);
  const tick = async () => {
    const status = await run.status();
    const statusText = JSON.stringify(status);
    if (statusText !== lastStatus) {
      lastStatus = statusText;
      send('status', status);
    }
    // Until the end of the file: a reader far behind catches up in several chunks at once.
    for (;;) {
      const read = await readMetrics(run.dir, cursor);
      if (read === undefined) break;
      if (read.reset) send('reset', {});
      const moved = read.cursor.file !== cursor?.file || read.cursor.offset !== cursor.offset;
      cursor = read.cursor;
      if (read.records.length > 0 || read.reset) send('metrics', read.records, cursorId(cursor));
      if (!moved || read.records.length === 0) break;
    }
    const fresh = (await listSamples(run.root, run.dir)).filter((sample) => !sentSamples.has(sample.path));
    if (fresh.length > 0) {
      for (const sample of fresh) sentSamples.add(sample.path);
      send('samples', fresh);
    }
  };
  let troubled = false;
  const loop = () => {
    tick()
      .then(
        () => {
          if (troubled) send('problem', { message: null });
          troubled = false;
        },
        (error: unknown) => {
          troubled = true;
          send('problem', { message: (error as Error).message });
        },
      )
      .finally(() => {
        if (!closed) timer = setTimeout(loop, POLL_MS);
      });
  };
  request.on('close', () => {
    closed = true;
    clearTimeout(timer);
    clearInterval(keepalive);
  });
  loop();
}
