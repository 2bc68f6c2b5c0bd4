// Issue 12, item 3: @lora/caption-markup's `parsePromptAttention` against a Python
// re-implementation of A1111's `parse_prompt_attention` (bench/a1111_attention.py) on the same
// 100,000 generated captions. Run: node bench/caption.mjs
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ensureDebianPackages,
  interleave,
  log,
  PythonWorker,
  pythonVersion,
  report,
  requireBuilt,
  row,
  temporaryDir,
} from './lib.mjs';

requireBuilt('caption-markup');
requireBuilt('dataset');
const markup = await import('../packages/caption-markup/dist/index.js');
if (typeof markup.parsePromptAttention !== 'function') {
  throw new Error(
    '@lora/caption-markup does not export parsePromptAttention yet: rebuild it (`pnpm build`).',
  );
}
const { parsePromptAttention } = markup;
const { createRng } = await import('../packages/dataset/dist/index.js');

const CAPTIONS = 100_000;
const TAGS = [
  '1girl',
  'solo',
  'long hair',
  'looking at viewer',
  'smile',
  'blue eyes',
  'short hair',
  'outdoors',
  'sky',
  'cloud',
  'masterpiece',
  'best quality',
  'cyberpunk',
  'neon lights',
  'city',
  'night',
  'rain',
  'reflection',
  'portrait',
  'close-up',
  'dramatic lighting',
  'volumetric fog',
  'depth of field',
  'film grain',
  'bokeh',
  'from above',
  'wide shot',
  'holding umbrella',
  'red scarf',
  'black jacket',
  'street',
  'crowd',
  'sign',
  'hologram',
  'rooftop',
  'sunset',
  'golden hour',
  'oil painting',
  'watercolor',
  'sketch',
  'highly detailed',
  'intricate',
  '8k',
  'sharp focus',
  'soft light',
  'café terrace',
  'ネオン',
  'hatsune miku',
  'kaomoji ^_^',
  'lens flare',
  'motion blur',
  'chromatic aberration',
];
const SENTENCES = [
  'a photo of a woman standing in the rain at night',
  'an oil painting of a harbour town at dawn, seen from the hills',
  'close-up portrait of an old fisherman with a weathered face',
];

/**
 * Captions with the A1111 markup people write: emphasis, explicit weights (with and without
 * spaces), de-emphasis, nesting, escaped parentheses, BREAK, unbalanced brackets, and some
 * natural-language captions; seeded, so every run parses the same text.
 */
function generateCaptions() {
  const rng = createRng(3);
  const pick = (list) => list[rng.nextInt(list.length)];
  const weight = () => (0.5 + rng.nextInt(111) / 100).toFixed(rng.next() < 0.5 ? 1 : 2);
  const tag = () => {
    const t = pick(TAGS);
    const r = rng.next();
    if (r < 0.15) return `(${t})`;
    if (r < 0.25) return `((${t}))`;
    if (r < 0.4) return `(${t}:${weight()})`;
    if (r < 0.45) return `(${t} : ${weight()} )`;
    if (r < 0.5) return `[${t}]`;
    if (r < 0.53) return `(${t}, (${pick(TAGS)}:${weight()}), [${pick(TAGS)}])`;
    if (r < 0.56) return `${t}_\\(${pick(['series', 'artist'])}\\)`;
    if (r < 0.57) return `(${t}`;
    return t;
  };
  const captions = [];
  for (let i = 0; i < CAPTIONS; i++) {
    if (rng.next() < 0.1) {
      captions.push(`${pick(SENTENCES)}, (${pick(TAGS)}:${weight()})`);
      continue;
    }
    const parts = [];
    const count = 8 + rng.nextInt(23);
    for (let j = 0; j < count; j++) parts.push(j > 0 && rng.next() < 0.02 ? `BREAK ${tag()}` : tag());
    captions.push(parts.join(', '));
  }
  return captions;
}

function parseOrNull(caption) {
  try {
    return parsePromptAttention(caption);
  } catch {
    return null;
  }
}

/** Each result is used (its length counted) and dropped, as a data loader would use it. */
function countPieces(captions) {
  let pieces = 0;
  for (const caption of captions) pieces += parseOrNull(caption)?.length ?? 0;
  return pieces;
}

/** Compares every caption's result with Python's; returns the number that differ and the first. */
async function compareWithPython(captions, out) {
  await python.request({ cmd: 'dump', out });
  const expected = JSON.parse(readFileSync(out, 'utf8'));
  let mismatches = 0;
  let first;
  for (let i = 0; i < captions.length; i++) {
    const ours = parseOrNull(captions[i]);
    if (JSON.stringify(ours) !== JSON.stringify(expected[i])) {
      mismatches++;
      first ??= { caption: captions[i], ours, python: expected[i] };
    }
  }
  return { mismatches, first };
}

ensureDebianPackages(['python3']);
const dir = temporaryDir('caption');
const python = new PythonWorker('a1111_attention.py');
try {
  const captions = generateCaptions();
  const text = captions.join('\n');
  const bytes = Buffer.byteLength(text);
  const path = join(dir, 'captions.txt');
  await writeFile(path, text);
  await python.request({ cmd: 'load', path });
  log(`${CAPTIONS} captions, ${(bytes / 1e6).toFixed(1)} MB; checking both parsers agree…`);

  const { mismatches, first } = await compareWithPython(captions, join(dir, 'python.json'));
  if (mismatches > 0) log(`MISMATCH on ${mismatches} captions, first: ${JSON.stringify(first)}`);

  log('timing…');
  const pieces = countPieces(captions);
  const times = await interleave({
    ours: () => {
      if (countPieces(captions) !== pieces) throw new Error('the parser is not deterministic');
    },
    python: async () => {
      const reply = await python.request({ cmd: 'run' });
      if (reply.pieces !== pieces) throw new Error(`Python counted ${reply.pieces} pieces, @lora ${pieces}`);
      return reply.seconds;
    },
  });
  const mbps = (seconds) => seconds.map((s) => bytes / 1e6 / s);
  report({
    title: 'caption',
    versions: { Python: pythonVersion() },
    rows: [
      row({
        id: '3',
        name: `A1111 attention parsing, ${CAPTIONS.toLocaleString('en')} captions (${(bytes / 1e6).toFixed(1)} MB UTF-8)`,
        unit: 'MB/s',
        ours: mbps(times.ours),
        oursLabel: '`parsePromptAttention`',
        base: mbps(times.python),
        baseLabel: 'Python `parse_prompt_attention`',
        target: 10,
      }),
    ],
    notes: [
      'each result is used (its pieces counted) and dropped, as a data loader does, on both sides.',
      `both sides return the same pieces and bit-identical weights on ${CAPTIONS - mismatches} of ${CAPTIONS} captions (${pieces.toLocaleString('en')} pieces; weights compared through their shortest round-trip decimal).`,
    ],
  });
} finally {
  await python.close();
}
