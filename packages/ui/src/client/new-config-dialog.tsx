import { useEffect, useState } from 'preact/hooks';
import { api } from './api.ts';

interface NewConfigDialogProps {
  onClose: () => void;
  onCreated: (path: string) => void;
}

const TASKS = {
  sd: 'Stable Diffusion LoRA (images and captions)',
  llm: 'LLM LoRA (instruction data)',
} as const;
type Task = keyof typeof TASKS;

/** `My LoRA-Project` → `my_lora_project`, as `lora init` names its configs. */
const slug = (name: string) =>
  name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '') || 'lora';

/**
 * A new config from `lora init`'s template (every key listed with its default and what it does),
 * written at a path of the user's choice and then opened in the editor, which shows what to fill
 * in (the base model's path first) with the validator's line:column messages.
 */
export function NewConfigDialog({ onClose, onCreated }: NewConfigDialogProps) {
  const [task, setTask] = useState<Task>('sd');
  const [project, setProject] = useState('lora');
  const [path, setPath] = useState<string>();
  const [datasets, setDatasets] = useState<string[]>([]);
  /** Index into `datasets`; -1: the template's own image folder. */
  const [dataset, setDataset] = useState(-1);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api.project().then(
      (found) => {
        setProject(slug(found.name));
        setDatasets(found.datasets.map((entry) => entry.path));
        setDataset(found.datasets.length > 0 ? 0 : -1);
      },
      (e) => setError((e as Error).message),
    );
  }, []);
  const suggested = `configs/${project}_${task === 'sd' ? 'style' : 'llm'}_v1.yaml`;

  const create = (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    const target = path ?? suggested;
    api
      .newConfig(target, task, task === 'sd' ? datasets[dataset] : undefined)
      .then(() => onCreated(target))
      .catch((e) => setError((e as Error).message))
      .finally(() => setBusy(false));
  };

  return (
    <div class="dialog-backdrop">
      <div class="dialog" role="dialog" aria-label="New config">
        <h2>New config</h2>
        <form onSubmit={create}>
          <label>
            Task{' '}
            <select value={task} onChange={(e) => setTask(e.currentTarget.value as Task)} aria-label="Task">
              {Object.entries(TASKS).map(([value, words]) => (
                <option value={value}>{words}</option>
              ))}
            </select>
          </label>
          {task === 'sd' && (
            <label>
              Images{' '}
              <select
                value={String(dataset)}
                onChange={(e) => setDataset(Number(e.currentTarget.value))}
                aria-label="Images"
              >
                {datasets.map((folder, index) => (
                  <option value={String(index)}>{folder || '.'}</option>
                ))}
                <option value="-1">data/style_train (the template's)</option>
              </select>
            </label>
          )}
          <label>
            File{' '}
            <input
              value={path ?? suggested}
              onInput={(e) => setPath(e.currentTarget.value)}
              aria-label="File"
              required
            />
          </label>
          <button type="submit" class="primary" disabled={busy}>
            Create
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
        </form>
        <p class="hint-line">
          Every key is listed with its default; set base_model to the model you downloaded, and the editor
          checks the rest as you type.
        </p>
        {error && (
          <p class="banner error" role="alert">
            {error}
          </p>
        )}
      </div>
    </div>
  );
}
