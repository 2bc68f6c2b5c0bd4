import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { seeTroubleshooting, TROUBLESHOOTING_SECTIONS, TROUBLESHOOTING_URL } from './troubleshooting.ts';

const guide = readFileSync(new URL('../../../docs/troubleshooting.md', import.meta.url), 'utf8');

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes. */
const slug = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s-]/gu, '')
    .replace(/\s/g, '-');

const anchors = [...guide.matchAll(/^## (.+)$/gm)].map((match) => slug(match[1]!));

describe('docs/troubleshooting.md', () => {
  it.each(Object.entries(TROUBLESHOOTING_SECTIONS))('has the section %s points to (#%s)', (_, anchor) => {
    expect(anchors).toContain(anchor);
  });

  it('has no section that messages cannot point to', () => {
    expect(anchors.sort()).toEqual(Object.values(TROUBLESHOOTING_SECTIONS).sort());
  });

  it('links each section from its table of contents', () => {
    for (const anchor of anchors) expect(guide).toContain(`](#${anchor})`);
  });

  it('builds the sentence messages end with', () => {
    expect(seeTroubleshooting('captionsNotFound')).toBe(`See ${TROUBLESHOOTING_URL}#captions-not-found`);
  });
});
