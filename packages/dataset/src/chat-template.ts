import { Template } from '@huggingface/jinja';
import { DatasetError } from './errors.ts';
import { TemplateSandbox } from './template-sandbox.ts';
import type { ChatMessage } from './text-formats.ts';

/**
 * Templates for models that ship none (base models). Jinja, rendered by the same code as a
 * model's own `chat_template`; each one mirrors the format its name is known for.
 */
export const BUILTIN_TEMPLATES = {
  chatml:
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
  llama3:
    '{{ bos_token }}{% for message in messages %}' +
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + (message['content'] | trim) + '<|eot_id|>' }}" +
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
  alpaca:
    "{{ bos_token }}{% if messages[0]['role'] != 'system' %}" +
    "{{ 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\\n\\n' }}" +
    "{% endif %}{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}" +
    "{% elif message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}" +
    "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}" +
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}",
} as const;

export type BuiltinTemplateName = keyof typeof BUILTIN_TEMPLATES;

export interface ChatTemplate {
  /** The built-in name, or 'model' for the tokenizer's own, or 'custom'. */
  readonly name: string;
  render(
    messages: readonly ChatMessage[],
    options: { addGenerationPrompt: boolean; bosToken?: string | undefined; eosToken: string },
  ): string;
}

/**
 * A template from the model or the config renders in a `TemplateSandbox` (time, memory and output
 * budgets); the built-in ones, which this package wrote, render in this thread.
 */
function compile(source: string, name: string, sandboxed: boolean): ChatTemplate {
  let template: Template;
  try {
    template = new Template(source);
  } catch (error) {
    throw new DatasetError(
      'E_TEMPLATE',
      `The ${name} chat template does not parse: ${(error as Error).message}.`,
      {
        cause: error,
      },
    );
  }
  let sandbox: TemplateSandbox | undefined;
  return {
    name,
    render(messages, options) {
      const context = {
        messages: messages.map((message) => ({ role: message.role, content: message.content })),
        add_generation_prompt: options.addGenerationPrompt,
        bos_token: options.bosToken ?? '',
        eos_token: options.eosToken,
      };
      try {
        if (!sandboxed) return template.render(context);
        sandbox ??= new TemplateSandbox(source, name);
        return sandbox.render(context);
      } catch (error) {
        if (DatasetError.isInstance(error)) throw error;
        throw new DatasetError(
          'E_TEMPLATE',
          `The ${name} chat template failed on a conversation with roles [${messages.map((m) => m.role).join(', ')}]: ${(error as Error).message}.`,
          { cause: error },
        );
      }
    },
  };
}

const isBuiltin = (name: string): name is BuiltinTemplateName => Object.hasOwn(BUILTIN_TEMPLATES, name);

/**
 * The template to train with: `requested` (a built-in name or Jinja source) wins, else the
 * model's own `chat_template`; with neither, an error lists the built-ins to choose from.
 */
export function resolveChatTemplate(
  requested: string | undefined,
  modelTemplate: string | undefined,
): ChatTemplate {
  if (requested !== undefined) {
    if (isBuiltin(requested)) return compile(BUILTIN_TEMPLATES[requested], requested, false);
    if (requested.includes('{{') || requested.includes('{%')) return compile(requested, 'custom', true);
    throw new DatasetError(
      'E_TEMPLATE',
      `Unknown chat template "${requested}"; use one of ${Object.keys(BUILTIN_TEMPLATES).join(', ')}, or Jinja source.`,
    );
  }
  if (modelTemplate !== undefined) return compile(modelTemplate, 'model', true);
  throw new DatasetError(
    'E_TEMPLATE',
    `The model has no chat_template; set \`template\` to one of ${Object.keys(BUILTIN_TEMPLATES).join(', ')} (chatml suits most base models).`,
  );
}
