import { describe, expect, it } from 'vitest';
import { resumeCommand } from './train.ts';

describe('resumeCommand', () => {
  it.each([
    [[], 'lora train --config c.yaml --resume auto'],
    [
      ['output_dir=out/v2', 'learning_rate=1e-4'],
      'lora train --config c.yaml --set output_dir=out/v2 --set learning_rate=1e-4 --resume auto',
    ],
    [
      ['output_dir=my runs/v2', "output_name=it's"],
      `lora train --config c.yaml --set 'output_dir=my runs/v2' --set 'output_name=it'\\''s' --resume auto`,
    ],
    [
      ['target_modules=[q_proj, v_proj]'],
      "lora train --config c.yaml --set 'target_modules=[q_proj, v_proj]' --resume auto",
    ],
  ])('repeats the --set overrides %j, quoted for the shell', (sets, command) => {
    expect(resumeCommand('c.yaml', sets)).toBe(command);
  });
});
