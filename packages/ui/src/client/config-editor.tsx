import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, api, type Validation } from './api.ts';

/** Quiet time after the last key before the text is validated: a pause in typing, not every key. */
const VALIDATE_AFTER_MS = 300;

export interface ConfigState {
  /** The text differs from the file. */
  dirty: boolean;
  validation?: Validation;
}

interface ConfigEditorProps {
  path: string;
  /** What the page should know to offer a run: saved or not, valid or not. */
  onState: (state: ConfigState) => void;
}

type Status = { kind: 'idle' | 'saving' | 'saved' } | { kind: 'error'; message: string };

/** The offset of 1-based `line`:`column` in `text`. */
const offsetOf = (text: string, line: number, column: number) => {
  let offset = 0;
  for (let l = 1; l < line; l++) offset = text.indexOf('\n', offset) + 1;
  return Math.min(text.length, offset + column - 1);
};

/**
 * A YAML config in a plain editor with line numbers. The text is validated as it is typed, by the
 * server, with `lora config validate`'s loader (so the same messages at the same line:column, and
 * the files it names checked on disk); lines with a problem are marked, and a problem's position
 * is a click away. Ctrl+S saves atomically, refused when the file changed since it was read.
 */
export function ConfigEditor({ path, onState }: ConfigEditorProps) {
  const [text, setText] = useState<string>();
  /** The file's text the draft started from: what a save expects to replace. */
  const [base, setBase] = useState<string>();
  const [validation, setValidation] = useState<Validation>();
  const [status, setStatus] = useState<Status>({ kind: 'idle' });
  const [checking, setChecking] = useState(false);
  const area = useRef<HTMLTextAreaElement>(null);
  const gutter = useRef<HTMLPreElement>(null);
  const latest = useRef(0);

  useEffect(() => {
    setText(undefined);
    setValidation(undefined);
    setStatus({ kind: 'idle' });
    api
      .config(path)
      .then(({ text: loaded }) => {
        setText(loaded);
        setBase(loaded);
      })
      .catch((error) => setStatus({ kind: 'error', message: (error as Error).message }));
  }, [path]);

  useEffect(() => {
    if (text === undefined) return;
    const request = ++latest.current;
    setChecking(true);
    const timer = setTimeout(() => {
      api
        .validateConfig(path, text)
        .then((result) => {
          // An answer to older text is dropped: only the latest request's may show.
          if (request !== latest.current) return;
          setValidation(result);
          setChecking(false);
        })
        .catch((error) => setStatus({ kind: 'error', message: (error as Error).message }));
    }, VALIDATE_AFTER_MS);
    return () => clearTimeout(timer);
  }, [path, text]);

  const dirty = text !== undefined && text !== base;
  // While the text is being checked, the last answer is not about it: no run starts on it.
  useEffect(
    () => onState({ dirty, ...(validation && !checking ? { validation } : {}) }),
    [dirty, validation, checking],
  );

  if (text === undefined) {
    return status.kind === 'error' ? (
      <p class="banner error">{status.message}</p>
    ) : (
      <p class="empty">Reading {path}…</p>
    );
  }

  const save = async () => {
    setStatus({ kind: 'saving' });
    try {
      await api.saveConfig(path, base ?? null, text);
      setBase(text);
      setStatus({ kind: 'saved' });
    } catch (error) {
      const message = (error as Error).message;
      setStatus({ kind: 'error', message });
      if (error instanceof ApiError && error.code === 'E_CONFIG_CONFLICT') {
        // Saving again replaces what is on disk now, knowingly: the conflict was shown.
        api.config(path).then(
          ({ text: current }) => {
            setBase(current);
            setStatus({
              kind: 'error',
              message: `${message} Save again to replace it with your text, or Revert to load the file's.`,
            });
          },
          () => undefined,
        );
      }
    }
  };

  const problems = validation?.valid === false ? validation.problems : [];
  const badLines = new Map(problems.filter((p) => p.file === path).map((p) => [p.line, p.message]));
  const lines = text.split('\n').length;
  const select = (line: number, column: number) => {
    const offset = offsetOf(text, line, column);
    area.current?.focus();
    area.current?.setSelectionRange(offset, offset);
  };

  return (
    <section class="config-editor" aria-label="Config editor">
      <div class="code-yaml">
        <pre class="gutter" ref={gutter} aria-hidden="true">
          {Array.from({ length: lines }, (_, i) => (
            <span class={badLines.has(i + 1) ? 'bad' : undefined} title={badLines.get(i + 1)}>
              {i + 1}
              {'\n'}
            </span>
          ))}
        </pre>
        <textarea
          ref={area}
          value={text}
          spellcheck={false}
          wrap="off"
          aria-label="Config"
          onInput={(e) => {
            setText(e.currentTarget.value);
            setStatus({ kind: 'idle' });
          }}
          onScroll={(e) => {
            if (gutter.current) gutter.current.scrollTop = e.currentTarget.scrollTop;
          }}
          onKeyDown={(event) => {
            if ((event.ctrlKey || event.metaKey) && event.key === 's') {
              event.preventDefault();
              void save();
            }
          }}
        />
      </div>
      <div class="actions">
        <button type="button" class="primary" disabled={!dirty || status.kind === 'saving'} onClick={save}>
          Save
        </button>
        <button
          type="button"
          disabled={!dirty}
          onClick={() => {
            setText(base);
            setStatus({ kind: 'idle' });
          }}
        >
          Revert
        </button>
        <span class={`status ${status.kind}`} role="status">
          {status.kind === 'saving'
            ? 'Saving…'
            : status.kind === 'saved'
              ? 'Saved'
              : status.kind === 'error'
                ? status.message
                : dirty
                  ? 'Unsaved changes (Ctrl+S saves)'
                  : ''}
        </span>
      </div>
      {checking && <p class="validity">Checking…</p>}
      {!checking && validation?.valid === true && (
        <p class="validity valid">
          Valid: task {validation.task}, output {validation.outputDir}
          {validation.warnings.length > 0 &&
            `; ${validation.warnings.length} warning${validation.warnings.length === 1 ? '' : 's'}`}
        </p>
      )}
      {problems.length > 0 && (
        <>
          <p class="validity invalid">
            {problems.length} problem{problems.length === 1 ? '' : 's'} (as lora config validate reports
            them):
          </p>
          <ul class="problems">
            {problems.map((problem) => (
              <li>
                <button
                  type="button"
                  onClick={() => problem.file === path && select(problem.line, problem.column)}
                >
                  <b class="where">
                    {problem.file}:{problem.line}:{problem.column}
                  </b>{' '}
                  {problem.key && `${problem.key}: `}
                  {problem.message}
                </button>
              </li>
            ))}
          </ul>
        </>
      )}
      {validation?.valid === true && validation.warnings.length > 0 && (
        <ul class="problems warnings">
          {validation.warnings.map((warning) => (
            <li>
              <b class="where">warning</b> {warning.key && `${warning.key}: `}
              {warning.message}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
