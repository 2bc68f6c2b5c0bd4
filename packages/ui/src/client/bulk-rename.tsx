import { useState } from 'preact/hooks';
import { ApiError, api, type Change, type ImageEntry } from './api.ts';
import { highlight } from './highlight.ts';

interface BulkRenameProps {
  dataset: string;
  from: string;
  onClose: () => void;
  onApplied: (images: readonly ImageEntry[]) => void;
  /** The captions changed on disk meanwhile: the list should be read again. */
  onConflict: () => void;
}

const Highlighted = ({ text }: { text: string }) => (
  <>
    {highlight(text).map(({ text: part, className }) =>
      className ? <span class={className}>{part}</span> : part,
    )}
  </>
);

/** Rename a tag in every caption of the dataset: preview each change, then apply them all or none. */
export function BulkRename({ dataset, from: initial, onClose, onApplied, onConflict }: BulkRenameProps) {
  const [from, setFrom] = useState(initial);
  const [to, setTo] = useState('');
  const [preview, setPreview] = useState<{
    changes: Change[];
    skipped: { image: string; reason: string }[];
  }>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const run = async (work: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    try {
      await work();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      if (e instanceof ApiError && e.code === 'E_CAPTION_CONFLICT') {
        setPreview(undefined);
        onConflict();
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="dialog-backdrop">
      <div class="dialog" role="dialog" aria-label="Rename a tag">
        <h2>Rename a tag in {dataset || '.'}</h2>
        <form
          onSubmit={(event) => {
            event.preventDefault();
            void run(async () => setPreview(await api.previewRename(dataset, from, to)));
          }}
        >
          <label>
            Tag{' '}
            <input
              value={from}
              onInput={(e) => {
                setFrom(e.currentTarget.value);
                setPreview(undefined);
              }}
              required
            />
          </label>
          <label>
            New name{' '}
            <input
              value={to}
              onInput={(e) => {
                setTo(e.currentTarget.value);
                setPreview(undefined);
              }}
              required
            />
          </label>
          <button type="submit" disabled={busy}>
            Preview
          </button>
        </form>
        {error && (
          <p class="banner error" role="alert">
            {error}
          </p>
        )}
        {preview && (
          <>
            <p class="summary">
              {preview.changes.length === 0
                ? `No caption has the tag "${from}".`
                : `${preview.changes.length} caption${preview.changes.length === 1 ? '' : 's'} change:`}
              {preview.skipped.length > 0 &&
                ` ${preview.skipped.length} left as they are (the tag is split by markup there; edit those by hand).`}
            </p>
            <ol class="changes">
              {preview.changes.map((change) => (
                <li>
                  <b>{change.image}</b>
                  <div class="before">
                    <Highlighted text={change.before} />
                  </div>
                  <div class="after">
                    <Highlighted text={change.after} />
                  </div>
                </li>
              ))}
            </ol>
          </>
        )}
        <div class="actions">
          <button
            type="button"
            class="primary"
            disabled={busy || !preview || preview.changes.length === 0}
            onClick={() =>
              void run(async () => onApplied((await api.applyChanges(dataset, preview!.changes)).images))
            }
          >
            Apply {preview?.changes.length ?? ''} changes
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
        </div>
      </div>
    </div>
  );
}
