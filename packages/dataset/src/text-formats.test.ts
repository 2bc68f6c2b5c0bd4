import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir, writeText } from './test-fixtures.ts';
import { checkTextDataset } from './text-check.ts';
import { detectFormat, toExample } from './text-formats.ts';
import { readTextRecords, type TextRecord } from './text-records.ts';

const rec = (record: Record<string, unknown>, line = 3): TextRecord => ({
  record,
  path: 'd.jsonl',
  where: `d.jsonl:${line}`,
  line,
});

async function collect(name: string, content: string) {
  const path = await writeText(join(await tempDir(), name), content);
  const out: TextRecord[] = [];
  for await (const record of readTextRecords(path)) out.push(record);
  return out;
}

describe('readTextRecords', () => {
  it('streams JSONL with line numbers, skipping blank lines and a BOM', async () => {
    const records = await collect('a.jsonl', '\uFEFF{"text":"one"}\n\n{"text":"two"}\r\n');
    expect(records.map((r) => [r.record['text'], r.line])).toEqual([
      ['one', 1],
      ['two', 3],
    ]);
  });

  it.each([
    ['a JSON array', 'a.json', '[{"text":"one"},{"text":"two"}]', 'record #2'],
    ['JSON lines in a .json file', 'a.json', '{"text":"one"}\n{"text":"two"}\n', 'a.json:2'],
    ['CSV with a header', 'a.csv', 'instruction,output\n"Say hi, please",hi\nx,y\n', 'a.csv:3'],
  ])('reads %s', async (_name, file, content, lastWhere) => {
    const records = await collect(file, content);
    expect(records).toHaveLength(2);
    expect(records[1]!.where).toContain(lastWhere);
  });

  it('maps CSV columns to fields', async () => {
    const [first] = await collect('a.csv', 'instruction,output\n"Say hi, please",hi\n');
    expect(first!.record).toEqual({ instruction: 'Say hi, please', output: 'hi' });
  });

  it.each([
    ['a.jsonl', '{"text":"ok"}\n{"text": oops}\n', 'E_INVALID_RECORD', /a\.jsonl:2: not valid JSON/],
    ['a.jsonl', '{"text":"ok"}\n[1,2]\n', 'E_INVALID_RECORD', /a\.jsonl:2: expected a JSON object/],
    ['a.json', '[{"text":"ok"}, 3]', 'E_INVALID_RECORD', /record #2: expected a JSON object/],
    ['a.json', '[{"text":"ok"}', 'E_INVALID_RECORD', /not valid JSON/],
    ['a.txt', 'hello', 'E_UNKNOWN_FORMAT', /use \.jsonl/],
    ['a.csv', 'text\n"unclosed\n', 'E_INVALID_CSV', /Quote fields/],
  ])('%s %j fails with %s', async (file, content, code, message) => {
    await expect(collect(file, content)).rejects.toMatchObject({
      code,
      message: expect.stringMatching(message),
    });
  });

  it('reports a missing file as NOT_FOUND', async () => {
    const iterator = readTextRecords('/nope/data.jsonl');
    await expect(iterator.next()).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });
});

describe('detectFormat / toExample', () => {
  it.each([
    [{ conversations: [] }, 'sharegpt'],
    [{ messages: [] }, 'messages'],
    [{ instruction: 'x', output: 'y' }, 'alpaca'],
    [{ text: 'x' }, 'text'],
    [{ prompt: 'x' }, undefined],
  ])('%j is %s', (record, format) => {
    expect(detectFormat(record)).toBe(format);
  });

  it('turns alpaca with system, history and input into messages', () => {
    const example = toExample(
      rec({ system: 'S', history: [['q1', 'a1']], instruction: 'Do it', input: 'data', output: 'done' }),
      'auto',
    );
    expect(example).toEqual({
      kind: 'chat',
      messages: [
        { role: 'system', content: 'S' },
        { role: 'user', content: 'q1' },
        { role: 'assistant', content: 'a1' },
        { role: 'user', content: 'Do it\ndata' },
        { role: 'assistant', content: 'done' },
      ],
    });
  });

  it('maps sharegpt roles and the top-level system prompt', () => {
    const example = toExample(
      rec({
        system: 'S',
        conversations: [
          { from: 'human', value: 'q' },
          { from: 'function_call', value: 'call()' },
          { from: 'observation', value: '42' },
          { from: 'gpt', value: 'a' },
        ],
      }),
      'sharegpt',
    );
    expect(example.kind === 'chat' && example.messages.map((m) => m.role)).toEqual([
      'system',
      'user',
      'assistant',
      'tool',
      'assistant',
    ]);
  });

  it('joins OpenAI text content parts', () => {
    const example = toExample(
      rec({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'a' },
              { type: 'text', text: 'b' },
            ],
          },
          { role: 'assistant', content: 'c' },
        ],
      }),
      'auto',
    );
    expect(example.kind === 'chat' && example.messages[0]!.content).toBe('ab');
  });

  it.each([
    [{ prompt: 'x', completion: 'y' }, 'auto', /d\.jsonl:3: fits no known format.*"prompt", "completion"/],
    [{ instruction: 'x' }, 'auto', /d\.jsonl:3: missing field "output" for the alpaca format/],
    [{ instruction: 'x', output: 5 }, 'auto', /field "output" must be a string/],
    [{ text: 'x' }, 'alpaca', /missing field "instruction"/],
    [
      { conversations: [{ from: 'bot', value: 'x' }] },
      'auto',
      /conversations\[0\] has "from": "bot"; use one of human/,
    ],
    [{ conversations: [{ from: 'human', value: 'x' }] }, 'auto', /no assistant turn/],
    [{ conversations: 'nope' }, 'auto', /non-empty list/],
    [{ messages: [{ role: 'bot', content: 'x' }] }, 'auto', /messages\[0\]\.role must be/],
    [{ messages: [{ role: 'user', content: 3 }] }, 'auto', /messages\[0\]\.content must be/],
    [{ instruction: 'x', output: 'y', history: [['only one']] }, 'auto', /history/],
  ])('%j (%s) fails naming the line and field', (record, format, message) => {
    expect(() => toExample(rec(record), format as 'auto')).toThrow(message);
    expect(() => toExample(rec(record), format as 'auto')).toThrow(
      expect.objectContaining({ code: 'E_INVALID_RECORD', line: 3 }),
    );
  });
});

describe('checkTextDataset', () => {
  it('reports every bad record with its line, and counts the good ones per format', async () => {
    const path = await writeText(
      join(await tempDir(), 'mixed.jsonl'),
      [
        '{"instruction":"a","output":"b"}',
        '{"instruction":"a"}',
        'not json',
        '{"text":"t"}',
        '{"conversations":[{"from":"robot","value":"x"}]}',
      ].join('\n'),
    );
    const report = await checkTextDataset(path);
    expect(report).toMatchObject({ records: 5, valid: 2, invalid: 3, formats: { alpaca: 1, text: 1 } });
    expect(report.problems.map((p) => [p.line, p.where.endsWith(`mixed.jsonl:${p.line}`)])).toEqual([
      [2, true],
      [3, true],
      [5, true],
    ]);
    expect(report.problems[0]!.message).toMatch(/missing field "output"/);
    // The report names the place once, in `where`, not again in front of the message.
    for (const problem of report.problems) expect(problem.message).not.toContain('mixed.jsonl');
  });

  it('checks against a forced format', async () => {
    const path = await writeText(join(await tempDir(), 'a.jsonl'), '{"text":"t"}\n');
    expect((await checkTextDataset(path, 'alpaca')).invalid).toBe(1);
  });
});
