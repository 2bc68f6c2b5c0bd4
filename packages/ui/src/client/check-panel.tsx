import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type CheckFinding, type CheckState } from './api.ts';

/** How often the page asks a running check how far it got. */
const POLL_MS = 400;

const SEVERITY_ORDER = { error: 0, warning: 1, info: 2 } as const;

/**
 * The dataset's check (`lora dataset check`, run by the server in the background): its state,
 * polled while it runs, `start` to run it (again) and `cancel` to stop it.
 */
export function useCheck(dataset: string | undefined) {
  const [check, setCheck] = useState<CheckState | null>(null);
  const [error, setError] = useState<string>();
  /** Starts and cancels so far: an answer that an action came after is out of date (a poll sent before Cancel says 'running'). */
  const actions = useRef(0);
  useEffect(() => {
    setCheck(null);
    if (dataset !== undefined)
      api.check(dataset).then(
        (found) => setCheck(found.check),
        () => undefined,
      );
  }, [dataset]);
  useEffect(() => {
    if (dataset === undefined || check?.state !== 'running') return;
    const timer = setTimeout(() => {
      const asked = actions.current;
      api.check(dataset).then(
        (found) => {
          if (actions.current === asked) setCheck(found.check);
        },
        (e) => setError((e as Error).message),
      );
    }, POLL_MS);
    return () => clearTimeout(timer);
  }, [dataset, check]);
  const act = (call: (dataset: string) => Promise<{ check: CheckState | null }>) => {
    if (dataset === undefined) return;
    setError(undefined);
    const asked = ++actions.current;
    call(dataset).then(
      (answer) => {
        if (actions.current === asked) setCheck(answer.check);
      },
      (e) => setError((e as Error).message),
    );
  };
  return { check, error, start: () => act(api.startCheck), cancel: () => act(api.cancelCheck) };
}

/** The worst severity and the number of findings per image, for the grid's marks. */
export function marksOf(check: CheckState | null): Map<string, { severity: string; count: number }> {
  const marks = new Map<string, { severity: CheckFinding['severity']; count: number }>();
  if (check?.state !== 'done') return marks;
  for (const finding of check.findings) {
    const mark = marks.get(finding.path);
    if (mark === undefined) marks.set(finding.path, { severity: finding.severity, count: 1 });
    else {
      mark.count += 1;
      if (SEVERITY_ORDER[finding.severity] < SEVERITY_ORDER[mark.severity]) mark.severity = finding.severity;
    }
  }
  return marks;
}

interface CheckPanelProps {
  check: CheckState | null;
  error?: string | undefined;
  /** Paths of the dataset's images: their findings link to them. */
  images: ReadonlySet<string>;
  selected: string | undefined;
  onSelect: (path: string) => void;
  /** Runs the check (again); absent when there is nothing to check. */
  onStart: (() => void) | undefined;
  /** Stops the running check. */
  onCancel: () => void;
}

/** The check's progress, then its summary and findings, errors first; an image's finding selects it. */
export function CheckPanel({ check, error, images, selected, onSelect, onStart, onCancel }: CheckPanelProps) {
  const button = onStart && check?.state !== 'running' && (
    <button type="button" onClick={onStart}>
      {check === null ? 'Check images' : 'Check again'}
    </button>
  );
  if (check === null || error) {
    return (
      <section class="check" aria-label="Dataset check">
        <p class="hint-line">
          {button} decodes every image and lists what training would skip or warn about (lora dataset check).
        </p>
        {error && <p class="banner error">{error}</p>}
      </section>
    );
  }
  if (check.state === 'running') {
    return (
      <section class="check" aria-label="Dataset check">
        <h2>Checking the images…</h2>
        <progress max={Math.max(1, check.total)} value={check.decoded} />
        <p class="hint-line">
          {check.decoded} of {check.total} images decoded{' '}
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
        </p>
      </section>
    );
  }
  if (check.state === 'cancelled') {
    return (
      <section class="check" aria-label="Dataset check">
        <p class="hint-line" role="status">
          Check cancelled after {check.decoded} of {check.total} images. {button}
        </p>
      </section>
    );
  }
  if (check.state === 'failed') {
    return (
      <section class="check" aria-label="Dataset check">
        <p class="banner error" role="alert">
          The check failed: {check.message}
        </p>
        {button}
      </section>
    );
  }
  const { summary } = check;
  const findings = [...check.findings].sort(
    (a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] || (a.path < b.path ? -1 : 1),
  );
  return (
    <section class="check" aria-label="Dataset check">
      <h2>Check {button}</h2>
      <p class="summary-line">
        {summary.imagesFound} images found, {summary.imagesUsed} used, {summary.imagesSkipped} skipped;{' '}
        {summary.uncaptioned} without caption, {summary.duplicates} duplicate
        {summary.duplicates === 1 ? '' : 's'}; {summary.samplesPerEpoch} samples per epoch
      </p>
      {findings.length === 0 ? (
        <p class="hint-line">No findings: training uses every image as it is.</p>
      ) : (
        <ul class="findings">
          {findings.map((finding) => {
            const linked = images.has(finding.path);
            const where = `${finding.path}${finding.line === undefined ? '' : `:${finding.line}`}`;
            return (
              <li class={`${finding.severity}${finding.path === selected ? ' current' : ''}`}>
                <b class="severity">{finding.severity}</b>{' '}
                {linked ? (
                  <button type="button" class="link" onClick={() => onSelect(finding.path)}>
                    {where}
                  </button>
                ) : (
                  <span class="file">{where}</span>
                )}
                : {finding.reason}
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
