import { useState } from 'preact/hooks';
import type { LabellerChoice } from './api.ts';

/** Where the page keeps the labeller chosen last, so suggestions and labelling use it after a reload. */
const STORAGE_KEY = 'lora.labeller';

function stored(): LabellerChoice {
  try {
    const value = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? 'null') as LabellerChoice | null;
    if (value && ['none', 'wd14', 'clip'].includes(value.model)) return value;
  } catch {
    // Unreadable or from another version: start from names.
  }
  return { model: 'none' };
}

/** The labeller the Label dialog sets and the caption editor's suggestions use. */
export function useLabeller(): [LabellerChoice, (choice: LabellerChoice) => void] {
  const [choice, setChoice] = useState(stored);
  return [
    choice,
    (next) => {
      setChoice(next);
      localStorage.setItem(STORAGE_KEY, JSON.stringify(next));
    },
  ];
}
