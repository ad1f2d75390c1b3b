/**
 * The codec's two commonest messages, written and read without the general encoder and
 * decoder: a tiny job's arguments (`[thisArg, args]` of a few numbers, short strings,
 * booleans, null or undefined) and a plain result (a number, a boolean, null or undefined).
 *
 * The bytes are exactly those of the general codec (test/codec-small.test.ts compares them
 * over many values); anything else returns "not small" and the caller takes the general path.
 * Why a second writer: the general one, with its object ids, depth limits, error paths and
 * class registry, is a few hundred bytecodes per value. A process that is not warm yet runs
 * it interpreted for thousands of jobs, and then V8 compiles it (and everything it inlines)
 * on a background thread that competes with the workers for the CPUs: most of what the first
 * burst of a fresh process costs more than a warm one is such code, not the jobs.
 */
import {
  CODEC_VERSION,
  FIXARRAY,
  FIXSTR,
  numberEnd,
  readNumberAt,
  T_FALSE,
  T_FLOAT64,
  T_HOLE,
  T_INT8,
  T_LATIN1_8,
  T_NULL,
  T_TRUE,
  T_UNDEFINED,
  writeNumberAt,
} from './format.ts';

/** Fewer arguments than this fit a FIXARRAY header. */
const MAX_ARGS = 15;
/** Strings shorter than this are a FIXSTR when ASCII. */
const MAX_STRING = 31;
// Worst case: version, [thisArg, [args]] headers, then 16 values of at most 1 + 31 bytes.
// A Buffer, as every other caller of writeNumberAt passes: a plain Uint8Array there too made
// it polymorphic, and V8 threw its optimised code away mid-burst ("wrong map").
const scratch = Buffer.allocUnsafeSlow(4 + (MAX_ARGS + 1) * (1 + MAX_STRING));

/**
 * A job's `[thisArg, args]` as `encodeSplit` writes it, when `thisArg` and each of fewer than
 * 16 arguments is undefined, null, a boolean, a number or an ASCII string under 32 characters
 * (holes stay holes); else null. Nothing is split off such arguments.
 */
export function encodeSmallArgs(thisArg: unknown, args: readonly unknown[]): Buffer | null {
  const len = args.length;
  if (len > MAX_ARGS) return null;
  const b = scratch;
  b[0] = CODEC_VERSION;
  b[1] = FIXARRAY | 2;
  let p = writeSmall(b, 2, thisArg);
  if (p < 0) return null;
  b[p++] = FIXARRAY | len;
  for (let i = 0; i < len; i++) {
    const x = args[i];
    if (x === undefined && !(i in args)) {
      b[p++] = T_HOLE;
      continue;
    }
    p = writeSmall(b, p, x);
    if (p < 0) return null;
  }
  // From Node's buffer pool, as the general encoder's small outputs.
  const out = Buffer.allocUnsafe(p);
  for (let i = 0; i < p; i++) out[i] = b[i]!;
  return out;
}

/** Writes a primitive as the encoder does; -1 if it is not one this file writes. */
function writeSmall(b: Uint8Array, p: number, v: unknown): number {
  switch (typeof v) {
    case 'number':
      return writeNumberAt(b, p, v);
    case 'string': {
      const len = v.length;
      if (len > MAX_STRING) return -1;
      for (let i = 0; i < len; i++) {
        const c = v.charCodeAt(i);
        if (c >= 0x80) return -1;
        b[p + 1 + i] = c;
      }
      b[p] = FIXSTR | len;
      return p + 1 + len;
    }
    case 'boolean':
      b[p] = v ? T_TRUE : T_FALSE;
      return p + 1;
    case 'undefined':
      b[p] = T_UNDEFINED;
      return p + 1;
    case 'object':
      if (v !== null) return -1;
      b[p] = T_NULL;
      return p + 1;
    default:
      return -1;
  }
}

/**
 * A list of fewer than 16 ASCII strings of at most 255 characters (function hashes) as
 * `encode` writes it, else null.
 */
export function encodeStringList(list: readonly string[]): Buffer | null {
  const n = list.length;
  if (n > MAX_ARGS) return null;
  let size = 2;
  for (let i = 0; i < n; i++) {
    const len = list[i]!.length;
    size += (len <= MAX_STRING ? 1 : 2) + len;
  }
  const out = Buffer.allocUnsafe(size);
  out[0] = CODEC_VERSION;
  out[1] = FIXARRAY | n;
  let p = 2;
  for (let i = 0; i < n; i++) {
    const s = list[i]!;
    const len = s.length;
    // The encoder's forms: FIXSTR under 32 characters, else a u8 length while even a
    // worst-case UTF-8 encoding (3 bytes a character) would fit one.
    if (len > MAX_STRING && len * 3 > 0xff) return null;
    if (len <= MAX_STRING) out[p++] = FIXSTR | len;
    else {
      out[p++] = T_LATIN1_8;
      out[p++] = len;
    }
    for (let k = 0; k < len; k++) {
      const c = s.charCodeAt(k);
      if (c >= 0x80) return null;
      out[p++] = c;
    }
  }
  return out;
}

