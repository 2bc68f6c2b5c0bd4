import type { Change } from './api.ts';
import { highlight } from './highlight.ts';

const Highlighted = ({ text }: { text: string }) => (
  <>
    {highlight(text).map(({ text: part, className }) =>
      className ? <span class={className}>{part}</span> : part,
    )}
  </>
);

/** Captions before (struck out) and after (highlighted), one per image: what an Apply will write. */
export function ChangeList({ changes }: { changes: readonly Change[] }) {
  return (
    <ol class="changes">
      {changes.map((change) => (
        <li>
          <b>{change.image}</b>
          <div class="before">
            {change.before === null ? <i>no caption</i> : <Highlighted text={change.before} />}
          </div>
          <div class="after">
            <Highlighted text={change.after} />
          </div>
        </li>
      ))}
    </ol>
  );
}
