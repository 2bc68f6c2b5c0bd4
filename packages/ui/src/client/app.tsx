import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { api, type ImageEntry } from './api.ts';
import { BulkEdit } from './bulk-edit.tsx';
import { CheckPanel, marksOf, useCheck } from './check-panel.tsx';
import { Editor } from './editor.tsx';
import { countTags, matches, type RoleFilter } from './filters.ts';
import { Grid } from './grid.tsx';
import { LabelDialog } from './label-dialog.tsx';
import { useLabeller } from './labeller.ts';
import { RunsView } from './runs-view.tsx';
import { TagCloud } from './tag-cloud.tsx';
import { TrainView } from './train-view.tsx';

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

interface Project {
  name: string;
  datasets: { path: string }[];
}

const TABS = { dataset: 'Dataset', train: 'Train', runs: 'Runs' } as const;
type Tab = keyof typeof TABS;

/** The tab in the address (`#train`), so a reload stays where it was. */
const tabOf = (hash: string): Tab => {
  const name = hash.slice(1);
  return Object.hasOwn(TABS, name) ? (name as Tab) : 'dataset';
};

function Header({ project, tab, children }: { project: Project; tab: Tab; children?: ComponentChildren }) {
  return (
    <header>
      <h1>
        lora ui <span class="project">{project.name}</span>
      </h1>
      <nav class="tabs" aria-label="Views">
        {Object.entries(TABS).map(([name, label]) => (
          <a
            href={`#${name}`}
            class={name === tab ? 'active' : undefined}
            aria-current={name === tab ? 'page' : undefined}
          >
            {label}
          </a>
        ))}
      </nav>
      {children}
    </header>
  );
}

