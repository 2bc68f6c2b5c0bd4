import { useEffect, useState } from 'preact/hooks';
import {
  ApiError,
  api,
  type ImageEntry,
  type LabellerChoice,
  type LabelRequest,
  type LabelState,
} from './api.ts';
import { ChangeList } from './change-list.tsx';

/** How often the page asks a running `lora label` how far it got. */
const POLL_MS = 400;

interface LabelDialogProps {
  dataset: string;
  onClose: () => void;
  onApplied: (images: readonly ImageEntry[]) => void;
  onConflict: () => void;
  /** The labeller chosen last; a change is kept for the editor's suggestions too. */
  labeller: LabellerChoice;
  onLabellerChange: (labeller: LabellerChoice) => void;
}

const MODELS = {
  none: 'from file and folder names',
  wd14: 'WD14 tagger (an ONNX model in the project)',
  clip: 'CLIP zero-shot (an ONNX export in the project)',
} as const;

/** `lora label --device`: auto picks as `lora train`'s `device: auto` does. */
const DEVICES = {
  auto: 'auto (CUDA, then a GPU through WebGPU, then the CPU)',
  cpu: 'CPU',
  cuda: 'CUDA (NVIDIA)',
  webgpu: 'WebGPU (any GPU)',
} as const;

/**
 * `lora label` from the page: it proposes captions (`--dry-run`, nothing written), the dialog
 * shows each before and after, and Apply saves them as bulk edits are saved (all or none, refused
 * when a caption changed on disk meanwhile).
 */
export function LabelDialog({
  dataset,
  onClose,
  onApplied,
  onConflict,
  labeller,
  onLabellerChange,
}: LabelDialogProps) {
  const [request, setRequest] = useState<LabelRequest>({ dataset, ...labeller, overwrite: false });
  const [job, setJob] = useState<LabelState>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (job?.state !== 'running') return;
    const timer = setTimeout(
      () =>
        api.label(dataset).then(
          (found) => setJob(found.label ?? undefined),
          (e) => setError((e as Error).message),
        ),
      POLL_MS,
    );
    return () => clearTimeout(timer);
  }, [job]);

  const set = (change: Partial<LabelRequest>) => {
    const next = { ...request, ...change };
    setRequest(next);
    setJob(undefined);
    onLabellerChange({
      model: next.model,
      ...(next.modelPath ? { modelPath: next.modelPath } : {}),
      ...(next.tags ? { tags: next.tags } : {}),
      ...(next.device ? { device: next.device } : {}),
    });
  };
  const propose = () => {
    setError(undefined);
    api.startLabel(request).then(
      (started) => setJob(started.label),
      (e) => setError((e as Error).message),
    );
  };
  const apply = async (changes: NonNullable<Extract<LabelState, { state: 'done' }>['changes']>) => {
    setBusy(true);
    setError(undefined);
    try {
      onApplied((await api.applyChanges(dataset, changes)).images);
    } catch (e) {
      setError((e as Error).message);
      if (e instanceof ApiError && e.code === 'E_CAPTION_CONFLICT') {
        setJob(undefined);
        onConflict();
      }
    } finally {
      setBusy(false);
    }
  };
  const done = job?.state === 'done' ? job : undefined;

  return (
    <div class="dialog-backdrop">
      <div class="dialog" role="dialog" aria-label="Label images">
        <h2>Label the images of {dataset || '.'}</h2>
        <form
          onSubmit={(event) => {
            event.preventDefault();
            propose();
          }}
        >
          <label>
            Captions{' '}
            <select
              value={request.model}
              onChange={(e) => set({ model: e.currentTarget.value as LabelRequest['model'] })}
              aria-label="Labeller"
            >
              {Object.entries(MODELS).map(([value, words]) => (
                <option value={value}>{words}</option>
              ))}
            </select>
          </label>
          {request.model !== 'none' && (
            <label>
              {request.model === 'wd14' ? 'Model (.onnx)' : 'Model folder'}{' '}
              <input
                value={request.modelPath ?? ''}
                placeholder={request.model === 'wd14' ? 'models/wd14/model.onnx' : 'models/clip'}
                onInput={(e) => set({ modelPath: e.currentTarget.value })}
                required
              />
            </label>
          )}
          {request.model === 'wd14' && (
            <label>
              Tags{' '}
              <input
                value={request.tags ?? ''}
                placeholder="models/wd14/selected_tags.csv"
                onInput={(e) => set({ tags: e.currentTarget.value })}
                required
              />
            </label>
          )}
          {request.model !== 'none' && (
            <label>
              Device{' '}
              <select
                value={request.device ?? 'auto'}
                onChange={(e) => set({ device: e.currentTarget.value as LabelRequest['device'] })}
                aria-label="Device"
              >
                {Object.entries(DEVICES).map(([value, words]) => (
                  <option value={value}>{words}</option>
                ))}
              </select>
            </label>
          )}
          <label>
            Template{' '}
            <input
              value={request.template ?? ''}
              placeholder="**{caption}**, high quality, detailed"
              onInput={(e) => set({ template: e.currentTarget.value })}
              aria-label="Template"
            />
          </label>
          <label>
            <input
              type="checkbox"
              checked={request.overwrite}
              onChange={(e) => set({ overwrite: e.currentTarget.checked })}
            />{' '}
            images with a caption too
          </label>
          <button type="submit" disabled={job?.state === 'running'}>
            Propose captions
          </button>
        </form>
        {error && (
          <p class="banner error" role="alert">
            {error}
          </p>
        )}
        {job?.state === 'running' && (
          <p class="summary">
            lora label is working{job.total ? `: ${job.done} of ${job.total} images` : '…'}
          </p>
        )}
        {job?.state === 'failed' && (
          <p class="banner error" role="alert">
            {job.message}
          </p>
        )}
        {done && (
          <>
            <p class="summary">
              {done.changes.length === 0
                ? 'No caption to propose.'
                : `${done.changes.length} caption${done.changes.length === 1 ? '' : 's'} proposed (nothing is written until you apply):`}
              {done.kept > 0 && !request.overwrite && ` ${done.kept} images with a caption left as they are.`}
              {done.skipped.length > 0 && ` ${done.skipped.length} skipped (below).`}
            </p>
            <ChangeList changes={done.changes} />
            {done.skipped.length > 0 && (
              <ul class="skipped">
                {done.skipped.map(({ image, reason }) => (
                  <li>
                    <b>{image}</b>: {reason}
                  </li>
                ))}
              </ul>
            )}
          </>
        )}
        <div class="actions">
          <button
            type="button"
            class="primary"
            disabled={busy || !done || done.changes.length === 0}
            onClick={() => done && void apply(done.changes)}
          >
            Apply {done?.changes.length ?? ''} captions
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
        </div>
      </div>
    </div>
  );
}
