/**
 * Sections of docs/troubleshooting.md that messages point to. The anchors are GitHub's heading
 * slugs; a test checks that each one is a heading of the document.
 */
export const TROUBLESHOOTING_SECTIONS = {
  outOfMemory: 'out-of-memory',
  overfitting: 'overfitting',
  nanLoss: 'nan-or-inf-loss',
  deviceFallback: 'device-auto-fell-back',
  gpuUnavailable: 'gpu-device-unavailable',
  halfPrecision: 'half-precision-not-available',
  captionsNotFound: 'captions-not-found',
  imagesSkipped: 'images-skipped',
  resumeFoundNothing: 'resume-found-nothing',
  outputFolderNotEmpty: 'output-folder-not-empty',
  diskFull: 'disk-full-or-not-writable',
  dataRefused: 'data-refused-or-cut',
} as const;

export type TroubleshootingSection = keyof typeof TROUBLESHOOTING_SECTIONS;

/** Where the guide lives for people who installed the CLI from npm and have no checkout. */
export const TROUBLESHOOTING_URL = 'https://github.com/lora-dev/lora/blob/main/docs/troubleshooting.md';

/** `See <url>#<anchor>`: the sentence that ends a message about a known problem. */
export function seeTroubleshooting(section: TroubleshootingSection): string {
  return `See ${TROUBLESHOOTING_URL}#${TROUBLESHOOTING_SECTIONS[section]}`;
}
