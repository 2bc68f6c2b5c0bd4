import { stripMarkup } from '@lora/caption-markup';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { type ImageEntry, thumbnailUrl } from './api.ts';

/** Cell size in CSS pixels (app.css sizes the cards to match). */
const CELL_WIDTH = 196;
const CELL_HEIGHT = 244;
/** Rows rendered above and below the visible ones, so scrolling shows no blank cells. */
const OVERSCAN_ROWS = 2;

interface GridProps {
  images: readonly ImageEntry[];
  total: number;
  selected: string | undefined;
  onSelect: (path: string) => void;
  /** The worst finding of the last dataset check per image: a corner mark on its card. */
  marks?: ReadonlyMap<string, { severity: string; count: number }>;
}

/**
 * The thumbnail grid, virtualised: only the rows in view (plus a margin) exist in the DOM, so a
 * folder of thousands of images costs a few dozen cards and thumbnails load as they scroll in.
 */
export function Grid({ images, total, selected, onSelect, marks }: GridProps) {
  const scroller = useRef<HTMLDivElement>(null);
  /** Images whose thumbnail the server could not make (a corrupt file): a labelled placeholder. */
  const [broken, setBroken] = useState<ReadonlySet<string>>(new Set());
  const [view, setView] = useState({ top: 0, width: 800, height: 600 });

  useLayoutEffect(() => {
    const element = scroller.current!;
    const measure = () =>
      setView({ top: element.scrollTop, width: element.clientWidth, height: element.clientHeight });
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(element);
    element.addEventListener('scroll', measure, { passive: true });
    return () => {
      observer.disconnect();
      element.removeEventListener('scroll', measure);
    };
  }, []);

  const columns = Math.max(1, Math.floor(view.width / CELL_WIDTH));
  const rows = Math.ceil(images.length / columns);
  const first = Math.max(0, Math.floor(view.top / CELL_HEIGHT) - OVERSCAN_ROWS);
  const last = Math.min(rows, Math.ceil((view.top + view.height) / CELL_HEIGHT) + OVERSCAN_ROWS);

  // Keeps the selected image in view when the keyboard moves the selection.
  useEffect(() => {
    const index = images.findIndex((image) => image.path === selected);
    const element = scroller.current;
    if (index < 0 || !element) return;
    const top = Math.floor(index / columns) * CELL_HEIGHT;
    if (top < element.scrollTop) element.scrollTop = top;
    else if (top + CELL_HEIGHT > element.scrollTop + element.clientHeight) {
      element.scrollTop = top + CELL_HEIGHT - element.clientHeight;
    }
  }, [selected, columns, images]);

  if (images.length === 0) {
    return (
      <div class="grid-scroller" ref={scroller}>
        <p class="empty">{total === 0 ? 'This folder has no images.' : 'No image matches the filter.'}</p>
      </div>
    );
  }
  const cells = [];
  for (let index = first * columns; index < Math.min(images.length, last * columns); index += 1) {
    const image = images[index]!;
    const mark = marks?.get(image.path);
    cells.push(
      <button
        type="button"
        key={image.path}
        class={`card${image.path === selected ? ' selected' : ''}${broken.has(image.path) ? ' broken' : ''}`}
        style={{
          top: `${Math.floor(index / columns) * CELL_HEIGHT}px`,
          left: `${(index % columns) * CELL_WIDTH}px`,
        }}
        onClick={() => onSelect(image.path)}
        title={image.path}
        data-path={image.path}
      >
        <img
          src={thumbnailUrl(image.path)}
          alt=""
          loading="lazy"
          decoding="async"
          onError={() => setBroken((set) => new Set(set).add(image.path))}
        />
        {mark && (
          <span
            class={`mark ${mark.severity}`}
            title={`${mark.count} finding${mark.count === 1 ? '' : 's'} of the check`}
          >
            {mark.count}
          </span>
        )}
        <span class="name">{image.path.split('/').pop()}</span>
        <span class={`caption${image.caption ? '' : ' missing'}`}>
          {image.caption ? stripMarkup(image.caption) : 'no caption'}
        </span>
      </button>,
    );
  }
  return (
    <div class="grid-scroller" ref={scroller}>
      <div class="grid" style={{ height: `${rows * CELL_HEIGHT}px`, width: `${columns * CELL_WIDTH}px` }}>
        {cells}
      </div>
    </div>
  );
}