export function App() {
  const [project, setProject] = useState<Project>();
  const [tab, setTab] = useState<Tab>(tabOf(location.hash));
  const [error, setError] = useState<string>();
  useEffect(() => {
    api
      .project()
      .then(setProject)
      .catch((e) => setError(message(e)));
    const onHash = () => setTab(tabOf(location.hash));
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  if (project === undefined) {
    return error ? <p class="banner error">{error}</p> : <p class="empty">Loading…</p>;
  }
  if (tab === 'dataset') return <DatasetView project={project} />;
  return (
    <div class="layout">
      <Header project={project} tab={tab} />
      <main class="scroll">{tab === 'train' ? <TrainView /> : <RunsView />}</main>
    </div>
  );
}

function DatasetView({ project }: { project: Project }) {
  const [dataset, setDataset] = useState<string | undefined>(project.datasets[0]?.path);
  const [images, setImages] = useState<ImageEntry[]>();
  const [selected, setSelected] = useState<string>();
  const [tag, setTag] = useState('');
  const [role, setRole] = useState<RoleFilter>('any');
  const [editing, setEditing] = useState(false);
  const [labelling, setLabelling] = useState(false);
  const [labeller, setLabeller] = useLabeller();
  const [error, setError] = useState<string>();

  const reload = useCallback(() => {
    if (dataset === undefined) return;
    api
      .dataset(dataset)
      .then((loaded) => setImages(loaded.images))
      .catch((e) => setError(message(e)));
  }, [dataset]);
  useEffect(reload, [reload]);

  const shown = useMemo(
    () => (images ?? []).filter((image) => matches(image, tag, role)),
    [images, tag, role],
  );
  const tags = useMemo(() => countTags(images ?? []), [images]);
  const { check, error: checkError, start: startCheck, cancel: cancelCheck } = useCheck(dataset);
  const marks = useMemo(() => marksOf(check), [check]);
  const imagePaths = useMemo(() => new Set((images ?? []).map((image) => image.path)), [images]);
  const pick = (path: string) => {
    // A finding of an image the filter hides: show every image, so the selection is in view.
    if (!shown.some((image) => image.path === path)) {
      setTag('');
      setRole('any');
    }
    setSelected(path);
  };
  const current =
    shown.find((image) => image.path === selected) ?? images?.find((image) => image.path === selected);

  const replace = (updated: readonly ImageEntry[]) =>
    setImages((list) => list?.map((image) => updated.find((u) => u.path === image.path) ?? image));

  const step = (by: number) => {
    const index = shown.findIndex((image) => image.path === selected);
    const next = shown[Math.min(shown.length - 1, Math.max(0, index + by))];
    if (next) setSelected(next.path);
  };

  return (
    <div class="layout">
      <Header project={project} tab="dataset">
        {project.datasets.length > 1 && (
          <label>
            Dataset{' '}
            <select value={dataset} onChange={(e) => setDataset(e.currentTarget.value)}>
              {project.datasets.map(({ path }) => (
                <option value={path}>{path || '.'}</option>
              ))}
            </select>
          </label>
        )}
        {project.datasets.length === 1 && <span class="dataset">{dataset || '.'}</span>}
        {dataset !== undefined && (
          <>
            <label>
              Tag{' '}
              <input
                list="tags"
                value={tag}
                placeholder="any tag"
                onInput={(e) => setTag(e.currentTarget.value)}
                aria-label="Filter by tag"
              />
            </label>
            <datalist id="tags">
              {tags.slice(0, 500).map(({ tag: name }) => (
                <option value={name} />
              ))}
            </datalist>
            <label>
              Role{' '}
              <select
                value={role}
                onChange={(e) => setRole(e.currentTarget.value as RoleFilter)}
                aria-label="Filter by role"
              >
                <option value="any">any</option>
                <option value="core">core (**bold**)</option>
                <option value="mood">mood (*italic*)</option>
                <option value="plain">plain</option>
                <option value="none">no caption</option>
              </select>
            </label>
            <span class="count">
              {images === undefined ? '' : `${shown.length} of ${images.length} images`}
            </span>
            <button
              type="button"
              disabled={images === undefined || images.length === 0}
              onClick={() => setEditing(true)}
            >
              Edit tags…
            </button>
            <button type="button" disabled={images === undefined} onClick={() => setLabelling(true)}>
              Label…
            </button>
          </>
        )}
      </Header>
      {error && (
        <p class="banner error" role="alert">
          {error}{' '}
          <button type="button" onClick={() => setError(undefined)}>
            Dismiss
          </button>
        </p>
      )}
      <main>
        {dataset === undefined ? (
          <div class="empty">
            <p>No images in {project.name}.</p>
            <p>
              lora ui looks for folders that hold images, a metadata.csv or kohya N_name folders, up to three
              levels down (output/, models/ and hidden folders are skipped). Add images, or start it in the
              dataset folder.
            </p>
          </div>
        ) : images === undefined ? (
          <p class="empty">Reading {dataset || '.'}…</p>
        ) : (
          <Grid
            images={shown}
            selected={selected}
            onSelect={setSelected}
            total={images.length}
            marks={marks}
          />
        )}
        {dataset !== undefined && (
          <aside>
            <CheckPanel
              check={check}
              error={checkError}
              images={imagePaths}
              selected={selected}
              onSelect={pick}
              onStart={images !== undefined && images.length > 0 ? startCheck : undefined}
              onCancel={cancelCheck}
            />
            {current ? (
              <Editor
                key={current.path}
                dataset={dataset!}
                image={current}
                onSaved={replace}
                onStep={step}
                labeller={labeller}
                onChooseModel={() => setLabelling(true)}
              />
            ) : (
              <p class="hint">Pick an image to edit its caption.</p>
            )}
            <TagCloud tags={tags} active={tag} onPick={(name) => setTag(name === tag ? '' : name)} />
          </aside>
        )}
      </main>
      {labelling && dataset !== undefined && (
        <LabelDialog
          dataset={dataset}
          onClose={() => setLabelling(false)}
          onApplied={(updated) => {
            replace(updated);
            setLabelling(false);
          }}
          onConflict={reload}
          labeller={labeller}
          onLabellerChange={setLabeller}
        />
      )}
      {editing && dataset !== undefined && (
        <BulkEdit
          dataset={dataset}
          tag={tag}
          {...(images !== undefined && shown.length < images.length
            ? { shown: shown.map((i) => i.path) }
            : {})}
          onClose={() => setEditing(false)}
          onApplied={(updated) => {
            replace(updated);
            setEditing(false);
          }}
          onConflict={reload}
        />
      )}
    </div>
  );
}
