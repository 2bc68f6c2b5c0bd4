import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, type MetricsRecord, type RunStatus, type SampleFile, sampleUrl } from './api.ts';
import { lossPoints } from './chart.ts';
import { LossChart, SERIES_COLORS } from './loss-chart.tsx';
import { useRunStream } from './run-stream.ts';

/** Sample steps shown, newest first: enough to see the answers change, not a wall of text. */
const SHOWN_SAMPLE_STEPS = 3;

const STATE_WORDS: Record<RunStatus['state'], string> = {
  starting: 'starting…',
  running: 'running',
  stopping: 'stopping after this step (saving a checkpoint and the adapter)…',
  finished: 'finished',
  stopped: 'stopped (checkpoint and adapter saved)',
  failed: 'failed',
  interrupted: 'interrupted (it ended without saving: killed, or the machine restarted)',
  idle: 'not running',
};

export const isGoing = (status: RunStatus | undefined): boolean =>
  status !== undefined && ['starting', 'running', 'stopping'].includes(status.state);

const format = (value: number | undefined, digits = 4) =>
  value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits);

function SampleText({ path }: { path: string }) {
  const [text, setText] = useState<string>();
  useEffect(() => {
    fetch(sampleUrl(path))
      .then((response) => (response.ok ? response.text() : `(cannot read ${path})`))
      .then(setText, () => setText(`(cannot read ${path})`));
  }, [path]);
  return <pre class="sample-text">{text ?? '…'}</pre>;
}

function Samples({ samples }: { samples: readonly SampleFile[] }) {
  const steps = [...new Set(samples.map((s) => s.step))].sort((a, b) => b - a).slice(0, SHOWN_SAMPLE_STEPS);
  if (steps.length === 0) return null;
  return (
    <section class="samples" aria-label="Samples">
      <h3>Samples</h3>
      {steps.map((step) => (
        <div class="sample-step">
          <h4>step {step}</h4>
          {samples
            .filter((s) => s.step === step)
            .map((sample) =>
              sample.kind === 'text' ? (
                <SampleText path={sample.path} />
              ) : (
                <img
                  class="sample-image"
                  src={sampleUrl(sample.path)}
                  alt={sample.path}
                  title={sample.path}
                />
              ),
            )}
        </div>
      ))}
    </section>
  );
}

/** The last value of `key` among the records. */
const last = (records: readonly MetricsRecord[], key: string) =>
  records.findLast((record) => Number.isFinite(record[key]))?.[key];

/**
 * One run folder, live: state, the latest numbers, the loss chart with validation points,
 * samples as they are written, the console's end and the run's error. It reads the folder, so a
 * reloaded page (or one opened while a terminal's run goes) shows the same.
 */
export function RunPanel({ path, onStatus }: { path: string; onStatus?: (status: RunStatus) => void }) {
  const { status, records, samples, connected, problem } = useRunStream(path);
  const [error, setError] = useState<string>();
  useEffect(() => {
    if (status) onStatus?.(status);
  }, [status]);
  const points = useMemo(() => lossPoints(records), [records]);
  const speed = last(records, 'tokens_per_s') ?? last(records, 'images_per_s');
  const stop = () => {
    setError(undefined);
    api.stopRun(path).catch((e) => setError((e as Error).message));
  };

  return (
    <section class="run-panel" aria-label="Run">
      <div class="run-head">
        <h2 title={path}>{path}</h2>
        <span class={`state ${status?.state ?? ''}`} role="status">
          {status ? STATE_WORDS[status.state] : 'connecting…'}
          {status?.pid !== undefined && isGoing(status) && ` (pid ${status.pid})`}
        </span>
        {status?.host === undefined && (status?.state === 'running' || status?.state === 'stopping') && (
          <button type="button" class="danger" disabled={status.state === 'stopping'} onClick={stop}>
            Stop
          </button>
        )}
        {!connected && status && <span class="offline">reconnecting…</span>}
      </div>
      {status?.state === 'running' && !status.ours && (
        <p class="hint">
          {status.host === undefined
            ? 'Started outside this page (a terminal, another lora ui); Stop sends it Ctrl-C.'
            : `Running on ${status.host}: stop it there.`}
        </p>
      )}
      {error && <p class="banner error">{error}</p>}
      {problem && <p class="banner error">Cannot read the run folder: {problem}</p>}
      {status?.error && (
        <p class="banner error" role="alert">
          {status.error.message} [{status.error.code}]
        </p>
      )}
      <dl class="numbers">
        <dt>step</dt>
        <dd class="step">{points.loss.at(-1)?.step ?? '–'}</dd>
        <dt>loss</dt>
        <dd class="loss">{format(points.loss.at(-1)?.loss)}</dd>
        <dt>val/loss</dt>
        <dd class="val-loss">{format(points.val.at(-1)?.loss)}</dd>
        <dt>lr</dt>
        <dd>{last(records, 'lr')?.toExponential(2) ?? '–'}</dd>
        <dt>
          {last(records, 'tokens_per_s') !== undefined
            ? 'tokens/s'
            : last(records, 'images_per_s') !== undefined
              ? 'images/s'
              : 'speed'}
        </dt>
        <dd>{format(speed, 1)}</dd>
      </dl>
      <LossChart
        title={`Loss of ${path}`}
        series={[{ name: 'loss', color: SERIES_COLORS[0]!, loss: points.loss, val: points.val }]}
      />
      <Samples samples={samples} />
      {status?.output && (
        <details class="console" open={status.state === 'failed'}>
          <summary>Console</summary>
          <pre>{status.output}</pre>
        </details>
      )}
    </section>
  );
}
