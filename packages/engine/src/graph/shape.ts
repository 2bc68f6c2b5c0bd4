/**
 * A dimension: a number when known at build time, else a name (`'batch'`, `'seq'`). Names that
 * come out of reshapes are products written `'batch*seq'`. Two dims with the same name are equal;
 * a named dim is never assumed to be 1, so it never broadcasts.
 */
export type Dim = number | string;
export type Shape = readonly Dim[];

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function isStaticShape(shape: Shape): shape is readonly number[] {
  return shape.every((d) => typeof d === 'number');
}

/** Element count, or undefined when a dim is named. */
export function staticSize(shape: Shape): number | undefined {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number') return undefined;
    n *= d;
  }
  return n;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Numpy broadcasting; returns a message instead of a shape when the shapes do not broadcast. */
export function broadcastShapes(a: Shape, b: Shape): Dim[] | string {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else return `dim ${i - rank} is ${da} in one operand and ${db} in the other`;
  }
  return out;
}

/** A symbolic product: numeric factor and sorted symbol names. */
interface Product {
  factor: number;
  symbols: string[];
}

function toProduct(dims: Shape): Product {
  let factor = 1;
  const symbols: string[] = [];
  for (const d of dims) {
    if (typeof d === 'number') factor *= d;
    else
      for (const part of d.split('*')) {
        if (/^\d+$/.test(part)) factor *= Number(part);
        else symbols.push(part);
      }
  }
  return { factor, symbols: symbols.sort() };
}

/** `whole / part` as a dim, or undefined when it does not divide exactly. */
export function divideDims(whole: Shape, part: Shape): Dim | undefined {
  const a = toProduct(whole);
  const b = toProduct(part);
  const rest = [...a.symbols];
  for (const s of b.symbols) {
    const at = rest.indexOf(s);
    if (at < 0) return undefined;
    rest.splice(at, 1);
  }
  if (b.factor === 0 || a.factor % b.factor !== 0) return undefined;
  const factor = a.factor / b.factor;
  if (rest.length === 0) return factor;
  return (factor === 1 ? rest : [...rest, String(factor)]).join('*');
}
