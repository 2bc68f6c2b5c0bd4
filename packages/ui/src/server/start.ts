import { readFile, realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UiError } from '../errors.ts';
import { type ApiContext, type ApiResult, get, post } from './api.ts';
import { Checks } from './checks.ts';
import { Labels } from './labels.ts';
import { resolveInside } from './project-path.ts';
import { streamRun } from './run-events.ts';
import { Runs } from './runs.ts';
import { checkRequest, newToken, SECURITY_HEADERS } from './security.ts';
import { Thumbnails } from './thumbnails.ts';

/** Largest request body read: a bulk edit of a few thousand captions fits many times over. */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;

export interface UiOptions {
  /** The project (or dataset) folder; every file the UI reads or writes is inside it. */
  readonly folder: string;
  /** 0 (default): a free port. */
  readonly port?: number;
  /** The built page (dist/client); tests of the sources point it at the build. */
  readonly assetsDir?: string;
  /**
   * The lora CLI's `bin.js`: runs started from the page are `node <cli> train …`. The CLI passes
   * its own; without it the page edits configs but starts no run.
   */
  readonly cli?: string;
}

export interface UiServer {
  /** `http://127.0.0.1:<port>/<token>/`: the page, token included. */
  readonly url: string;
  readonly port: number;
  /** The project folder's real path. */
  readonly root: string;
  /** Stops the server, and the runs it started (each saves a checkpoint, as after Ctrl-C). */
  close(): Promise<void>;
}

/** The page's files: only these names are served from the assets folder. */
const ASSETS: Readonly<Record<string, string>> = {
  '': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

async function readBody(request: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      throw new UiError(
        'E_BAD_REQUEST',
        `The request is larger than MAX_BODY_BYTES (${MAX_BODY_BYTES}).`,
        413,
      );
    }
    chunks.push(chunk);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new UiError('E_BAD_REQUEST', 'The request body is not JSON.');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new UiError('E_BAD_REQUEST', 'The request body must be a JSON object.');
  }
  return body as Record<string, unknown>;
}

function send(response: ServerResponse, status: number, type: string, bytes: Buffer | string): void {
  response.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(bytes),
  });
  response.end(bytes);
}

/** An error as the page reads it: `{ error: { code, message } }`; a bug is a 500 that says so. */
function sendError(response: ServerResponse, error: unknown): void {
  const coded =
    error instanceof Error &&
    'code' in error &&
    typeof error.code === 'string' &&
    /^E_[A-Z_]+$/.test(error.code);
  const status = UiError.isInstance(error) ? error.status : coded ? 422 : 500;
  const code = coded ? (error as { code: string }).code : 'E_INTERNAL';
  const message = coded
    ? (error as Error).message
    : `Internal error (${error instanceof Error ? error.message : String(error)}); please report it with the terminal's output.`;
  if (!coded) console.error(error);
  send(response, status, 'application/json; charset=utf-8', JSON.stringify({ error: { code, message } }));
}

async function handle(
  request: IncomingMessage,
  response: ServerResponse,
  context: ApiContext & { token: string; port: number; assetsDir: string },
): Promise<void> {
  const route = checkRequest(request, context.token, context.port);
  const url = new URL(request.url ?? '/', 'http://localhost');
  if (route === '' && !url.pathname.endsWith('/')) {
    // The page's links are relative to /<token>/, so its address needs the slash.
    response.writeHead(308, { ...SECURITY_HEADERS, Location: `${url.pathname}/` }).end();
    return;
  }
  const query = url.searchParams;
  if (route === 'api/run/events' && request.method === 'GET') {
    const dir = await resolveInside(context.root, query.get('path') ?? '');
    streamRun(request, response, SECURITY_HEADERS, {
      dir,
      root: context.root,
      status: () => context.runs.status(dir),
    });
    return;
  }
  const assetType = ASSETS[route];
  if (request.method !== 'POST' && assetType !== undefined) {
    const file = join(context.assetsDir, route === '' ? 'index.html' : route);
    send(response, 200, assetType, await readFile(file));
    return;
  }
  const result: ApiResult =
    request.method === 'POST'
      ? await post(context, route, await readBody(request))
      : await get(context, route, query);
  if ('bytes' in result) send(response, 200, result.type, result.bytes);
  else send(response, result.status ?? 200, 'application/json; charset=utf-8', JSON.stringify(result.json));
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Serves the UI for `folder` on 127.0.0.1 (and ::1 on the same port, where the machine has
 * IPv6) at a path that holds a fresh random token. Nothing listens on other interfaces.
 */
export async function startUi(options: UiOptions): Promise<UiServer> {
  const root = await realpath(options.folder).catch(() => undefined);
  if (root === undefined || !(await stat(root)).isDirectory()) {
    throw new UiError(
      'E_NOT_FOUND',
      `${options.folder} is not a folder; pass the project or dataset folder.`,
    );
  }
  let queue: Promise<unknown> = Promise.resolve();
  const context = {
    root,
    token: newToken(),
    port: 0,
    assetsDir: options.assetsDir ?? fileURLToPath(new URL('./client/', import.meta.url)),
    thumbnails: new Thumbnails(root),
    runs: new Runs(root, options.cli),
    checks: new Checks(root),
    labels: new Labels(root, options.cli),
    serialize<T>(work: () => Promise<T>): Promise<T> {
      const next = queue.then(work, work);
      queue = next.catch(() => undefined);
      return next;
    },
  };
  const handler = (request: IncomingMessage, response: ServerResponse) => {
    handle(request, response, context).catch((error: unknown) => sendError(response, error));
  };
  const v4 = createServer(handler);
  try {
    context.port = await listen(v4, options.port ?? 0, '127.0.0.1');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new UiError(
        'E_PORT_IN_USE',
        `Port ${options.port} is in use; pass another --port, or leave it out for a free one.`,
      );
    }
    throw error;
  }
  const servers = [v4];
  // ::1 is a convenience for browsers that resolve localhost to it; without IPv6, or with the
  // port taken there by another program, 127.0.0.1 alone serves.
  const v6 = createServer(handler);
  if (
    await listen(v6, context.port, '::1').then(
      () => true,
      () => false,
    )
  )
    servers.push(v6);
  return {
    url: `http://127.0.0.1:${context.port}/${context.token}/`,
    port: context.port,
    root,
    close: async () => {
      await context.runs.close();
      await Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeAllConnections();
            }),
        ),
      );
    },
  };
}