/**
 * Writes `value` as `encodeInto(value, classes, name, out, at)` does (version byte, then the
 * value) if it is undefined, null, a boolean, a number or an ASCII string under 32 characters;
 * returns the end, or undefined for anything else (the general encoder's).
 */
export function encodeSmallInto(value: unknown, out: Buffer, at: number): number | undefined {
  if (out.byteLength - at < 2 + MAX_STRING) return undefined;
  out[at] = CODEC_VERSION;
  const end = writeSmall(out, at + 1, value);
  return end < 0 ? undefined : end;
}

/**
 * A job's `[thisArg, args]` read back from what {@link encodeSmallArgs} writes (primitives
 * only, no holes), as `decode` returns it; undefined for anything else, malformed bytes
 * included, which the general decoder reads or rejects with its error.
 */
export function decodeSmallArgs(bytes: Uint8Array): [unknown, unknown[]] | undefined {
  const end = bytes.byteLength;
  if (end < 4 || bytes[0] !== CODEC_VERSION || bytes[1] !== (FIXARRAY | 2)) return undefined;
  const thisArg = readSmall(bytes, 2, end);
  if (thisArg === NOT_SMALL) return undefined;
  let p = smallEnd;
  const t = bytes[p++];
  if (t === undefined || t < FIXARRAY || t > (FIXARRAY | MAX_ARGS)) return undefined;
  const n = t - FIXARRAY;
  const args: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const v = readSmall(bytes, p, end);
    if (v === NOT_SMALL) return undefined;
    args.push(v);
    p = smallEnd;
  }
  return p === end ? [thisArg, args] : undefined;
}

/** Where {@link readSmall} stopped. */
let smallEnd = 0;

/** A primitive as {@link writeSmall} writes it, at `p`, leaving its end in smallEnd; else NOT_SMALL. */
function readSmall(b: Uint8Array, p: number, end: number): unknown {
  if (p >= end) return NOT_SMALL;
  const t = b[p]!;
  if (t < 0x80 || t >= 0xe0) {
    smallEnd = p + 1;
    return t < 0x80 ? t : t - 0x100;
  }
  if (t < FIXARRAY) {
    // A string of up to 31 Latin-1 characters (one byte each, as the decoder reads them).
    const n = t - FIXSTR;
    if (p + 1 + n > end) return NOT_SMALL;
    smallEnd = p + 1 + n;
    let s = '';
    for (let i = p + 1; i < smallEnd; i++) s += String.fromCharCode(b[i]!);
    return s;
  }
  if (t >= T_INT8 && t <= T_FLOAT64) {
    const v = readNumberAt(b, p, end);
    if (v === undefined) return NOT_SMALL;
    smallEnd = numberEnd.pos;
    return v;
  }
  smallEnd = p + 1;
  return constantOf(t);
}

/** The value of a one-byte tag (undefined, null, false, true), else {@link NOT_SMALL}. */
function constantOf(t: number): unknown {
  switch (t) {
    case T_UNDEFINED:
      return undefined;
    case T_NULL:
      return null;
    case T_FALSE:
      return false;
    case T_TRUE:
      return true;
    default:
      return NOT_SMALL;
  }
}

/** What {@link decodeSmall} returns for bytes it leaves to the general decoder. */
export const NOT_SMALL: unique symbol = Symbol('not small');

/**
 * The value in `bytes[start, end)` if it is a number, a boolean, null or undefined (as
 * `decodeRange` would return it), else {@link NOT_SMALL}: other values, and anything
 * malformed, which the general decoder reads or rejects with its error.
 */
export function decodeSmall(bytes: Uint8Array, start: number, end: number): unknown {
  if (end - start < 2 || bytes[start] !== CODEC_VERSION) return NOT_SMALL;
  const p = start + 1;
  const t = bytes[p]!;
  if (t < 0x80 || t >= 0xe0 || (t >= T_INT8 && t <= T_FLOAT64)) {
    const v = readNumberAt(bytes, p, end);
    return v !== undefined && numberEnd.pos === end ? v : NOT_SMALL;
  }
  if (end !== p + 1) return NOT_SMALL;
  return constantOf(t);
}
