/** Helpers both directions of the codec share: error paths, fast string and byte access. */
import { types } from 'node:util';
import { CodecError } from './format.ts';

// Error.isError (Node 24+) supersedes util.types.isNativeError; both see errors from other realms.
export const isNativeError: (v: unknown) => boolean =
  (Error as { isError?: (v: unknown) => boolean }).isError ?? types.isNativeError;
export const isEnumerable = Object.prototype.propertyIsEnumerable;
export const hasOwn = Object.hasOwn;
export const getProto = Object.getPrototypeOf;
export const dateGetTime = Date.prototype.getTime;
export const numberValueOf = Number.prototype.valueOf;
export const stringValueOf = String.prototype.valueOf;
export const booleanValueOf = Boolean.prototype.valueOf;
export const bigintValueOf = BigInt.prototype.valueOf;

interface FastBuffer extends Buffer {
  utf8Write?(s: string, offset: number, max: number): number;
  latin1Slice?(start: number, end: number): string;
}
// Node's internal per-encoding Buffer methods skip the argument parsing of write()/toString();
// fall back to the public API if a future Node removes them.
const PROTO_BUF = Buffer.prototype as FastBuffer;
export const utf8Write: (b: Buffer, s: string, offset: number, max: number) => number =
  typeof PROTO_BUF.utf8Write === 'function'
    ? (b, s, offset, max) => (b as FastBuffer).utf8Write!(s, offset, max)
    : (b, s, offset, max) => b.write(s, offset, max, 'utf8');
export const latin1Slice: (b: Buffer, start: number, end: number) => string =
  typeof PROTO_BUF.latin1Slice === 'function'
    ? (b, start, end) => (b as FastBuffer).latin1Slice!(start, end)
    : (b, start, end) => b.toString('latin1', start, end);

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
export const isWellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (s) => !LONE_SURROGATE.test(s);

export const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const IDENT = /^[A-Za-z_$][\w$]*$/;
export function keySegment(key: string): string {
  return IDENT.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

export function describe(v: unknown): string {
  if (typeof v === 'function') return v.name ? `function ${v.name}` : 'an anonymous function';
  return String(v);
}

// Thrown inside the encoder/decoder; containers prepend their path segment while it unwinds, so the
// success path pays nothing for path tracking.
export class PathFail {
  readonly segments: string[] = [];
  constructor(readonly detail: string) {}
}

export function addSegment(e: unknown, segment: string): unknown {
  if (e instanceof PathFail) e.segments.push(segment);
  return e;
}

export function toCodecError(e: PathFail, root: string): CodecError {
  let path = root;
  for (let i = e.segments.length - 1; i >= 0; i--) path += e.segments[i];
  return new CodecError(`${path}: ${e.detail}`, path);
}

export function swapBytes(b: Uint8Array, start: number, n: number, size: number): void {
  for (let p = start, end = start + n; p < end; p += size) {
    for (let i = 0, j = size - 1; i < j; i++, j--) {
      const t = b[p + i]!;
      b[p + i] = b[p + j]!;
      b[p + j] = t;
    }
  }
}
