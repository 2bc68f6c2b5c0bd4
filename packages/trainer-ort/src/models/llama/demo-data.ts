/**
 * The demo's instruction data: a few families of alpaca records whose answers follow fixed
 * patterns (a sentence frame, facts from a small table, copying letters, small sums), so that
 * even a tiny random model's LoRA visibly learns them within a minute on a CPU.
 */
import { createRng } from '@lora/dataset';

/** An alpaca record, as `lora init --demo` writes it to `data/train.jsonl`. */
export interface DemoRecord {
  instruction: string;
  output: string;
}

const COLORS: readonly (readonly [string, string])[] = [
  ['sky', 'blue'],
  ['grass', 'green'],
  ['sun', 'yellow'],
  ['snow', 'white'],
  ['coal', 'black'],
  ['tomato', 'red'],
  ['orange', 'orange'],
  ['banana', 'yellow'],
  ['leaf', 'green'],
  ['cherry', 'red'],
  ['ocean', 'blue'],
  ['milk', 'white'],
  ['night', 'black'],
  ['lemon', 'yellow'],
  ['strawberry', 'red'],
  ['frog', 'green'],
  ['cloud', 'white'],
  ['carrot', 'orange'],
  ['plum', 'purple'],
  ['grape', 'purple'],
];

const CAPITALS: readonly (readonly [string, string])[] = [
  ['France', 'Paris'],
  ['Germany', 'Berlin'],
  ['Italy', 'Rome'],
  ['Spain', 'Madrid'],
  ['Japan', 'Tokyo'],
  ['Egypt', 'Cairo'],
  ['Canada', 'Ottawa'],
  ['Peru', 'Lima'],
  ['Kenya', 'Nairobi'],
  ['Norway', 'Oslo'],
  ['Greece', 'Athens'],
  ['Chile', 'Santiago'],
  ['Cuba', 'Havana'],
  ['Ireland', 'Dublin'],
  ['Poland', 'Warsaw'],
  ['Austria', 'Vienna'],
  ['Portugal', 'Lisbon'],
  ['Sweden', 'Stockholm'],
  ['Finland', 'Helsinki'],
  ['Thailand', 'Bangkok'],
];

const SOUNDS: readonly (readonly [string, string])[] = [
  ['dog', 'woof'],
  ['cat', 'meow'],
  ['cow', 'moo'],
  ['duck', 'quack'],
  ['sheep', 'baa'],
  ['owl', 'hoot'],
  ['lion', 'roar'],
  ['bee', 'buzz'],
  ['horse', 'neigh'],
  ['pig', 'oink'],
];

const WORDS = [
  'cat',
  'dog',
  'sun',
  'tree',
  'book',
  'fish',
  'bird',
  'rain',
  'star',
  'moon',
  'lamp',
  'door',
  'milk',
  'cake',
  'ship',
  'frog',
  'hat',
  'key',
  'box',
  'cup',
  'pen',
  'map',
  'bus',
  'egg',
  'ant',
  'owl',
  'fox',
  'bee',
  'jam',
  'kite',
];

/** Sums drawn per seed: enough to show the pattern without drowning the other families. */
const SUMS = 60;
const DEMO_DATA_STREAM = 0x44656d6f; // 'Demo'

/** The demo's records, shuffled; the same seed gives the same list. */
export function demoRecords(seed = 0): DemoRecord[] {
  const records: DemoRecord[] = [
    ...COLORS.map(([thing, color]) => ({
      instruction: `What color is the ${thing}?`,
      output: `The ${thing} is ${color}.`,
    })),
    ...CAPITALS.map(([country, city]) => ({
      instruction: `What is the capital of ${country}?`,
      output: `The capital of ${country} is ${city}.`,
    })),
    ...SOUNDS.map(([animal, sound]) => ({
      instruction: `What does a ${animal} say?`,
      output: `A ${animal} says ${sound}.`,
    })),
    ...WORDS.map((word) => ({
      instruction: `Spell the word ${word}.`,
      output: `${word} is spelled ${[...word].join('-')}.`,
    })),
  ];
  const rng = createRng(seed, DEMO_DATA_STREAM);
  for (let i = 0; i < SUMS; i++) {
    const [a, b] = [rng.nextInt(10), rng.nextInt(10)];
    records.push({ instruction: `Add ${a} and ${b}.`, output: `${a} plus ${b} is ${a + b}.` });
  }
  return rng.shuffle(records);
}

/** The records as JSON lines, the file `lora init --demo` writes. */
export function demoRecordsJsonl(seed = 0): string {
  return demoRecords(seed)
    .map((record) => `${JSON.stringify(record)}\n`)
    .join('');
}
