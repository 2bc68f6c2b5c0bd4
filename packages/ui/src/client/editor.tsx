import { addTag, lint } from '@lora/caption-markup';
import { useMemo, useRef, useState } from 'preact/hooks';
import {
  ApiError,
  api,
  type ImageEntry,
  type LabellerChoice,
  type SuggestedTag,
  thumbnailUrl,
} from './api.ts';
import { highlight } from './highlight.ts';
import { Suggestions } from './suggestions.tsx';

interface EditorProps {
  dataset: string;
  image: ImageEntry;
  /** Captions now on disk (after a save, or found by a conflict). */
  onSaved: (images: readonly ImageEntry[]) => void;
  /** Moves the selection by this many images. */
  onStep: (by: number) => void;
  /** The model tag suggestions come from. */
  labeller: LabellerChoice;
  onChooseModel: () => void;
}

type Status = { kind: 'idle' | 'saving' | 'saved' } | { kind: 'error'; message: string };

/**
 * The caption editor: a textarea over a highlighted copy of its text (markup roles, weights,
 * networks, lint findings), the findings listed below, and a save that the server refuses when
 * the caption changed on disk since it was read, showing the version on disk.
 * Keys: Ctrl+S saves, Ctrl+Enter saves and moves on, Alt+↑/↓ move, Esc reverts.
 */
export function Editor({ dataset, image, onSaved, onStep, labeller, onChooseModel }: EditorProps) {
  const [draft, setDraft] = useState(image.caption ?? '');
  /** The caption on disk the draft started from: what a save expects to replace. */
  const [base, setBase] = useState(image.caption);
  const [conflict, setConflict] = useState<string | null | undefined>();
  const [status, setStatus] = useState<Status>({ kind: 'idle' });
  const overlay = useRef<HTMLPreElement>(null);
  const diagnostics = useMemo(() => lint(draft), [draft]);
  const segments = useMemo(() => highlight(draft, diagnostics), [draft, diagnostics]);
  const dirty = draft !== (base ?? '');

  const save = async (then?: () => void) => {
    setStatus({ kind: 'saving' });
    try {
      const { images } = await api.saveCaption(dataset, image.path, base, draft);
      setBase(draft);
      setConflict(undefined);
      setStatus({ kind: 'saved' });
      onSaved(images);
      then?.();
    } catch (error) {
      if (error instanceof ApiError && error.code === 'E_CAPTION_CONFLICT') {
        const current = error.conflicts[0]?.current ?? null;
        setConflict(current);
        onSaved([{ ...image, caption: current }]); // the grid shows what the file says now
      }
      setStatus({ kind: 'error', message: error instanceof Error ? error.message : String(error) });
    }
  };

  const onKeyDown = (event: KeyboardEvent) => {
    if ((event.ctrlKey || event.metaKey) && event.key === 's') {
      event.preventDefault();
      void save();
    } else if ((event.ctrlKey || event.metaKey) && event.key === 'Enter') {
      event.preventDefault();
      void save(() => onStep(1));
    } else if (event.altKey && (event.key === 'ArrowDown' || event.key === 'ArrowUp')) {
      event.preventDefault();
      if (dirty) setStatus({ kind: 'error', message: 'Unsaved changes: Ctrl+S saves them, Esc reverts.' });
      else onStep(event.key === 'ArrowDown' ? 1 : -1);
    } else if (event.key === 'Escape') {
      setDraft(base ?? '');
      setStatus({ kind: 'idle' });
    } else if (event.key === 'Enter') {
      event.preventDefault(); // a caption is one line
    }
  };

  const addSuggested = (tag: SuggestedTag) => {
    try {
      setDraft(addTag(draft, tag.text, tag.role).text);
      setStatus({ kind: 'idle' });
    } catch (error) {
      setStatus({ kind: 'error', message: (error as Error).message });
    }
  };

  const select = (from: number, to: number) => {
    const area = overlay.current?.nextElementSibling as HTMLTextAreaElement | null;
    area?.focus();
    area?.setSelectionRange(from, to);
  };

  return (
    <section class="editor" aria-label="Caption editor">
      <img class="preview" src={thumbnailUrl(image.path)} alt={image.path} />
      <h2 title={image.path}>{image.path}</h2>
      <p class="source">
        {image.captionFile ? `caption in ${image.captionFile}` : 'no caption yet: saving creates one'}
      </p>
      <div class="code">
        <pre ref={overlay} aria-hidden="true">
          {segments.map(({ text, className }) =>
            className ? <span class={className}>{text}</span> : text,
          )}{' '}
        </pre>
        <textarea
          value={draft}
          spellcheck={false}
          aria-label="Caption"
          onInput={(event) => {
            setDraft(event.currentTarget.value.replace(/[\r\n]+/g, ' '));
            if (status.kind !== 'saving') setStatus({ kind: 'idle' });
          }}
          onScroll={(event) => {
            if (overlay.current) overlay.current.scrollTop = event.currentTarget.scrollTop;
          }}
          onKeyDown={onKeyDown}
        />
      </div>
      <div class="actions">
        <button
          type="button"
          class="primary"
          disabled={!dirty || status.kind === 'saving'}
          onClick={() => void save()}
        >
          Save
        </button>
        <button type="button" disabled={!dirty} onClick={() => setDraft(base ?? '')}>
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
                  ? 'Unsaved changes'
                  : ''}
        </span>
      </div>
      {conflict !== undefined && (
        <div class="conflict" role="alert">
          <p>On disk now:</p>
          <pre>{conflict ?? '(no caption)'}</pre>
          <button
            type="button"
            onClick={() => {
              setDraft(conflict ?? '');
              setBase(conflict);
              setConflict(undefined);
              setStatus({ kind: 'idle' });
            }}
          >
            Take the version on disk
          </button>
          <button
            type="button"
            onClick={() => {
              setBase(conflict);
              setConflict(undefined);
              setStatus({ kind: 'idle' });
            }}
          >
            Keep mine (Save replaces it)
          </button>
        </div>
      )}
      {diagnostics.length > 0 && (
        <ul class="lint" aria-label="Caption lint">
          {diagnostics.map((diagnostic) => (
            <li class={diagnostic.severity}>
              <button type="button" onClick={() => select(diagnostic.span[0], diagnostic.span[1])}>
                <b>{diagnostic.code}</b> {diagnostic.message}
              </button>
            </li>
          ))}
        </ul>
      )}
      <Suggestions
        image={image.path}
        labeller={labeller}
        caption={draft}
        onAdd={addSuggested}
        onChooseModel={onChooseModel}
      />
      <p class="keys">Ctrl+S save · Ctrl+Enter save and next · Alt+↑/↓ previous/next · Esc revert</p>
    </section>
  );
}
