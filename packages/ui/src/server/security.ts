import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { UiError } from '../errors.ts';

/** 128 random bits, URL-safe: the session token every request must carry in its path. */
export const newToken = (): string => randomBytes(16).toString('base64url');

/** The only hosts the server answers to: a DNS-rebinding page's request names its own host. */
export const allowedHosts = (port: number): string[] => [
  `127.0.0.1:${port}`,
  `localhost:${port}`,
  `[::1]:${port}`,
];

/** Headers on every response: no caching of the token's pages, no framing, no leaking referrers. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};

const forbidden = (message: string) => new UiError('E_FORBIDDEN', message, 403);

function sameToken(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Checks a request before any route sees it and returns its path below the token
 * (`/<token>/api/x` → `api/x`). Refused: another Host (DNS rebinding), an Origin other than
 * this server (another site's page), a cross-site fetch, a path without the token, a method
 * other than GET / HEAD / POST, and a POST that is not JSON from this page's origin (so no
 * HTML form or cross-site script can change a file).
 */
export function checkRequest(request: IncomingMessage, token: string, port: number): string {
  const hosts = allowedHosts(port);
  const host = request.headers.host?.toLowerCase();
  if (host === undefined || !hosts.includes(host)) {
    throw forbidden(`This server answers only to ${hosts[0]}; open the URL lora ui printed.`);
  }
  const origin = request.headers.origin;
  if (origin !== undefined && !hosts.some((allowed) => origin.toLowerCase() === `http://${allowed}`)) {
    throw forbidden('Requests from other sites are refused.');
  }
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    throw forbidden('Requests from other sites are refused.');
  }
  const url = new URL(request.url ?? '/', 'http://localhost');
  const [, first = '', ...rest] = url.pathname.split('/');
  if (!sameToken(first, token)) {
    throw forbidden(
      'This address lacks the session token; open the URL lora ui printed (it changes at every start).',
    );
  }
  const method = request.method ?? 'GET';
  if (method === 'POST') {
    if (origin === undefined) throw forbidden('A change must come from the lora ui page (no Origin header).');
    if (!request.headers['content-type']?.startsWith('application/json')) {
      throw forbidden('A change must be sent as application/json.');
    }
  } else if (method !== 'GET' && method !== 'HEAD') {
    throw new UiError('E_FORBIDDEN', `${method} is not accepted.`, 405);
  }
  return rest.join('/');
}
