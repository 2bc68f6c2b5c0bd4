import type { TagCount } from './filters.ts';

/** Tags shown in the cloud; the filter's list offers every tag. */
const CLOUD_TAGS = 60;

/** The most used tags, sized by how many images have them, core bold and mood italic; a click filters. */
export function TagCloud({
  tags,
  active,
  onPick,
}: {
  tags: TagCount[];
  active: string;
  onPick: (tag: string) => void;
}) {
  if (tags.length === 0) return null;
  const top = tags.slice(0, CLOUD_TAGS);
  const most = top[0]!.count;
  return (
    <section class="cloud" aria-label="Tag frequency">
      <h2>Tags</h2>
      <p>
        {top.map(({ tag, count, role }) => (
          <button
            type="button"
            class={`tag ${role}${tag === active.trim().toLowerCase() ? ' active' : ''}`}
            style={{ fontSize: `${0.8 + (0.7 * count) / most}rem` }}
            title={`${count} image${count === 1 ? '' : 's'}`}
            onClick={() => onPick(tag)}
          >
            {tag} <small>{count}</small>
          </button>
        ))}
      </p>
    </section>
  );
}
