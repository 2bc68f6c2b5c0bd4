import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, type RunDetails, type RunSummary } from './api.ts';
import { lossPoints } from './chart.ts';
import { LossChart, SERIES_COLORS } from './loss-chart.tsx';

/** Runs compared at once: one colour each, and a config table still readable. */
const MAX_COMPARED = SERIES_COLORS.length;

/**
 * How often the list is read again while the tab is open (and visible): a new run, a step, a
 * state change show within it. A plain poll of api/runs rather than an event stream: the list is
 * a walk of the project's folders either way, and a summary a few seconds old reads the same.
 */
const RUNS_POLL_MS = 2000;

/** A compared run's curve is read again (all its metrics) at most this often while it trains; at once when its state changes. */
const CURVE_REFRESH_MS = 10_000;

/**
 * The top-level keys of a `config.yaml` snapshot with their values as written: `stringifyConfig`
 * puts each key at the start of a line and its list items indented below it.
 */
function snapshotKeys(snapshot: string): Map<string, string> {
  const keys = new Map<string, string>();
  let current: string | undefined;
  for (const line of snapshot.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const match = /^([\w/]+):\s?(.*)$/.exec(line);
    if (match) {
      current = match[1]!;
      keys.set(current, match[2]!);
    } else if (current !== undefined) {
      const item = line.trim().replace(/^- /, '');
      const value = keys.get(current)!;
      keys.set(current, value === '' ? item : `${value}, ${item}`);
    }
  }
  return keys;
}

const when = (iso: string | null) => (iso ? new Date(iso).toLocaleString() : '–');

/** The project's run folders (from their runs.jsonl), and the loss curves and configs of those picked, side by side. */
export function RunsView() {
  const [runs, setRuns] = useState<RunSummary[]>();
  const [picked, setPicked] = useState<string[]>([]);
  const [details, setDetails] = useState<Record<string, RunDetails>>({});
  const [onlyDifferences, setOnlyDifferences] = useState(true);
  const [error, setError] = useState<string>();

  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let closed = false;
    let first = true;
    const load = () => {
      const next = () => {
        if (!closed) timer = setTimeout(load, RUNS_POLL_MS);
      };
      if (document.hidden) return next();
      api
        .runs()
        .then(({ runs: list }) => {
          if (closed) return;
          setRuns(list);
          setError(undefined);
          if (first) setPicked(list.slice(0, 2).map((run) => run.path));
          first = false;
        })
        .catch((e) => closed || setError((e as Error).message))
        .finally(next);
    };
    load();
    return () => {
      closed = true;
      clearTimeout(timer);
    };
  }, []);

  /** Per compared run: the state and step its details were read at, and when. */
  const read = useRef(new Map<string, { state: string; step?: number; at: number }>());
  useEffect(() => {
    for (const path of picked) {
      const run = runs?.find((r) => r.path === path);
      const last = read.current.get(path);
      const stale =
        last === undefined ||
        (run !== undefined &&
          (last.state !== run.status.state ||
            (last.step !== run.step && Date.now() - last.at >= CURVE_REFRESH_MS)));
      if (!stale) continue;
      read.current.set(path, {
        state: run?.status.state ?? '',
        ...(run?.step === undefined ? {} : { step: run.step }),
        at: Date.now(),
      });
      api
        .run(path)
        .then((details) => setDetails((all) => ({ ...all, [path]: details })))
        .catch((e) => setError((e as Error).message));
    }
  }, [picked, runs]);

  const shown = picked.filter((path) => details[path]);
  const series = shown.map((path, index) => ({
    name: path,
    color: SERIES_COLORS[index % SERIES_COLORS.length]!,
    ...lossPoints(details[path]!.metrics),
  }));
  const table = useMemo(() => {
    const maps = shown.map((path) => snapshotKeys(details[path]!.snapshot ?? ''));
    const keys = [...new Set(maps.flatMap((map) => [...map.keys()]))];
    return keys
      .map((key) => ({ key, values: maps.map((map) => map.get(key)) }))
      .map((row) => ({ ...row, differs: new Set(row.values).size > 1 }));
  }, [shown.join('\n'), details]);

  if (runs === undefined) {
    return error ? <p class="banner error">{error}</p> : <p class="empty">Looking for runs…</p>;
  }
  if (runs.length === 0) {
    return (
      <div class="empty">
        <p>No runs in this folder yet.</p>
        <p>A run folder is one with a runs.jsonl, which lora train writes; start one from the Train tab.</p>
      </div>
    );
  }
  const toggle = (path: string) =>
    setPicked((list) =>
      list.includes(path) ? list.filter((p) => p !== path) : [...list, path].slice(-MAX_COMPARED),
    );
  const rows = onlyDifferences && shown.length > 1 ? table.filter((row) => row.differs) : table;
  return (
    <div class="runs">
      {error && <p class="banner error">{error}</p>}
      <table class="run-list">
        <thead>
          <tr>
            <th />
            <th>run folder</th>
            <th>state</th>
            <th>started</th>
            <th>starts</th>
            <th>step</th>
            <th>loss</th>
            <th>val/loss</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((run) => (
            <tr class={picked.includes(run.path) ? 'picked' : undefined}>
              <td>
                <input
                  type="checkbox"
                  checked={picked.includes(run.path)}
                  onChange={() => toggle(run.path)}
                  aria-label={`Compare ${run.path}`}
                />
              </td>
              <td class="path">{run.path}</td>
              <td>
                <span class={`state ${run.status.state}`}>
                  {run.status.state === 'idle' ? 'not started' : run.status.state}
                  {run.status.host === undefined ? '' : ` on ${run.status.host}`}
                </span>
              </td>
              <td>{when(run.startedAt)}</td>
              <td>{run.starts}</td>
              <td>{run.step ?? '–'}</td>
              <td>{run.loss?.toFixed(4) ?? '–'}</td>
              <td>{run.valLoss?.toFixed(4) ?? '–'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {shown.length > 0 && (
        <div class="compare">
          <LossChart title="Loss of the runs compared" series={series} />
          <section class="config-compare" aria-label="Configs compared">
            <label hidden={shown.length < 2}>
              <input
                type="checkbox"
                checked={onlyDifferences}
                onChange={(e) => setOnlyDifferences(e.currentTarget.checked)}
              />{' '}
              only the keys that differ
            </label>
            <table>
              <thead>
                <tr>
                  <th>key</th>
                  {series.map((s) => (
                    <th style={{ color: s.color }}>{s.name}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {rows.map((row) => (
                  <tr class={row.differs ? 'differs' : undefined}>
                    <th>{row.key}</th>
                    {row.values.map((value) => (
                      <td>{value ?? '–'}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
            {rows.length === 0 && <p class="hint">The configs are the same.</p>}
          </section>
        </div>
      )}
    </div>
  );
}
