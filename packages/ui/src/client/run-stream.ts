import { useEffect, useState } from 'preact/hooks';
import { type MetricsRecord, type RunStatus, runEventsUrl, type SampleFile } from './api.ts';

export interface RunStream {
  status?: RunStatus;
  records: MetricsRecord[];
  samples: SampleFile[];
  /** False while the browser reconnects (it does so on its own, resuming from the last record). */
  connected: boolean;
  /** The server could not read the run folder on its last look (it keeps looking). */
  problem?: string;
}

/**
 * Follows a run folder through the server's event stream. The browser's EventSource reconnects by
 * itself and sends the id of the last `metrics` event, so the server sends only what came after;
 * samples and status are sent again on a new connection and merged here.
 */
export function useRunStream(path: string | undefined): RunStream {
  const [stream, setStream] = useState<RunStream>({ records: [], samples: [], connected: false });
  useEffect(() => {
    setStream({ records: [], samples: [], connected: false });
    if (path === undefined) return;
    const source = new EventSource(runEventsUrl(path));
    const on = (event: string, apply: (data: never, current: RunStream) => Partial<RunStream>) =>
      source.addEventListener(event, (message) => {
        const data = JSON.parse((message as MessageEvent<string>).data) as never;
        setStream((current) => ({ ...current, ...apply(data, current), connected: true }));
      });
    on('status', (status: RunStatus) => ({ status }));
    on('problem', ({ message }: { message: string | null }) => ({ problem: message ?? undefined }));
    on('reset', () => ({ records: [] }));
    on('metrics', (records: MetricsRecord[], current) => ({ records: [...current.records, ...records] }));
    on('samples', (samples: SampleFile[], current) => ({
      samples: [
        ...current.samples,
        ...samples.filter((s) => !current.samples.some((c) => c.path === s.path)),
      ],
    }));
    source.onopen = () => setStream((current) => ({ ...current, connected: true }));
    source.onerror = () => setStream((current) => ({ ...current, connected: false }));
    return () => source.close();
  }, [path]);
  return stream;
}
