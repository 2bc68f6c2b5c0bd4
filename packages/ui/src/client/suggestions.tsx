import { extractTags } from '@lora/caption-markup';
import { useMemo, useState } from 'preact/hooks';
import { api, type LabellerChoice, type SuggestedTag } from './api.ts';

interface SuggestionsProps {
  image: string;
  labeller: LabellerChoice;
  /** The caption being edited: tags it has already are marked. */
  caption: string;
  onAdd: (tag: SuggestedTag) => void;
  /** Opens the Label dialog, where the model is chosen. */
  onChooseModel: () => void;
}

type State =
  | { kind: 'idle' | 'loading' }
  | { kind: 'done'; tags: SuggestedTag[]; note?: string }
  | { kind: 'error'; message: string };

/** A score as the labeller gives it: WD14 confidences as percentages, CLIP similarities as they are. */
const formatScore = (labeller: LabellerChoice, score: number) =>
  labeller.model === 'wd14' ? `${Math.round(score * 100)}%` : score.toFixed(2);

/**
 * Tag suggestions for one image from the labeller's scores (`lora label --input <image>`): each
 * tag with its score, in the role a caption would give it; a click adds it to the caption
 * (core `**bold**`, mood `*italic*`), tags the caption has already are marked.
 */
export function Suggestions({ image, labeller, caption, onAdd, onChooseModel }: SuggestionsProps) {
  const [state, setState] = useState<State>({ kind: 'idle' });
  const present = useMemo(
    () => new Set(extractTags(caption, { lowercase: true }).map((tag) => tag.text)),
    [caption],
  );

  if (labeller.model === 'none') {
    return (
      <p class="suggestions hint-line">
        Tag suggestions come from a WD14 tagger or CLIP:{' '}
        <button type="button" class="link" onClick={onChooseModel}>
          pick the model
        </button>
      </p>
    );
  }
  const suggest = () => {
    setState({ kind: 'loading' });
    api.suggest(image, labeller).then(
      ({ tags, note }) => setState({ kind: 'done', tags, ...(note ? { note } : {}) }),
      (error) => setState({ kind: 'error', message: (error as Error).message }),
    );
  };
  return (
    <section class="suggestions" aria-label="Tag suggestions">
      <button type="button" disabled={state.kind === 'loading'} onClick={suggest}>
        {state.kind === 'loading' ? `Asking ${labeller.model}…` : `Suggest tags (${labeller.model})`}
      </button>
      {state.kind === 'error' && (
        <p class="banner error" role="alert">
          {state.message}
        </p>
      )}
      {state.kind === 'done' && state.tags.length === 0 && (
        <p class="hint-line">{state.note ?? 'The model found no tags above its threshold.'}</p>
      )}
      {state.kind === 'done' && state.tags.length > 0 && (
        <p>
          {state.tags.map((tag) => {
            const has = present.has(tag.text.toLowerCase());
            return (
              <button
                type="button"
                class={`tag ${tag.role}${has ? ' present' : ''}`}
                disabled={has}
                title={has ? 'in the caption' : `add as ${tag.role}`}
                onClick={() => onAdd(tag)}
              >
                {has && '✓ '}
                {tag.text} <small>{formatScore(labeller, tag.score)}</small>
              </button>
            );
          })}
        </p>
      )}
    </section>
  );
}
