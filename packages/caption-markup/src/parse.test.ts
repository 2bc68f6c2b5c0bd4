import { describe, expect, it } from 'vitest';
import { parse } from './parse.ts';
import { MAX_NESTING_DEPTH } from './scan.ts';
import { ownedSpans, randomMarkup, seededRandom, shape } from './testing/fixtures.ts';
import type { DiagnosticCode, ExtraNetworkNode } from './types.ts';

describe('parse', () => {
  it.each([
    ['bold is core', '**city at night**, neon', 'core[**]("city at night") , " neon"'],
    ['italic is mood', '*cinematic lighting*', 'mood[*]("cinematic lighting")'],
    ['__ and _ alias ** and * at tag edges', '__a__, _b c_', 'core[__]("a") , " " mood[_]("b c")'],
    [
      'underscores inside words are text',
      'long_hair, ^_^, 0_0, (o)_(o)',
      '"long_hair" , " ^_^" , " 0_0" , " " round×1.1("o") "_" round×1.1("o")',
    ],
    ['a lone leading underscore is text', '_private, x_', '"_private" , " x_"'],
    ['*** opens bold then italic', '***a***', 'core[**](mood[*]("a"))'],
    ['*** closes the inner marker first', '**a *b***', 'core[**]("a " mood[*]("b"))'],
    ['*** after ** closes bold first', '*a **b***', 'mood[*]("a " core[**]("b"))'],
    ['intraword asterisks pair', 'a*b*c', '"a" mood[*]("b") "c"'],
    ['emphasis may span a comma', '**a, b**', 'core[**]("a" , " b")'],
    ['nested emphasis of the same kind', '**a **b** c**', 'core[**]("a " core[**]("b") " c")'],
    [
      'escapes',
      '\\*a\\* \\( \\) \\[ \\] \\\\ \\| \\_',
      '\\* "a" \\* " " \\( " " \\) " " \\[ " " \\] " " \\\\ " " \\| " " \\_',
    ],
    ['a backslash before anything else is text', 'a\\b', '"a\\\\b"'],
    ['round attention', '(a)', 'round×1.1("a")'],
    ['explicit weight', '(a:1.3)', 'round×1.3("a")'],
    ['weight with spaces and Unicode digits', '(a: ١.٥ )', 'round×1.5("a")'],
    ['square attention', '[a]', 'square×0.9090909090909091("a")'],
    ['emphasis inside attention', '(**a**:1.2)', 'round×1.2(core[**]("a"))'],
    ['attention inside emphasis', '**(a:0.8)**', 'core[**](round×0.8("a"))'],
    ['prompt editing', '[from:to:0.5]', 'edit("from" | "to" | 0.5)'],
    ['prompt editing without from', '[to:3]', 'edit(- | "to" | 3)'],
    ['prompt editing with an empty to', '[from::2]', 'edit("from" |  | 2)'],
    ['prompt editing with spaces around when', '[a:b: 10 ]', 'edit("a" | "b" | 10)'],
    ['alternation', '[cat|dog|fox]', 'alt("cat" | "dog" | "fox")'],
    ['alternation with an empty option', '[fe|]male', 'alt("fe" | ) "male"'],
    ['escaped pipe inside alternation', '[a\\|b|c]', 'alt("a" \\| "b" | "c")'],
    ['nested alternation inside editing', '[[a|b]:c:3]', 'edit(alt("a" | "b") | "c" | 3)'],
    ['colon weight in square brackets is prompt editing', '[a:0.5]', 'edit(- | "a" | 0.5)'],
    ['lora', '<lora:film grain:0.7>', '<lora film grain 0.7>'],
    ['lora with te=', '<lora:x:0.5:te=0.8>', '<lora x 0.8>'],
    ['hypernet', '<hypernet:agm:1.1> <hypernet:ray>', '<hypernet agm 1.1> " " <hypernet ray 1>'],
    ['an extra network swallows markup up to >', '<lora:a(b*:1>', '<lora a(b* 1>'],
    ['< without the pattern is text', '<3, <a b:c>', '"<3" , " <a b:c>"'],
    ['BREAK', 'a BREAK b', '"a " BREAK " b"'],
    ['BREAK must be a whole word', 'xBREAK BREAKy éBREAK', '"xBREAK BREAKy éBREAK"'],
    ['BREAK between commas', 'a,BREAK,b', '"a" , BREAK , "b"'],
  ])('%s: %j', (_rule, text, expected) => {
    const document = parse(text);
    expect(shape(document.children)).toBe(expected);
    expect(document.diagnostics).toEqual([]);
  });

  it.each<[string, string, string, DiagnosticCode[]]>([
    ['unclosed bold', '**a, b', '"**a" , " b"', ['unbalanced-emphasis']],
    ['closing marker without opener', 'a** b', '"a** b"', ['unbalanced-emphasis']],
    ['a spaced asterisk', '2 * 3', '"2 * 3"', ['unbalanced-emphasis']],
    ['four asterisks', '****a****', '"****a****"', ['unbalanced-emphasis', 'unbalanced-emphasis']],
    ['unclosed bracket', '(a, b', '"(a" , " b"', ['unbalanced-bracket']],
    ['closer without opener', 'smile :)', '"smile :)"', ['unbalanced-bracket']],
    ['weight without (', 'a:1.2)', '"a:1.2)"', ['unbalanced-bracket']],
    [
      'crossed brackets',
      '(a[b)c]',
      '"(a" square×0.9090909090909091("b)c")',
      ['unbalanced-bracket', 'unbalanced-bracket'],
    ],
    [
      'emphasis cannot cross a bracket',
      '**a (b** c)',
      '"**a " round×1.1("b** c")',
      ['unbalanced-emphasis', 'unbalanced-emphasis'],
    ],
    ['unreadable weight stays text', '(a:1.2.3)', 'round×1.1("a:1.2.3")', ['invalid-weight']],
    ['unreadable network weight', '<lora:x:abc>', '<lora x NaN>', ['invalid-weight']],
    ['neither editing nor alternation', '[a:b]', 'square×0.9090909090909091("a:b")', ['ambiguous-brackets']],
    ['pipes and colons mixed', '[a|b:1]', 'square×0.9090909090909091("a|b:1")', ['ambiguous-brackets']],
    ['too many colons', '[a:b:c:1]', 'square×0.9090909090909091("a:b:c:1")', ['ambiguous-brackets']],
    [
      'emphasis across a separator',
      '[**a:b**:3]',
      'square×0.9090909090909091(core[**]("a:b") ":3")',
      ['ambiguous-brackets'],
    ],
  ])('%s: %j becomes literal text plus a diagnostic', (_rule, text, expected, codes) => {
    const document = parse(text);
    expect(shape(document.children)).toBe(expected);
    expect(document.diagnostics.map((diagnostic) => diagnostic.code)).toEqual(codes);
  });

  it('reports spans and actionable messages', () => {
    const [diagnostic] = parse('a, (b').diagnostics;
    expect(diagnostic).toMatchObject({ code: 'unbalanced-bracket', severity: 'warning', span: [3, 4] });
    expect(diagnostic!.message).toMatch(/"\(" at 3 is never closed.*escape it as "\\\("/);
    expect(parse('(a:1.2.3)').diagnostics[0]).toMatchObject({ severity: 'error', span: [3, 8] });
  });

  it('reads extra-network arguments as A1111 ExtraNetworkParams does', () => {
    const node = parse('<lora:a=b=c:0.5:unet=0.3:x>').children[0] as ExtraNetworkNode;
    expect(node).toMatchObject({
      kind: 'lora',
      name: 'a=b=c',
      args: ['a=b=c', '0.5', 'unet=0.3', 'x'],
      positional: ['a=b=c', '0.5', 'x'],
      weight: 0.5,
    });
    expect({ ...node.named }).toEqual({ unet: '0.3' });
    const extras = parse('1girl, <hypernet:agm:1.1> <extrasupernet:master:12:13:14> <hypernet:ray>').children;
    expect(extras.filter((child) => child.type === 'extraNetwork').map((child) => child.args)).toEqual([
      ['agm', '1.1'],
      ['master', '12', '13', '14'],
      ['ray'],
    ]);
  });

  it('keeps markers beyond MAX_NESTING_DEPTH literal instead of recursing', () => {
    const depth = MAX_NESTING_DEPTH + 10;
    const document = parse(`${'('.repeat(depth)}a${')'.repeat(depth)}`);
    expect(document.diagnostics.map((diagnostic) => diagnostic.code)).toContain('too-deep');
    let levels = 0;
    let nodes = document.children;
    for (let node = nodes.find((child) => child.type === 'attention'); node?.type === 'attention'; ) {
      levels += 1;
      nodes = node.children;
      node = nodes.find((child) => child.type === 'attention');
    }
    expect(levels).toBe(MAX_NESTING_DEPTH);
  });

  it('handles hostile input in linear time', () => {
    const started = performance.now();
    parse('<a:'.repeat(50_000));
    parse('('.repeat(100_000));
    parse('*a '.repeat(50_000));
    parse(`[${'a:'.repeat(50_000)}]`);
    expect(performance.now() - started).toBeLessThan(3000);
  });

  it('never throws, and its leaves and markers tile the input exactly (property, 3000 inputs)', () => {
    const random = seededRandom(42);
    for (let run = 0; run < 3000; run += 1) {
      const text = randomMarkup(random);
      const document = parse(text);
      const spans = ownedSpans(document.children);
      let offset = 0;
      for (const [start, end] of spans) {
        if (start !== offset || end <= start)
          throw new Error(`spans do not tile ${JSON.stringify(text)} at ${offset}`);
        offset = end;
      }
      expect(offset, JSON.stringify(text)).toBe(text.length);
      for (const diagnostic of document.diagnostics) {
        expect(diagnostic.span[0]).toBeGreaterThanOrEqual(0);
        expect(diagnostic.span[1]).toBeLessThanOrEqual(text.length);
      }
    }
  });
});

describe('parse: underscore aliases', () => {
  it.each([
    ['_a (b, c) d_', '"_a " round×1.1("b" , " c") " d_"'],
    ['**x _a, (y**) b_', '"**x _a" , " " round×1.1("y**") " b_"'],
    ['(_a_, **b**)', 'round×1.1(mood[_]("a") , " " core[**]("b"))'],
    ['_a, **b** c_', '"_a" , " " core[**]("b") " c_"'],
  ])('never pair across a comma: %j', (text, expected) => {
    expect(shape(parse(text).children)).toBe(expected);
  });
});
