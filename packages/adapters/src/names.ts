/**
 * Identifiers that contain underscores in the module trees LoRAs target: diffusers UNets and
 * their original LDM names, CLIP text encoders, and LLaMA-family LLMs. kohya flattens module
 * paths by turning every dot into an underscore; these let the dots be put back.
 */
const IDENTIFIERS = new Set([
  // diffusers UNet
  'down_blocks',
  'up_blocks',
  'mid_block',
  'transformer_blocks',
  'proj_in',
  'proj_out',
  'to_q',
  'to_k',
  'to_v',
  'to_out',
  'add_q_proj',
  'add_k_proj',
  'add_v_proj',
  'to_add_out',
  'time_emb_proj',
  'conv_shortcut',
  'conv_in',
  'conv_out',
  'conv_norm_out',
  'time_embedding',
  'linear_1',
  'linear_2',
  'add_embedding',
  // LDM UNet
  'input_blocks',
  'middle_block',
  'output_blocks',
  'in_layers',
  'out_layers',
  'emb_layers',
  'skip_connection',
  'time_embed',
  'label_emb',
  'diffusion_model',
  // CLIP
  'text_model',
  'self_attn',
  'q_proj',
  'k_proj',
  'v_proj',
  'out_proj',
  'final_layer_norm',
  'layer_norm1',
  'layer_norm2',
  'token_embedding',
  'position_embedding',
  'text_projection',
  // LLaMA family
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
  'embed_tokens',
  'lm_head',
  'input_layernorm',
  'post_attention_layernorm',
]);

/** The longest identifier above, in underscore-separated tokens. */
const MAX_TOKENS = 3;

/** kohya's flattening: `a.b_c.0` → `a_b_c_0`. */
export function flattenPath(path: string): string {
  return path.replaceAll('.', '_');
}

/**
 * Undoes `flattenPath` without knowing the model: underscores become dots except inside the
 * identifiers above. Use `flattenedIndex` over the real module paths for an exact answer.
 */
export function unflattenPath(flat: string): string {
  const tokens = flat.split('_');
  const segments: string[] = [];
  let i = 0;
  while (i < tokens.length) {
    let taken = 1;
    for (let count = Math.min(MAX_TOKENS, tokens.length - i); count > 1; count--) {
      if (IDENTIFIERS.has(tokens.slice(i, i + count).join('_'))) {
        taken = count;
        break;
      }
    }
    segments.push(tokens.slice(i, i + taken).join('_'));
    i += taken;
  }
  return segments.join('.');
}

/** Index for `unflattenPath` from dotted module paths. */
export function flattenedIndex(paths: Iterable<string>): Map<string, string> {
  const index = new Map<string, string>();
  for (const path of paths) index.set(flattenPath(path), path);
  return index;
}
