/**
 * Text samples while an LLM LoRA trains: each prompt answered greedily by the base model with the
 * LoRA of the moment, written to one text file per sampling.
 */
import { join } from 'node:path';
import type { LoraAdapter } from '@lora/adapters';
import { type TextTokenizer, writeFileAtomically } from '@lora/dataset';
import type { LlamaCheckpoint } from './checkpoint.ts';
import { LlamaGenerator, type PromptOptions, renderPrompt, stopIdsOf } from './generate.ts';

/** The longest answer a sample gets. */
export const SAMPLE_NEW_TOKENS = 128;

/** Writes `<folder>/<name>.txt`: `### prompt`, then the answer, for each prompt; returns its path. */
export async function writeTextSamples(
  checkpoint: LlamaCheckpoint,
  tokenizer: TextTokenizer,
  adapter: LoraAdapter,
  prompts: readonly string[],
  target: { folder: string; name: string; prompt: PromptOptions },
): Promise<string> {
  const generator = await LlamaGenerator.open(checkpoint, [
    { adapter, strength: 1, name: 'the LoRA being trained' },
  ]);
  const sections: string[] = [];
  try {
    const stopIds = stopIdsOf(tokenizer);
    for (const prompt of prompts) {
      const answer: number[] = [];
      const { ids } = renderPrompt(tokenizer, prompt, target.prompt);
      for await (const id of generator.generate(ids, {
        maxNewTokens: SAMPLE_NEW_TOKENS,
        temperature: 0,
        stopIds,
      }))
        answer.push(id);
      sections.push(`### ${prompt}\n${tokenizer.decode(answer, true)}\n`);
    }
  } finally {
    await generator.dispose();
  }
  const path = join(target.folder, `${target.name}.txt`);
  await writeFileAtomically(path, sections.join('\n'));
  return path;
}
