// Throughput of `parse`, `stripMarkup` and `parsePromptAttention` over 100k generated, realistic
// captions, measured on the built package (what users import). Run from this package: `pnpm bench`
// (builds first).
import { parse, parsePromptAttention, stripMarkup } from '../dist/index.js';

const CAPTIONS = 100_000;
const RUNS = 7;

/** mulberry32: seeded, so every run measures the same corpus. */
function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = Math.imul(state ^ (state >>> 15), state | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

// WD14-style tag lists and reviewed captions with the markup this package reads.
const SUBJECTS = [
  '1girl',
  '1boy',
  'solo',
  'cyberpunk city at night',
  'old lighthouse on a cliff',
  'red fox in snow',
];
const TAGS = [
  'long_hair',
  'short_hair',
  'looking_at_viewer',
  'smile',
  'blush',
  'open_mouth',
  'blue_eyes',
  'brown_hair',
  'outdoors',
  'sky',
  'cloud',
  'night',
  'neon signs',
  'rain-soaked streets',
  'reflections',
  'holding umbrella',
  'upper_body',
  'full_body',
  'from_side',
  'depth_of_field',
  'bokeh',
  'city lights',
  'wet pavement',
  'character_name_\\(series\\)',
  '\\(o\\)_\\(o\\)',
  'ultra-detailed',
  'masterpiece',
  'best quality',
];
const MOODS = [
  'cinematic lighting',
  'moody',
  'melancholic atmosphere',
  'golden hour',
  'volumetric fog',
  'dreamy',
];
const LORAS = ['film_grain', 'cyberpunk_style', 'detail_tweaker', 'add_detail'];

function generateCorpus(count) {
  const random = seededRandom(1);
  const pick = (items) => items[Math.floor(random() * items.length)];
  const captions = [];
  for (let index = 0; index < count; index += 1) {
    const marked = random() < 0.6;
    const parts = [marked ? `**${pick(SUBJECTS)}**` : pick(SUBJECTS)];
    const tagCount = 6 + Math.floor(random() * 18);
    for (let tag = 0; tag < tagCount; tag += 1) {
      const roll = random();
      const word = pick(TAGS);
      if (marked && roll < 0.08) parts.push(`*${pick(MOODS)}*`);
      else if (roll < 0.14) parts.push(`(${word}:${(0.5 + random()).toFixed(1)})`);
      else if (roll < 0.17) parts.push(`[${word}]`);
      else if (roll < 0.2) parts.push(`((${word}))`);
      else parts.push(word);
    }
    if (random() < 0.2) parts.push(`<lora:${pick(LORAS)}:${random().toFixed(2)}>`);
    captions.push(parts.join(', '));
  }
  return captions;
}

const corpus = generateCorpus(CAPTIONS);
const megabytes = Buffer.byteLength(corpus.join('')) / 1e6;
console.log(`corpus: ${CAPTIONS} captions, ${megabytes.toFixed(1)} MB; e.g. ${JSON.stringify(corpus[1])}`);
console.log(`node ${process.version}; best and median of ${RUNS} passes after one warm-up pass`);

const tasks = [
  ['stripMarkup', (caption) => stripMarkup(caption)],
  ["stripMarkup({ attention: 'drop' })", (caption) => stripMarkup(caption, { attention: 'drop' })],
  ['parse', (caption) => parse(caption)],
  // Markdown markers and `<lora:…>` are plain text to A1111; the work per character is the same.
  ['parsePromptAttention', (caption) => parsePromptAttention(caption)],
];
for (const [name, run] of tasks) {
  const rates = [];
  for (let pass = 0; pass <= RUNS; pass += 1) {
    const started = performance.now();
    for (const caption of corpus) run(caption);
    const seconds = (performance.now() - started) / 1000;
    if (pass > 0) rates.push(megabytes / seconds);
  }
  rates.sort((a, b) => a - b);
  const best = rates[rates.length - 1];
  const median = rates[Math.floor(rates.length / 2)];
  console.log(
    `${name.padEnd(36)} best ${best.toFixed(1).padStart(6)} MB/s   median ${median.toFixed(1).padStart(6)} MB/s`,
  );
}
