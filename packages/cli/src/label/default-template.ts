/**
 * The seed's default caption template: the subject as the core (bold) part, then fixed quality
 * tags. In a module of its own so that `lora --help` can show it without loading caption-markup.
 */
export const DEFAULT_TEMPLATE = '**{caption}**, high quality, detailed';
