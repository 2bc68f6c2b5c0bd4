import { useEffect, useState } from 'preact/hooks';
import { api, type RunMode, type RunStatus } from './api.ts';
import { ConfigEditor, type ConfigState } from './config-editor.tsx';
import { NewConfigDialog } from './new-config-dialog.tsx';
import { isGoing, RunPanel } from './run-panel.tsx';

/**
 * A config and the run it makes: edit and validate the YAML, then start, stop and resume the run
 * (`lora train` with the fixed arguments of each button), following it live. On load it picks up
 * a run that is going, so a reloaded page reattaches.
 */
export function TrainView() {
  const [configs, setConfigs] = useState<string[]>();
  const [config, setConfig] = useState<string>();
  const [state, setState] = useState<ConfigState>({ dirty: false });
  /** The folder the panel follows: a run started here, a run going at load, else the config's output_dir. */
  const [followed, setFollowed] = useState<string>();
  const [status, setStatus] = useState<RunStatus>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [creating, setCreating] = useState(false);

  useEffect(() => {
    Promise.all([api.configs(), api.runs()])
      .then(([{ configs: found }, { runs: list }]) => {
        setConfigs(found);
        const going = list.find((run) => isGoing(run.status));
        if (going) setFollowed(going.path);
        setConfig(going?.status.config ?? found[0]);
      })
      .catch((e) => setError((e as Error).message));
  }, []);

  const validation = state.validation;
  /** The config's run folder, as of its last valid text: a typo does not take the run off the page. */
  const [outputDir, setOutputDir] = useState<string>();
  useEffect(() => {
    if (validation?.valid) setOutputDir(validation.runFolder);
  }, [validation]);
  const shown = followed ?? outputDir;
  const going = isGoing(status) && status?.path === shown;

  const newConfig = creating && (
    <NewConfigDialog
      onClose={() => setCreating(false)}
      onCreated={(path) => {
        setCreating(false);
        api.configs().then(
          ({ configs: found }) => {
            setConfigs(found);
            setConfig(path);
            setFollowed(undefined);
            setOutputDir(undefined);
          },
          (e) => setError((e as Error).message),
        );
      }}
    />
  );

  const start = (mode: RunMode) => {
    if (config === undefined) return;
    if (
      mode === 'overwrite' &&
      !window.confirm(
        `Start over in ${outputDir}? lora deletes the earlier run's checkpoints, logs, metrics and adapter there (only files it wrote).`,
      )
    )
      return;
    setBusy(true);
    setError(undefined);
    api
      .startRun(config, mode)
      .then((started) => setFollowed(started.path))
      .catch((e) => setError((e as Error).message))
      .finally(() => setBusy(false));
  };

  if (configs === undefined) {
    return error ? <p class="banner error">{error}</p> : <p class="empty">Looking for configs…</p>;
  }
  if (configs.length === 0 || config === undefined) {
    return (
      <div class="empty">
        <p>No config in this folder.</p>
        <p>
          lora ui looks for .yaml files up to three levels down (output/ and models/ are skipped).{' '}
          <code>lora init</code> writes one in configs/; <code>lora init --demo</code> writes one that trains
          in seconds.
        </p>
        <p>
          <button type="button" class="primary" onClick={() => setCreating(true)}>
            New config…
          </button>
        </p>
        {newConfig}
      </div>
    );
  }
  const why = state.dirty
    ? 'Save the config first: a run reads the file.'
    : validation === undefined
      ? 'Checking the config…'
      : !validation.valid
        ? 'Fix the config first.'
        : going
          ? 'A run is going in this folder.'
          : undefined;
  return (
    <div class="train">
      <section class="config-pane">
        <div class="pane-head">
          <label>
            Config{' '}
            <select
              value={config}
              onChange={(e) => {
                setConfig(e.currentTarget.value);
                setFollowed(undefined);
                setOutputDir(undefined);
              }}
              aria-label="Config file"
            >
              {configs.map((path) => (
                <option value={path}>{path}</option>
              ))}
            </select>
          </label>
          <button type="button" onClick={() => setCreating(true)}>
            New config…
          </button>
        </div>
        <ConfigEditor key={config} path={config} onState={setState} />
        <div class="actions run-actions">
          <button
            type="button"
            class="primary"
            disabled={busy || why !== undefined}
            onClick={() => start('start')}
          >
            Start run
          </button>
          <button type="button" disabled={busy || why !== undefined} onClick={() => start('resume')}>
            Resume
          </button>
          <button type="button" disabled={busy || why !== undefined} onClick={() => start('overwrite')}>
            Start over…
          </button>
          <span class="status">{busy ? 'Starting lora train…' : why}</span>
        </div>
        {error && (
          <p class="banner error run-error" role="alert">
            {error}
          </p>
        )}
      </section>
      {newConfig}
      <section class="run-pane">
        {shown === undefined ? (
          <p class="hint">The run of a valid config shows here.</p>
        ) : (
          <RunPanel key={shown} path={shown} onStatus={setStatus} />
        )}
      </section>
    </div>
  );
}
