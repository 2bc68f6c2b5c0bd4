import { useState } from 'preact/hooks';
import { ApiError, api, type BulkOperation, type Change, type ImageEntry } from './api.ts';
import { ChangeList } from './change-list.tsx';

interface BulkEditProps {
  dataset: string;
  /** The tag filter's value: the tag the dialog starts with. */
  tag: string;
  /** The images the grid shows now, when a filter hides some. */
  shown?: readonly string[];
  onClose: () => void;
  onApplied: (images: readonly ImageEntry[]) => void;
  /** The captions changed on disk meanwhile: the list should be read again. */
  onConflict: () => void;
}

const KINDS = {
  rename: 'Rename',
  add: 'Add',
  remove: 'Remove',
  promote: 'Make core',
} as const;
type Kind = keyof typeof KINDS;

/**
 * Tag edits over many captions: rename, add (core, mood or plain), remove, or make a tag core, in
 * every caption of the dataset or only the images the filter shows. A preview lists each caption
 * before and after; Apply writes them all, or none when any changed on disk since the preview.
 */
export function BulkEdit({ dataset, tag: initial, shown, onClose, onApplied, onConflict }: BulkEditProps) {
  const [kind, setKind] = useState<Kind>('rename');
  const [tag, setTag] = useState(initial);
  const [to, setTo] = useState('');
  const [role, setRole] = useState<'core' | 'mood' | 'plain'>('plain');
  const [onlyShown, setOnlyShown] = useState(shown !== undefined);
  const [preview, setPreview] = useState<{
    changes: Change[];
    skipped: { image: string; reason: string }[];
  }>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const op = (): BulkOperation =>
    kind === 'rename' ? { kind, from: tag, to } : kind === 'add' ? { kind, tag, role } : { kind, tag };
  const changed = (apply: () => void) => {
    apply();
    setPreview(undefined);
  };
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
      <div class="dialog" role="dialog" aria-label="Edit tags">
        <h2>Edit tags in {dataset || '.'}</h2>
        <form
          onSubmit={(event) => {
            event.preventDefault();
            void run(async () =>
              setPreview(await api.previewBulk(dataset, op(), onlyShown && shown ? [...shown] : undefined)),
            );
          }}
        >
          <label>
            Edit{' '}
            <select
              value={kind}
              onChange={(e) => changed(() => setKind(e.currentTarget.value as Kind))}
              aria-label="Edit"
            >
              {Object.entries(KINDS).map(([value, label]) => (
                <option value={value}>{label}</option>
              ))}
            </select>
          </label>
          <label>
            Tag <input value={tag} onInput={(e) => changed(() => setTag(e.currentTarget.value))} required />
          </label>
          {kind === 'rename' && (
            <label>
              New name{' '}
              <input value={to} onInput={(e) => changed(() => setTo(e.currentTarget.value))} required />
            </label>
          )}
          {kind === 'add' && (
            <label>
              As{' '}
              <select
                value={role}
                onChange={(e) => changed(() => setRole(e.currentTarget.value as 'core' | 'mood' | 'plain'))}
                aria-label="Role of the new tag"
              >
                <option value="plain">plain (before the mood tags)</option>
                <option value="core">**core** (first)</option>
                <option value="mood">*mood* (last)</option>
              </select>
            </label>
          )}
          {shown !== undefined && (
            <label>
              <input
                type="checkbox"
                checked={onlyShown}
                onChange={(e) => changed(() => setOnlyShown(e.currentTarget.checked))}
              />{' '}
              only the {shown.length} image{shown.length === 1 ? '' : 's'} shown
            </label>
          )}
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
                ? kind === 'add'
                  ? `Every caption has "${tag}" already.`
                  : `No caption changes: none has the tag "${tag}"${kind === 'promote' ? ' outside **core**' : ''}.`
                : `${preview.changes.length} caption${preview.changes.length === 1 ? '' : 's'} change:`}
              {preview.skipped.length > 0 &&
                ` ${preview.skipped.length} left as ${preview.skipped.length === 1 ? 'it is' : 'they are'}: ${preview.skipped[0]!.reason}.`}
            </p>
            <ChangeList changes={preview.changes} />
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
