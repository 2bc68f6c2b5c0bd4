/** Epochs when neither epochs nor max_steps is set: LLM instruction tuning overfits past a few. */
export const DEFAULT_EPOCHS = { sd: 10, llm: 3 } as const;

/** Target modules when the config lists none. */
export const DEFAULT_TARGET_MODULES = {
  sd: ['to_q', 'to_k', 'to_v', 'to_out'],
  // PEFT's default for LLaMA-family models.
  llm: ['q_proj', 'v_proj'],
} as const;
