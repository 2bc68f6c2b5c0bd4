// Calls to the lora ui server. Every URL is relative to the page's /<token>/ address, so the
// session token travels with each request without the script ever handling it.

export interface ImageEntry {
  path: string;
  dataset: string;
  caption: string | null;
  captionFrom: 'metadata' | 'sidecar' | null;
  captionFile: string | null;
}

export interface Conflict {
  image: string;
  expected: string | null;
  current: string | null;
}

export interface Change {
  image: string;
  before: string;
  after: string;
}

/** A refused request: the server's code and message, and the conflicts of a 409. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly conflicts: Conflict[] = [],
  ) {
    super(message);
  }
}

async function call<T>(path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(
      path,
      body === undefined
        ? {}
        : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) },
    );
  } catch {
    throw new ApiError('E_OFFLINE', 'Cannot reach the lora ui server; is `lora ui` still running?');
  }
  const json = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = json.error ?? { code: 'E_HTTP', message: `The server answered ${response.status}.` };
    throw new ApiError(error.code, error.message, json.conflicts);
  }
  return json as T;
}

export const api = {
  project: () => call<{ name: string; datasets: { path: string }[] }>('api/project'),
  dataset: (path: string) =>
    call<{ path: string; images: ImageEntry[] }>(`api/dataset?path=${encodeURIComponent(path)}`),
  saveCaption: (dataset: string, image: string, expected: string | null, caption: string) =>
    call<{ images: ImageEntry[] }>('api/caption', { dataset, image, expected, caption }),
  previewRename: (dataset: string, from: string, to: string) =>
    call<{ changes: Change[]; skipped: { image: string; reason: string }[] }>('api/bulk/preview', {
      dataset,
      op: { kind: 'rename', from, to },
    }),
  applyChanges: (dataset: string, changes: Change[]) =>
    call<{ images: ImageEntry[] }>('api/bulk/apply', { dataset, changes }),
};

export const thumbnailUrl = (path: string): string => `thumbnail?path=${encodeURIComponent(path)}`;
