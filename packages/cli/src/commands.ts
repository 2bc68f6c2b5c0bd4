import type { CAC } from 'cac';

/** Declares every command; each command's module is imported only when it runs. */
export function registerCommands(_cli: CAC): void {}
