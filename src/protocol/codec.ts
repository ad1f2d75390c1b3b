/**
 * Portable, versioned binary value codec for every pp-node message (worker pipes and the network).
 *
 * Semantics follow structured clone, plus registered classes. The byte format is our own (not
 * `v8.serialize`, whose output is tied to the V8 version) so any Node version on any architecture
 * can read it.
 *
 * Wire format: byte 0 is CODEC_VERSION, then exactly one value, then nothing. Multi-byte numbers are
 * little-endian. `varint` is unsigned LEB128 (at most 8 bytes, value <= 2^53 - 1).
 *
 *   0x00-0x7f  int 0..127                    0xe0-0xff  int -32..-1
 *   0x80-0x9f  Latin-1 string of 0..31 chars (one byte per char; the encoder emits it for ASCII only)
 *   0xa0-0xaf  array of 0..15 slots, then the slots (a slot is a value or HOLE)
 *   0xb0-0xb7  plain object of 0..7 entries, then (string key, value) pairs
 *   0xb8 undefined  0xb9 null  0xba false  0xbb true
 *   0xbc int8  0xbd uint8  0xbe int16  0xbf int32  0xc0 float64
 *   0xc1 bigint: sign byte (0 or 1), varint n, n magnitude bytes
 *   0xc2 Latin-1 string, u8 length      0xc3 Latin-1 string, u32 length
 *   0xc4 UTF-8 string, u8 byte length   0xc5 UTF-8 string, u32 byte length
 *   0xc6 UTF-16 string (only for strings with lone surrogates): varint code units, 2 bytes each
 *   0xc7 array: varint length, then slots      0xc8 HOLE (only as an array slot)
 *   0xc9 plain object: varint n, n x (string key, value)
 *   0xca null-prototype object: same body as 0xc9
 *   0xcb back-reference: varint object id
 *   0xcc Map: varint n, n x (key, value)       0xcd Set: varint n, n values
 *   0xce Date: float64 time (NaN for an invalid date)
 *   0xcf RegExp: source string, flags string
 *   0xd0 ArrayBuffer: varint n, n bytes
 *   0xd1 view: kind byte (VIEW_KINDS index), varint byte length, bytes
 *   0xd2 boxed Number: float64   0xd3 boxed String: string   0xd4 boxed false   0xd5 boxed true
 *   0xd6 boxed BigInt: bigint value
 *   0xd7 Error: kind byte (ERROR_CTORS index, or 8 = registered class followed by its name string),
 *        flags byte (which of name, message, stack, cause, errors follow), those values in that order,
 *        then varint n, n x (string key, value) own enumerable props
 *   0xd8 class instance: class name string, varint n, n x (string key, value)
 *   0xd9 split: an ArrayBuffer (0xd0) or view (0xd1) header follows, without its bytes; they
 *        travel out of band (see encodeSplit). Machine-local only: never on the network.
 *   0xda-0xdf reserved
 *
 * Every object (everything that has identity in structured clone) takes the next object id, in
 * pre-order, as soon as its header is written/read, so cycles and shared references become
 * back-references to earlier ids.
 */

import { constants as bufferConstants } from 'node:buffer';
import { types } from 'node:util';

export const CODEC_VERSION = 1;

/** Classes that may travel as instances, both ways, matched by name. */
export interface ClassRegistry {
  byCtor: Map<Function, string>;
  byName: Map<string, Function>;
}

export interface DecodeLimits {
  /** Deepest container nesting accepted (default 512). */
  maxDepth?: number;
  /** Largest input accepted, in bytes (default: no limit). */
  maxBytes?: number;
  /** Most values accepted in one message, counting keys and nested values (default 16M). */
  maxItems?: number;
}

/** {@link DecodeLimits} and a heap budget (kept apart: HEAD_LIMITS sets every DecodeLimits field). */
export interface DecodeBudget extends DecodeLimits {
  /**
   * Most heap the decoded value may take, in bytes, as estimated while decoding (default: no
   * limit): every container (object, array, Map, Set, instance, Error) counts
   * {@link CONTAINER_HEAP_BYTES}, every value {@link ITEM_HEAP_BYTES}. A few bytes on the wire can
   * ask for many objects (an empty object is one byte): tie this to the input size for input
   * from peers that are not trusted with your memory (see {@link heapBudgetFor}).
   */
  maxHeapBytes?: number;
}

/** Estimated heap of one decoded container (a V8 object: map, properties, elements, slots). */
export const CONTAINER_HEAP_BYTES = 64;
/** Estimated heap of one decoded value's slot in its container. */
export const ITEM_HEAP_BYTES = 8;

/**
 * A decode heap budget tied to the input: `floorBytes` plus `perByte` estimated bytes per input
 * byte, at most `capBytes`. With the defaults (64 MiB + 24 x input, at most 1 GiB), data as dense
 * in objects as `[{ a: 1 }, ...]` (4 bytes on the wire, 88 estimated) decodes at any size up to
 * the cap, while a message of empty objects (1 byte each, 72 estimated) stops at 64 MiB + 24 x
 * its size: 16 MiB of them at 448 MiB instead of 1.5 GiB, more of them at the cap.
 */
export function heapBudgetFor(
  inputBytes: number,
  perByte = 24,
  floorBytes = 64 << 20,
  capBytes = 1 << 30,
): number {
  return Math.min(capBytes, floorBytes + perByte * Math.max(0, inputBytes));
}

export class CodecError extends Error {
  readonly path: string;
  constructor(message: string, path: string) {
    super(message);
    this.name = 'CodecError';
    this.path = path;
  }
}

export function makeClassRegistry(classes: Iterable<[name: string, ctor: Function]>): ClassRegistry {
  const byCtor = new Map<Function, string>();
  const byName = new Map<string, Function>();
  for (const [name, ctor] of classes) {
    if (typeof ctor !== 'function' || typeof ctor.prototype !== 'object' || ctor.prototype === null) {
      throw new CodecError(`classes: ${name} is not a class`, 'classes');
    }
    const prev = byName.get(name);
    if (prev !== undefined && prev !== ctor) {
      throw new CodecError(`classes: two different classes are registered as ${name}`, 'classes');
    }
    byName.set(name, ctor);
    if (!byCtor.has(ctor)) byCtor.set(ctor, name);
  }
  return { byCtor, byName };
}

// ---------------------------------------------------------------------------------------------
// Tags

const FIXSTR = 0x80;
const FIXARRAY = 0xa0;
const FIXOBJECT = 0xb0;
const FIXOBJECT_MAX = 7;
const T_UNDEFINED = 0xb8;
const T_NULL = 0xb9;
const T_FALSE = 0xba;
const T_TRUE = 0xbb;
const T_INT8 = 0xbc;
const T_UINT8 = 0xbd;
const T_INT16 = 0xbe;
const T_INT32 = 0xbf;
const T_FLOAT64 = 0xc0;
const T_BIGINT = 0xc1;
const T_LATIN1_8 = 0xc2;
const T_LATIN1_32 = 0xc3;
const T_UTF8_8 = 0xc4;
const T_UTF8_32 = 0xc5;
const T_UTF16 = 0xc6;
const T_ARRAY = 0xc7;
const T_HOLE = 0xc8;
const T_OBJECT = 0xc9;
const T_NULL_OBJECT = 0xca;
const T_REF = 0xcb;
const T_MAP = 0xcc;
const T_SET = 0xcd;
const T_DATE = 0xce;
const T_REGEXP = 0xcf;
const T_ARRAY_BUFFER = 0xd0;
const T_VIEW = 0xd1;
const T_BOXED_NUMBER = 0xd2;
const T_BOXED_STRING = 0xd3;
const T_BOXED_FALSE = 0xd4;
const T_BOXED_TRUE = 0xd5;
const T_BOXED_BIGINT = 0xd6;
const T_ERROR = 0xd7;
const T_INSTANCE = 0xd8;
const T_SPLIT = 0xd9;

const ERR_CLASS = 8;
const F_NAME = 1;
const F_MESSAGE = 2;
const F_STACK = 4;
const F_CAUSE = 8;
const F_ERRORS = 16;

const DEFAULT_MAX_DEPTH = 512;
const DEFAULT_MAX_ITEMS = 16 * 1024 * 1024;
const MAX_BUFFER = bufferConstants.MAX_LENGTH;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// Float64 <-> bytes without allocating a DataView per call.
const F64 = new Float64Array(1);
const F64_BYTES = new Uint8Array(F64.buffer);

type ViewCtor = new (buffer: ArrayBuffer, byteOffset?: number, length?: number) => ArrayBufferView;
interface ViewKind {
  name: string;
  ctor: ViewCtor | undefined;
  size: number;
}

const Float16 = (globalThis as { Float16Array?: ViewCtor }).Float16Array;

// Index in this table = kind byte on the wire; append only.
const VIEW_KINDS: ViewKind[] = [
  { name: 'Int8Array', ctor: Int8Array, size: 1 },
  { name: 'Uint8Array', ctor: Uint8Array, size: 1 },
  { name: 'Uint8ClampedArray', ctor: Uint8ClampedArray, size: 1 },
  { name: 'Int16Array', ctor: Int16Array, size: 2 },
  { name: 'Uint16Array', ctor: Uint16Array, size: 2 },
  { name: 'Int32Array', ctor: Int32Array, size: 4 },
  { name: 'Uint32Array', ctor: Uint32Array, size: 4 },
  { name: 'Float32Array', ctor: Float32Array, size: 4 },
  { name: 'Float64Array', ctor: Float64Array, size: 8 },
  { name: 'BigInt64Array', ctor: BigInt64Array, size: 8 },
  { name: 'BigUint64Array', ctor: BigUint64Array, size: 8 },
  { name: 'Float16Array', ctor: Float16, size: 2 },
  { name: 'DataView', ctor: DataView, size: 1 },
  { name: 'Buffer', ctor: undefined, size: 1 },
];
const VIEW_BUFFER = 13;

// Index = error kind byte on the wire; append only.
const ERROR_CTORS: ErrorConstructor[] = [
  Error,
  EvalError,
  RangeError,
  ReferenceError,
  SyntaxError,
  TypeError,
  URIError,
  AggregateError as unknown as ErrorConstructor,
];
const ERROR_NAMES = ERROR_CTORS.map((c) => c.name);

// Dispatch on the exact prototype; a subclass of a built-in is not the built-in.
const K_MAP = 1;
const K_SET = 2;
const K_DATE = 3;
const K_REGEXP = 4;
const K_ARRAY_BUFFER = 5;
const K_NUMBER = 6;
const K_STRING = 7;
const K_BOOLEAN = 8;
const K_BIGINT = 9;
const K_SYMBOL = 10;
const K_SHARED = 11;
const K_PLAIN = 12;
const K_NULL_PROTO = 13;
const K_VIEW = 0x100; // + view kind
const K_ERROR = 0x200; // + error kind

const PROTO_KINDS = new Map<object, number>([
  [Map.prototype, K_MAP],
  [Set.prototype, K_SET],
  [Date.prototype, K_DATE],
  [RegExp.prototype, K_REGEXP],
  [ArrayBuffer.prototype, K_ARRAY_BUFFER],
  [Number.prototype, K_NUMBER],
  [String.prototype, K_STRING],
  [Boolean.prototype, K_BOOLEAN],
  [BigInt.prototype, K_BIGINT],
  [Symbol.prototype, K_SYMBOL],
  [Buffer.prototype, K_VIEW + VIEW_BUFFER],
]);
if (typeof SharedArrayBuffer === 'function') PROTO_KINDS.set(SharedArrayBuffer.prototype, K_SHARED);
VIEW_KINDS.forEach((k, i) => {
  if (k.ctor !== undefined) PROTO_KINDS.set(k.ctor.prototype, K_VIEW + i);
});
ERROR_CTORS.forEach((c, i) => {
  PROTO_KINDS.set(c.prototype, K_ERROR + i);
});

// Built-ins that no registry entry can carry: say what to do instead of "pass it in deps".
const UNCLONEABLE_HINTS = new Map<Function, string>([
  [Promise, 'await it and pass the result'],
  [WeakMap, 'weak collections cannot be copied; use a Map'],
  [WeakSet, 'weak collections cannot be copied; use a Set'],
  [WeakRef, 'pass the referenced value (deref()) instead'],
  [URL, 'pass url.href (a string) instead'],
]);

// Error.isError (Node 24+) supersedes util.types.isNativeError; both see errors from other realms.
const isNativeError: (v: unknown) => boolean =
  (Error as { isError?: (v: unknown) => boolean }).isError ?? types.isNativeError;
const isEnumerable = Object.prototype.propertyIsEnumerable;
const hasOwn = Object.hasOwn;
const getProto = Object.getPrototypeOf;
const dateGetTime = Date.prototype.getTime;
const numberValueOf = Number.prototype.valueOf;
const stringValueOf = String.prototype.valueOf;
const booleanValueOf = Boolean.prototype.valueOf;
const bigintValueOf = BigInt.prototype.valueOf;

interface FastBuffer extends Buffer {
  utf8Write?(s: string, offset: number, max: number): number;
  latin1Slice?(start: number, end: number): string;
}
// Node's internal per-encoding Buffer methods skip the argument parsing of write()/toString();
// fall back to the public API if a future Node removes them.
const PROTO_BUF = Buffer.prototype as FastBuffer;
const utf8Write: (b: Buffer, s: string, offset: number, max: number) => number =
  typeof PROTO_BUF.utf8Write === 'function'
    ? (b, s, offset, max) => (b as FastBuffer).utf8Write!(s, offset, max)
    : (b, s, offset, max) => b.write(s, offset, max, 'utf8');
const latin1Slice: (b: Buffer, start: number, end: number) => string =
  typeof PROTO_BUF.latin1Slice === 'function'
    ? (b, start, end) => (b as FastBuffer).latin1Slice!(start, end)
    : (b, start, end) => b.toString('latin1', start, end);

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const isWellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (s) => !LONE_SURROGATE.test(s);

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const IDENT = /^[A-Za-z_$][\w$]*$/;
function keySegment(key: string): string {
  return IDENT.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

function describe(v: unknown): string {
  if (typeof v === 'function') return v.name ? `function ${v.name}` : 'an anonymous function';
  return String(v);
}

// Thrown inside the encoder/decoder; containers prepend their path segment while it unwinds, so the
// success path pays nothing for path tracking.
class PathFail {
  readonly segments: string[] = [];
  constructor(readonly detail: string) {}
}

function addSegment(e: unknown, segment: string): unknown {
  if (e instanceof PathFail) e.segments.push(segment);
  return e;
}

function toCodecError(e: PathFail, root: string): CodecError {
  let path = root;
  for (let i = e.segments.length - 1; i >= 0; i--) path += e.segments[i];
  return new CodecError(`${path}: ${e.detail}`, path);
}

/**
 * Writes a number as the encoder does (the smallest integer form, else float64) into `b` at
 * `pos`, which has room for 9 bytes; returns the end. Exported for protocol/result-frame.ts.
 */
export function writeNumberAt(b: Uint8Array, pos: number, v: number): number {
  // (v | 0) === v is also true for -0, which must stay a float.
  if ((v | 0) === v && (v !== 0 || 1 / v > 0)) {
    if (v >= 0) {
      if (v < 0x80) {
        b[pos] = v;
        return pos + 1;
      }
      if (v < 0x100) {
        b[pos] = T_UINT8;
        b[pos + 1] = v;
        return pos + 2;
      }
      if (v < 0x8000) return writeInt16(b, pos, v);
      return writeInt32(b, pos, v);
    }
    if (v >= -32) {
      b[pos] = v & 0xff;
      return pos + 1;
    }
    if (v >= -128) {
      b[pos] = T_INT8;
      b[pos + 1] = v & 0xff;
      return pos + 2;
    }
    if (v >= -32768) return writeInt16(b, pos, v);
    return writeInt32(b, pos, v);
  }
  b[pos] = T_FLOAT64;
  F64[0] = v;
  if (LITTLE_ENDIAN) for (let i = 0; i < 8; i++) b[pos + 1 + i] = F64_BYTES[i]!;
  else for (let i = 0; i < 8; i++) b[pos + 1 + i] = F64_BYTES[7 - i]!;
  return pos + 9;
}

function writeInt16(b: Uint8Array, pos: number, v: number): number {
  b[pos] = T_INT16;
  b[pos + 1] = v;
  b[pos + 2] = v >> 8;
  return pos + 3;
}

function writeInt32(b: Uint8Array, pos: number, v: number): number {
  b[pos] = T_INT32;
  b[pos + 1] = v;
  b[pos + 2] = v >>> 8;
  b[pos + 3] = v >>> 16;
  b[pos + 4] = v >>> 24;
  return pos + 5;
}

/** Where {@link readNumberAt} stopped. */
export const numberEnd = { pos: 0 };

/**
 * Reads a number written by the encoder at `pos` (before `end`) and leaves the position after
 * it in {@link numberEnd}; returns undefined when no complete number is there.
 */
export function readNumberAt(b: Uint8Array, pos: number, end: number): number | undefined {
  if (pos >= end) return undefined;
  const t = b[pos]!;
  if (t < 0x80 || t >= 0xe0) {
    numberEnd.pos = pos + 1;
    return t < 0x80 ? t : t - 0x100;
  }
  switch (t) {
    case T_INT8:
    case T_UINT8: {
      if (pos + 2 > end) return undefined;
      numberEnd.pos = pos + 2;
      const x = b[pos + 1]!;
      return t === T_INT8 && x >= 0x80 ? x - 0x100 : x;
    }
    case T_INT16:
      if (pos + 3 > end) return undefined;
      numberEnd.pos = pos + 3;
      return ((b[pos + 1]! | (b[pos + 2]! << 8)) << 16) >> 16;
    case T_INT32:
      if (pos + 5 > end) return undefined;
      numberEnd.pos = pos + 5;
      return b[pos + 1]! | (b[pos + 2]! << 8) | (b[pos + 3]! << 16) | (b[pos + 4]! << 24);
    case T_FLOAT64:
      if (pos + 9 > end) return undefined;
      numberEnd.pos = pos + 9;
      if (LITTLE_ENDIAN) for (let i = 0; i < 8; i++) F64_BYTES[i] = b[pos + 1 + i]!;
      else for (let i = 0; i < 8; i++) F64_BYTES[7 - i] = b[pos + 1 + i]!;
      return F64[0]!;
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Encoder

const INITIAL_SCRATCH = 64 * 1024;
// Give a scratch buffer that grew for one huge message back to the GC.
const KEEP_SCRATCH = 8 * 1024 * 1024;
// Up to this many objects, identity is tracked with a linear scan: a Map costs more for tiny messages.
const LINEAR_SEEN = 24;

class Encoder {
  buf: Buffer = Buffer.allocUnsafeSlow(INITIAL_SCRATCH);
  pos = 0;
  busy = false;
  classes: ClassRegistry | undefined = undefined;
  depth = 0;
  // Objects seen so far, by id; once there are more than LINEAR_SEEN, `ids` indexes them.
  seen: object[] = [];
  nseen = 0;
  ids: Map<object, number> | undefined = undefined;
  // Large views are not copied into the scratch buffer but straight into the output at the
  // end (one copy instead of two): `at` is where their bytes go in the scratch stream.
  deferred: Array<{ at: number; bytes: Uint8Array }> = [];
  deferredBytes = 0;
  // With `split`, large binary parts are not copied at all: they are listed in `segments`
  // and their headers marked T_SPLIT (see encodeSplit).
  split = false;
  segments: SplitSegment[] = [];

  run(value: unknown, classes: ClassRegistry | undefined, rootName: string): Buffer;
  run(
    value: unknown,
    classes: ClassRegistry | undefined,
    rootName: string,
    into: Uint8Array,
    at: number,
    orNew: boolean,
  ): number | Buffer;
  run(
    value: unknown,
    classes: ClassRegistry | undefined,
    rootName: string,
    into?: Uint8Array,
    at = 0,
    orNew = false,
  ): Buffer | number {
    this.busy = true;
    this.classes = classes;
    this.pos = 0;
    this.depth = 0;
    try {
      this.buf[this.pos++] = CODEC_VERSION;
      this.writeValue(value);
      if (into) {
        const n = this.pos;
        if (this.deferred.length === 0 && at + n <= into.byteLength) {
          into.set(new Uint8Array(this.buf.buffer, 0, n), at);
          return at + n;
        }
        if (!orNew) return -1;
      }
      if (this.deferred.length > 0) return this.assemble();
      const n = this.pos;
      // Small outputs come from Node's buffer pool (an allocUnsafeSlow costs ~300 ns, as much
      // as encoding a small job); nothing transfers encoder output without copying it first.
      const out = n < POOLED_BELOW ? Buffer.allocUnsafe(n) : Buffer.allocUnsafeSlow(n);
      const src = this.buf;
      if (n <= 16) {
        for (let i = 0; i < n; i++) out[i] = src[i]!;
      } else {
        // Cheaper than Buffer#copy (argument checks) or subarray (species lookup).
        out.set(new Uint8Array(src.buffer, 0, n));
      }
      return out;
    } catch (e) {
      if (e instanceof PathFail) throw toCodecError(e, rootName);
      throw e;
    } finally {
      // Drop references to the caller's objects.
      const seen = this.seen;
      for (let i = 0, n = Math.min(this.nseen, LINEAR_SEEN); i < n; i++) seen[i] = undefined as never;
      this.nseen = 0;
      this.ids = undefined;
      this.classes = undefined;
      this.deferred = [];
      this.deferredBytes = 0;
      if (this.buf.length > KEEP_SCRATCH) this.buf = Buffer.allocUnsafeSlow(INITIAL_SCRATCH);
      this.busy = false;
    }
  }

  runSplit(
    value: unknown,
    classes: ClassRegistry | undefined,
    rootName: string,
  ): { bytes: Buffer; segments: SplitSegment[] } {
    this.split = true;
    try {
      const bytes = this.run(value, classes, rootName);
      return { bytes, segments: this.segments.length === 0 ? NO_SEGMENTS : this.segments };
    } finally {
      this.split = false;
      this.segments = [];
    }
  }

  /** Marks the header just written (from `tagAt`) as split, its bytes listed, not copied. */
  splitOff(tagAt: number, bytes: Uint8Array): void {
    this.buf[tagAt] = T_SPLIT;
    this.segments.push({ tagAt, at: this.pos, bytes });
  }

  /** The output: scratch bytes with the deferred views' bytes spliced in at their places. */
  assemble(): Buffer {
    const total = this.pos + this.deferredBytes;
    if (total > MAX_BUFFER) throw new PathFail(`message too large: over ${MAX_BUFFER} bytes`);
    const out = Buffer.allocUnsafeSlow(total);
    const scratch = new Uint8Array(this.buf.buffer, 0, this.pos);
    let from = 0;
    let o = 0;
    for (const { at, bytes } of this.deferred) {
      out.set(scratch.subarray(from, at), o);
      o += at - from;
      out.set(bytes, o);
      o += bytes.byteLength;
      from = at;
    }
    out.set(scratch.subarray(from), o);
    return out;
  }

  ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }

  grow(n: number): void {
    const need = this.pos + n;
    if (need > MAX_BUFFER) throw new PathFail(`message too large: over ${MAX_BUFFER} bytes`);
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    if (size > MAX_BUFFER) size = MAX_BUFFER;
    const next = Buffer.allocUnsafeSlow(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  writeVarint(n: number): void {
    const buf = this.buf;
    while (n >= 0x80) {
      buf[this.pos++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    buf[this.pos++] = n;
  }

  writeU32(n: number, at: number): void {
    const buf = this.buf;
    buf[at] = n;
    buf[at + 1] = n >>> 8;
    buf[at + 2] = n >>> 16;
    buf[at + 3] = n >>> 24;
  }

  writeFloat64(v: number): void {
    F64[0] = v;
    const buf = this.buf;
    const p = this.pos;
    if (LITTLE_ENDIAN) {
      buf[p] = F64_BYTES[0]!;
      buf[p + 1] = F64_BYTES[1]!;
      buf[p + 2] = F64_BYTES[2]!;
      buf[p + 3] = F64_BYTES[3]!;
      buf[p + 4] = F64_BYTES[4]!;
      buf[p + 5] = F64_BYTES[5]!;
      buf[p + 6] = F64_BYTES[6]!;
      buf[p + 7] = F64_BYTES[7]!;
    } else {
      for (let i = 0; i < 8; i++) buf[p + i] = F64_BYTES[7 - i]!;
    }
    this.pos = p + 8;
  }

  writeValue(v: unknown): void {
    if (typeof v === 'number') {
      this.writeNumber(v);
      return;
    }
    if (typeof v === 'string') {
      this.writeString(v);
      return;
    }
    if (typeof v === 'object') {
      if (v === null) {
        this.ensure(1);
        this.buf[this.pos++] = T_NULL;
        return;
      }
      this.writeObject(v);
      return;
    }
    this.ensure(1);
    if (typeof v === 'boolean') {
      this.buf[this.pos++] = v ? T_TRUE : T_FALSE;
      return;
    }
    if (v === undefined) {
      this.buf[this.pos++] = T_UNDEFINED;
      return;
    }
    if (typeof v === 'bigint') {
      this.buf[this.pos++] = T_BIGINT;
      this.writeBigIntBody(v);
      return;
    }
    if (typeof v === 'function') {
      throw new PathFail(`functions cannot travel as values: pass it in deps instead (found ${describe(v)})`);
    }
    throw new PathFail(`symbols cannot travel as values (found ${String(v)})`);
  }

  writeNumber(v: number): void {
    this.ensure(9);
    this.pos = writeNumberAt(this.buf, this.pos, v);
  }

  writeString(s: string): void {
    const len = s.length;
    if (len < 32) {
      // Short ASCII: a JS loop beats the native call.
      this.ensure(32);
      const buf = this.buf;
      const p = this.pos + 1;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[p + i] = c;
      }
      if (i === len) {
        buf[this.pos] = FIXSTR | len;
        this.pos = p + len;
        return;
      }
    }
    this.writeLongString(s);
  }

  writeLongString(s: string): void {
    const len = s.length;
    const max = len * 3;
    this.ensure(max + 5);
    const start = this.pos;
    // A u8 length if even a worst-case UTF-8 encoding fits in it.
    const header = max <= 0xff ? 2 : 5;
    const n = utf8Write(this.buf, s, start + header, max);
    // UTF-8 byte count equals the char count only for pure ASCII.
    if (n !== len && !isWellFormed(s)) {
      this.writeUtf16(s);
      return;
    }
    const buf = this.buf;
    if (header === 2) {
      buf[start] = n === len ? T_LATIN1_8 : T_UTF8_8;
      buf[start + 1] = n;
    } else {
      buf[start] = n === len ? T_LATIN1_32 : T_UTF8_32;
      this.writeU32(n, start + 1);
    }
    this.pos = start + header + n;
  }

  writeUtf16(s: string): void {
    const len = s.length;
    this.ensure(len * 2 + 9);
    this.buf[this.pos++] = T_UTF16;
    this.writeVarint(len);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < len; i++) {
      const c = s.charCodeAt(i);
      buf[p++] = c;
      buf[p++] = c >> 8;
    }
    this.pos = p;
  }

  writeBigIntBody(v: bigint): void {
    let sign = 0;
    if (v < 0n) {
      sign = 1;
      v = -v;
    }
    let hex = v === 0n ? '' : v.toString(16);
    if (hex.length & 1) hex = `0${hex}`;
    const n = hex.length >> 1;
    this.ensure(n + 10);
    this.buf[this.pos++] = sign;
    this.writeVarint(n);
    const buf = this.buf;
    const p = this.pos;
    // toString(16) is big-endian; the wire is little-endian.
    const be = Buffer.from(hex, 'hex');
    for (let i = 0; i < n; i++) buf[p + n - 1 - i] = be[i]!;
    this.pos = p + n;
  }

  /** Returns true if `o` was written as a back-reference; otherwise gives it the next id. */
  writeRef(o: object): boolean {
    const n = this.nseen;
    let id = -1;
    if (n <= LINEAR_SEEN) {
      const seen = this.seen;
      for (let i = 0; i < n; i++) {
        if (seen[i] === o) {
          id = i;
          break;
        }
      }
      if (id < 0) {
        if (n < LINEAR_SEEN) {
          seen[n] = o;
        } else {
          const ids = new Map<object, number>();
          for (let i = 0; i < n; i++) ids.set(seen[i]!, i);
          ids.set(o, n);
          this.ids = ids;
        }
        this.nseen = n + 1;
        return false;
      }
    } else {
      const ids = this.ids!;
      const found = ids.get(o);
      if (found === undefined) {
        ids.set(o, n);
        this.nseen = n + 1;
        return false;
      }
      id = found;
    }
    this.ensure(9);
    this.buf[this.pos++] = T_REF;
    this.writeVarint(id);
    return true;
  }

  enter(): void {
    if (++this.depth > DEFAULT_MAX_DEPTH) {
      throw new PathFail(`nesting deeper than ${DEFAULT_MAX_DEPTH} levels`);
    }
  }

  writeObject(v: object): void {
    if (this.writeRef(v)) return;
    if (Array.isArray(v)) {
      this.writeArray(v);
      return;
    }
    const proto = getProto(v);
    if (proto === Object.prototype) {
      this.writeProps(v, T_OBJECT, true);
      return;
    }
    const kind = proto === null ? K_NULL_PROTO : PROTO_KINDS.get(proto);
    if (kind === undefined) {
      this.writeOther(v, proto);
      return;
    }
    this.writeKind(v, kind);
  }

  /** Writes a built-in object whose kind is known (K_* constant). */
  writeKind(v: object, kind: number): void {
    if (kind === K_PLAIN) {
      this.writeProps(v, T_OBJECT, true);
      return;
    }
    if (kind === K_NULL_PROTO) {
      this.writeProps(v, T_NULL_OBJECT, false);
      return;
    }
    if (kind >= K_ERROR) {
      this.writeError(v as Error, kind - K_ERROR, undefined);
      return;
    }
    if (kind >= K_VIEW) {
      this.writeView(v as ArrayBufferView, kind - K_VIEW);
      return;
    }
    this.ensure(10);
    const buf = this.buf;
    switch (kind) {
      case K_MAP:
        this.writeMap(v as Map<unknown, unknown>);
        return;
      case K_SET:
        this.writeSet(v as Set<unknown>);
        return;
      case K_DATE:
        buf[this.pos++] = T_DATE;
        this.writeFloat64(dateGetTime.call(v));
        return;
      case K_REGEXP: {
        const re = v as RegExp;
        buf[this.pos++] = T_REGEXP;
        this.writeString(re.source);
        this.writeString(re.flags);
        return;
      }
      case K_ARRAY_BUFFER: {
        const ab = v as ArrayBuffer;
        const n = ab.byteLength;
        if (this.split && n >= DEFER_VIEW_BYTES) {
          this.ensure(11);
          const tagAt = this.pos++;
          this.buf[this.pos++] = T_ARRAY_BUFFER;
          this.writeVarint(n);
          this.splitOff(tagAt, new Uint8Array(ab));
          return;
        }
        buf[this.pos++] = T_ARRAY_BUFFER;
        this.writeVarint(n);
        this.ensure(n);
        // A detached buffer has length 0 and cannot be viewed: it travels as empty.
        if (n > 0) this.buf.set(new Uint8Array(ab), this.pos);
        this.pos += n;
        return;
      }
      case K_NUMBER:
        buf[this.pos++] = T_BOXED_NUMBER;
        this.writeFloat64(numberValueOf.call(v));
        return;
      case K_STRING:
        buf[this.pos++] = T_BOXED_STRING;
        this.writeString(stringValueOf.call(v));
        return;
      case K_BOOLEAN:
        buf[this.pos++] = booleanValueOf.call(v) ? T_BOXED_TRUE : T_BOXED_FALSE;
        return;
      case K_BIGINT:
        buf[this.pos++] = T_BOXED_BIGINT;
        buf[this.pos++] = T_BIGINT;
        this.writeBigIntBody(bigintValueOf.call(v));
        return;
      case K_SYMBOL:
        throw new PathFail('symbols cannot travel as values (found a boxed Symbol)');
      default:
        throw new PathFail('a SharedArrayBuffer cannot travel: memory cannot be shared across processes');
    }
  }

  /** Objects whose prototype is not a known built-in one: registered classes, subclasses, etc. */
  writeOther(v: object, proto: object): void {
    let ctor: unknown;
    try {
      ctor = (proto as { constructor?: unknown }).constructor;
    } catch {
      ctor = undefined;
    }
    const name = typeof ctor === 'function' ? this.classes?.byCtor.get(ctor) : undefined;
    const isError = v instanceof Error || isNativeError(v);
    if (name !== undefined) {
      if (isError) {
        this.writeError(v as Error, ERR_CLASS, name);
        return;
      }
      this.ensure(1);
      this.buf[this.pos++] = T_INSTANCE;
      this.writeString(name);
      this.writeProps(v, -1, false);
      return;
    }
    if (isError) {
      this.writeError(v as Error, errorKindOf(proto, v as Error), undefined);
      return;
    }
    // A built-in from another realm (e.g. a vm context) has none of our prototypes in its chain; a
    // subclass of one of ours does, and is refused below rather than silently losing its class.
    if (!(v instanceof Object)) {
      const kind = foreignKind(v, proto);
      if (kind !== undefined) {
        this.writeKind(v, kind);
        return;
      }
    }
    const className = typeof ctor === 'function' && ctor.name ? ctor.name : 'anonymous';
    const hint = typeof ctor === 'function' ? UNCLONEABLE_HINTS.get(ctor) : undefined;
    if (hint !== undefined) throw new PathFail(`an instance of class ${className} cannot travel: ${hint}`);
    throw new PathFail(
      `an instance of class ${className} cannot travel: pass the class in deps so the worker knows it ` +
        `(submit(fn, args, { deps: [${className}] }))`,
    );
  }

  writeArray(a: unknown[]): void {
    this.enter();
    const len = a.length;
    this.ensure(9);
    if (len < 16) {
      this.buf[this.pos++] = FIXARRAY | len;
    } else {
      this.buf[this.pos++] = T_ARRAY;
      this.writeVarint(len);
    }
    let i = 0;
    try {
      for (; i < len; i++) {
        const x = a[i];
        if (x === undefined && !(i in a)) {
          this.ensure(1);
          this.buf[this.pos++] = T_HOLE;
        } else {
          this.writeValue(x);
        }
      }
    } catch (e) {
      throw addSegment(e, `[${i}]`);
    }
    this.depth--;
  }

  /** Own enumerable string-keyed props. tag -1: no header (the caller wrote it). */
  writeProps(o: object, tag: number, fix: boolean): void {
    this.enter();
    const keys = Object.keys(o);
    const n = keys.length;
    this.ensure(9);
    if (fix && n <= FIXOBJECT_MAX) {
      this.buf[this.pos++] = FIXOBJECT | n;
    } else {
      if (tag >= 0) this.buf[this.pos++] = tag;
      this.writeVarint(n);
    }
    let key = '';
    try {
      for (let i = 0; i < n; i++) {
        key = keys[i]!;
        this.writeString(key);
        this.writeValue((o as Record<string, unknown>)[key]);
      }
    } catch (e) {
      throw addSegment(e, keySegment(key));
    }
    this.depth--;
  }

  writeMap(m: Map<unknown, unknown>): void {
    this.enter();
    const n = m.size;
    this.buf[this.pos++] = T_MAP;
    this.writeVarint(n);
    let segment = '<map key>';
    let count = 0;
    try {
      for (const [k, v] of m) {
        if (++count > n) break;
        segment = '<map key>';
        this.writeValue(k);
        segment = '<map value>';
        this.writeValue(v);
      }
    } catch (e) {
      throw addSegment(e, segment);
    }
    if (count !== n) throw new PathFail('the Map changed size while it was being encoded');
    this.depth--;
  }

  writeSet(s: Set<unknown>): void {
    this.enter();
    const n = s.size;
    this.buf[this.pos++] = T_SET;
    this.writeVarint(n);
    let count = 0;
    try {
      for (const v of s) {
        if (++count > n) break;
        this.writeValue(v);
      }
    } catch (e) {
      throw addSegment(e, '<set item>');
    }
    if (count !== n) throw new PathFail('the Set changed size while it was being encoded');
    this.depth--;
  }

  writeView(v: ArrayBufferView, kind: number): void {
    const ab = v.buffer;
    if (types.isSharedArrayBuffer(ab)) {
      throw new PathFail(
        `a ${VIEW_KINDS[kind]!.name} over a SharedArrayBuffer cannot travel: ` +
          'memory cannot be shared across processes (copy it into a plain ArrayBuffer)',
      );
    }
    const n = v.byteLength;
    const size = VIEW_KINDS[kind]!.size;
    // Large views skip the scratch buffer. Only in wire byte order (little-endian), so that a
    // split message joined back (joinSplit) is a valid message anywhere.
    const large = n >= DEFER_VIEW_BYTES && (LITTLE_ENDIAN || size === 1);
    this.ensure(11);
    const tagAt = this.pos;
    if (large && this.split) this.pos++; // room for T_SPLIT
    this.buf[this.pos++] = T_VIEW;
    this.buf[this.pos++] = kind;
    this.writeVarint(n);
    if (large && this.split) {
      this.splitOff(tagAt, new Uint8Array(ab, v.byteOffset, n));
      return;
    }
    if (large) {
      this.deferred.push({ at: this.pos, bytes: new Uint8Array(ab, v.byteOffset, n) });
      this.deferredBytes += n;
      return;
    }
    this.ensure(n);
    const p = this.pos;
    if (n > 0) this.buf.set(new Uint8Array(ab, v.byteOffset, n), p);
    if (!LITTLE_ENDIAN && size > 1) swapBytes(this.buf, p, n, size);
    this.pos = p + n;
  }

  writeError(e: Error, kind: number, className: string | undefined): void {
    this.enter();
    this.ensure(2);
    this.buf[this.pos++] = T_ERROR;
    this.buf[this.pos++] = kind;
    if (className !== undefined) this.writeString(className);
    // Carry a field here only when it is not own-enumerable (those travel with the other props),
    // so the decoded error has the same property attributes.
    const name = (e as { name?: unknown }).name;
    const stack = (e as { stack?: unknown }).stack;
    let flags = 0;
    if (
      !isEnumerable.call(e, 'name') &&
      (hasOwn(e, 'name') || (kind !== ERR_CLASS && name !== ERROR_NAMES[kind]))
    ) {
      flags |= F_NAME;
    }
    const message = (e as { message?: unknown }).message;
    if (
      !isEnumerable.call(e, 'message') &&
      (hasOwn(e, 'message') || (kind !== ERR_CLASS && message !== '' && message !== undefined))
    ) {
      flags |= F_MESSAGE;
    }
    if (typeof stack === 'string' && !isEnumerable.call(e, 'stack')) flags |= F_STACK;
    if (hasOwn(e, 'cause') && !isEnumerable.call(e, 'cause')) flags |= F_CAUSE;
    if (hasOwn(e, 'errors') && !isEnumerable.call(e, 'errors')) flags |= F_ERRORS;
    this.ensure(1);
    this.buf[this.pos++] = flags;
    let segment = '.name';
    try {
      if (flags & F_NAME) this.writeValue(name);
      segment = '.message';
      if (flags & F_MESSAGE) this.writeValue(message);
      segment = '.stack';
      if (flags & F_STACK) this.writeValue(stack);
      segment = '.cause';
      if (flags & F_CAUSE) this.writeValue(e.cause);
      segment = '.errors';
      if (flags & F_ERRORS) this.writeValue((e as { errors?: unknown }).errors);
    } catch (err) {
      throw addSegment(err, segment);
    }
    this.depth--;
    this.writeProps(e, -1, false);
  }
}

const VIEW_NAMES = VIEW_KINDS.map((k) => k.name);

/** Kind of a built-in object created in another realm, found via internal slots, not prototypes. */
function foreignKind(v: object, proto: object): number | undefined {
  if (types.isMap(v)) return K_MAP;
  if (types.isSet(v)) return K_SET;
  if (types.isDate(v)) return K_DATE;
  if (types.isRegExp(v)) return K_REGEXP;
  if (types.isArrayBuffer(v)) return K_ARRAY_BUFFER;
  if (types.isSharedArrayBuffer(v)) return K_SHARED;
  if (types.isArrayBufferView(v)) {
    const i = VIEW_NAMES.indexOf(Object.prototype.toString.call(v).slice(8, -1));
    return i < 0 ? undefined : K_VIEW + i;
  }
  if (types.isNumberObject(v)) return K_NUMBER;
  if (types.isStringObject(v)) return K_STRING;
  if (types.isBooleanObject(v)) return K_BOOLEAN;
  if (types.isBigIntObject(v)) return K_BIGINT;
  if (types.isSymbolObject(v)) return K_SYMBOL;
  const ctor = (proto as { constructor?: unknown }).constructor;
  if (getProto(proto) === null && typeof ctor === 'function' && ctor.name === 'Object') return K_PLAIN;
  return undefined;
}

/** Built-in error kind closest to `proto` in its prototype chain (0 = Error). */
function errorKindOf(proto: object | null, e: Error | undefined): number {
  for (let p = proto; p !== null; p = getProto(p)) {
    const k = PROTO_KINDS.get(p);
    if (k !== undefined && k >= K_ERROR) return k - K_ERROR;
  }
  // An error from another realm: go by its name.
  const i = e === undefined ? -1 : ERROR_NAMES.indexOf((e as { name?: string }).name ?? '');
  return Math.max(i, 0);
}

function swapBytes(b: Uint8Array, start: number, n: number, size: number): void {
  for (let p = start, end = start + n; p < end; p += size) {
    for (let i = 0, j = size - 1; i < j; i++, j--) {
      const t = b[p + i]!;
      b[p + i] = b[p + j]!;
      b[p + j] = t;
    }
  }
}

const POOLED_BELOW = 1024;
// Views at least this large skip the scratch buffer (see Encoder.deferred).
const DEFER_VIEW_BYTES = 64 * 1024;
const sharedEncoder = new Encoder();

/**
 * Encodes `value` into a Buffer. Outputs of 1 KiB or more own their whole ArrayBuffer; smaller
 * ones may be slices of Node's shared pool (copy before transferring them).
 * `rootName` names the value in error paths, e.g. 'args' gives 'args[0].point'.
 */
export function encode(value: unknown, classes?: ClassRegistry, rootName = 'value'): Buffer {
  // A getter that itself calls encode() must not clobber the shared scratch state.
  const enc = sharedEncoder.busy ? new Encoder() : sharedEncoder;
  return enc.run(value, classes, rootName);
}

/**
 * Like {@link encode}, but writes the bytes into `out` from `at` and returns where they end,
 * without allocating. When they do not fit there, it writes nothing and returns -1, or with
 * `orNew`, returns the encoding as a new Buffer (as {@link encode} would: no second pass).
 */
export function encodeInto(
  value: unknown,
  classes: ClassRegistry | undefined,
  rootName: string,
  out: Uint8Array,
  at: number,
): number;
export function encodeInto(
  value: unknown,
  classes: ClassRegistry | undefined,
  rootName: string,
  out: Uint8Array,
  at: number,
  orNew: true,
): number | Buffer;
export function encodeInto(
  value: unknown,
  classes: ClassRegistry | undefined,
  rootName: string,
  out: Uint8Array,
  at: number,
  orNew = false,
): number | Buffer {
  const enc = sharedEncoder.busy ? new Encoder() : sharedEncoder;
  return enc.run(value, classes, rootName, out, at, orNew);
}

const NO_SEGMENTS: SplitSegment[] = Object.freeze([]) as unknown as SplitSegment[];

/** A large binary part that {@link encodeSplit} left out of the encoded bytes. */
export interface SplitSegment {
  /** Position of its T_SPLIT marker in the encoded bytes. */
  readonly tagAt: number;
  /** Position where its bytes would follow their header (in the encoded bytes). */
  readonly at: number;
  /** Its bytes: a view of the caller's memory, not a copy. */
  readonly bytes: Uint8Array;
}

/** Gives the next out-of-band part to {@link decode}: an ArrayBuffer of exactly `byteLength` bytes it may keep. */
export type SegmentSource = (byteLength: number) => ArrayBuffer;

/**
 * Like {@link encode}, but typed arrays, Buffers and ArrayBuffers of 64 KiB or more are not
 * copied: the encoded bytes hold their headers, marked as split, and `segments` lists their
 * memory in order. The caller copies the segments wherever the receiver can read them (the
 * local workers' shared arena) before anything can change them, and the receiver decodes
 * with a {@link SegmentSource}. {@link joinSplit} turns the two back into an ordinary message.
 */
export function encodeSplit(
  value: unknown,
  classes?: ClassRegistry,
  rootName = 'value',
): { bytes: Buffer; segments: SplitSegment[] } {
  const enc = sharedEncoder.busy ? new Encoder() : sharedEncoder;
  return enc.runSplit(value, classes, rootName);
}

/** The ordinary encoding (as {@link encode} makes it) of a split one, as parts (no copy). */
export function joinSplit(
  bytes: Uint8Array,
  segments: ReadonlyArray<{ readonly tagAt: number; readonly at: number }>,
  segmentBytes: ReadonlyArray<Uint8Array | readonly Uint8Array[]>,
): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let from = 0;
  segments.forEach((s, i) => {
    if (s.tagAt > from) parts.push(bytes.subarray(from, s.tagAt));
    parts.push(bytes.subarray(s.tagAt + 1, s.at));
    const b = segmentBytes[i]!;
    if (b instanceof Uint8Array) parts.push(b);
    else parts.push(...b);
    from = s.at;
  });
  if (from < bytes.byteLength) parts.push(bytes.subarray(from));
  return parts;
}

// ---------------------------------------------------------------------------------------------
// Decoder

const HEX: string[] = [];
for (let i = 0; i < 256; i++) HEX.push(i.toString(16).padStart(2, '0'));

const EMPTY = Buffer.alloc(0);
// Never pushed to: only a placeholder between decodes.
const NO_REFS: object[] = [];

class Decoder {
  b: Buffer = EMPTY;
  pos = 0;
  end = 0;
  refs: object[] = NO_REFS;
  depth = 0;
  items = 0;
  maxDepth = DEFAULT_MAX_DEPTH;
  maxItems = DEFAULT_MAX_ITEMS;
  maxHeap = Number.POSITIVE_INFINITY;
  classes: ClassRegistry | undefined = undefined;
  segments: SegmentSource | undefined = undefined;

  /** Where the value starts in `b` (a value may be decoded from a range of a larger buffer). */
  start = 0;

  fail(detail: string): PathFail {
    return new PathFail(`${detail} (at byte ${this.pos - this.start})`);
  }

  need(n: number): void {
    if (n > this.end - this.pos) throw this.fail(`truncated input: ${n} more bytes needed`);
  }

  byte(): number {
    if (this.pos >= this.end) throw this.fail('truncated input');
    return this.b[this.pos++]!;
  }

  varint(): number {
    const b = this.b;
    let p = this.pos;
    if (p < this.end) {
      const x = b[p]!;
      if (x < 0x80) {
        this.pos = p + 1;
        return x;
      }
    }
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (p >= this.end) throw this.fail('truncated input in a length or id');
      const x = b[p++]!;
      result += (x & 0x7f) * scale;
      if (x < 0x80) {
        this.pos = p;
        if (result > Number.MAX_SAFE_INTEGER) throw this.fail('length or id out of range');
        return result;
      }
      scale *= 128;
    }
    throw this.fail('length or id out of range');
  }

  /** A count of items that each take at least `minBytes` bytes must fit in what is left. */
  count(minBytes: number): number {
    const n = this.varint();
    if (n * minBytes > this.end - this.pos) {
      throw this.fail(`a length of ${n} does not fit in the ${this.end - this.pos} bytes left`);
    }
    return n;
  }

  u32(): number {
    this.need(4);
    const b = this.b;
    const p = this.pos;
    this.pos = p + 4;
    return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
  }

  float64(): number {
    this.need(8);
    const b = this.b;
    const p = this.pos;
    if (LITTLE_ENDIAN) {
      F64_BYTES[0] = b[p]!;
      F64_BYTES[1] = b[p + 1]!;
      F64_BYTES[2] = b[p + 2]!;
      F64_BYTES[3] = b[p + 3]!;
      F64_BYTES[4] = b[p + 4]!;
      F64_BYTES[5] = b[p + 5]!;
      F64_BYTES[6] = b[p + 6]!;
      F64_BYTES[7] = b[p + 7]!;
    } else {
      for (let i = 0; i < 8; i++) F64_BYTES[7 - i] = b[p + i]!;
    }
    this.pos = p + 8;
    return F64[0]!;
  }

  latin1(n: number): string {
    if (n > this.end - this.pos) throw this.fail(`truncated input: a string of ${n} bytes`);
    const b = this.b;
    const p = this.pos;
    this.pos = p + n;
    // Tiny strings: concatenating in JS beats the native call.
    if (n <= 7) {
      let s = '';
      for (let i = p, e = p + n; i < e; i++) s += String.fromCharCode(b[i]!);
      return s;
    }
    return latin1Slice(b, p, p + n);
  }

  utf8(n: number): string {
    if (n > this.end - this.pos) throw this.fail(`truncated input: a string of ${n} bytes`);
    const p = this.pos;
    let s: string;
    try {
      s = utf8Decoder.decode(this.b.subarray(p, p + n));
    } catch {
      throw this.fail('invalid UTF-8 in a string');
    }
    this.pos = p + n;
    return s;
  }

  utf16(): string {
    const n = this.count(2);
    const b = this.b;
    let p = this.pos;
    const parts: string[] = [];
    // Chunked so String.fromCharCode never gets too many arguments.
    for (let done = 0; done < n; ) {
      const chunk = Math.min(n - done, 4096);
      const codes = new Array<number>(chunk);
      for (let i = 0; i < chunk; i++, p += 2) codes[i] = b[p]! | (b[p + 1]! << 8);
      parts.push(String.fromCharCode.apply(null, codes));
      done += chunk;
    }
    this.pos = p;
    return parts.join('');
  }

  /** Reads a value that must be a string (object keys, class names, RegExp parts). */
  string(what: string): string {
    const t = this.byte();
    if (++this.items > this.maxItems) throw this.fail(`more than ${this.maxItems} values`);
    if (t >= FIXSTR && t < FIXARRAY) return this.latin1(t - FIXSTR);
    if (t >= T_LATIN1_8 && t <= T_UTF16) return this.stringBody(t);
    this.pos--;
    throw this.fail(`expected a string for ${what}, found tag 0x${t.toString(16)}`);
  }

  /** The body of a string with one of the tags T_LATIN1_8 .. T_UTF16. */
  stringBody(t: number): string {
    switch (t) {
      case T_LATIN1_8:
        return this.latin1(this.byte());
      case T_LATIN1_32:
        return this.latin1(this.u32());
      case T_UTF8_8:
        return this.utf8(this.byte());
      case T_UTF8_32:
        return this.utf8(this.u32());
      default:
        return this.utf16();
    }
  }

  bigint(): bigint {
    const sign = this.byte();
    if (sign > 1) throw this.fail('bad bigint sign');
    const n = this.count(1);
    const b = this.b;
    const p = this.pos;
    this.pos = p + n;
    if (n === 0) return 0n;
    let v: bigint;
    if (n <= 6) {
      let x = 0;
      for (let i = n - 1; i >= 0; i--) x = x * 256 + b[p + i]!;
      v = BigInt(x);
    } else {
      let hex = '0x';
      if (n <= 64) {
        for (let i = n - 1; i >= 0; i--) hex += HEX[b[p + i]!];
      } else {
        const rev = Buffer.allocUnsafe(n);
        for (let i = 0; i < n; i++) rev[i] = b[p + n - 1 - i]!;
        hex += rev.toString('hex');
      }
      try {
        v = BigInt(hex);
      } catch {
        throw this.fail(`a bigint of ${n} bytes is too large for this runtime`);
      }
    }
    return sign ? -v : v;
  }

  enter(): void {
    if (++this.depth > this.maxDepth) throw this.fail(`nesting deeper than maxDepth (${this.maxDepth})`);
    // Containers are what a few bytes can multiply: the heap budget is checked as each one starts.
    if (this.refs.length * CONTAINER_HEAP_BYTES + this.items * ITEM_HEAP_BYTES > this.maxHeap) {
      throw this.fail(
        `the value would take more than the heap budget of ${mib(this.maxHeap)} ` +
          `(${this.refs.length} objects and ${this.items} values so far, from ${mib(this.end - this.start)} of input): ` +
          'send many small values as typed arrays or fewer, larger ones',
      );
    }
  }

  value(): unknown {
    if (this.pos >= this.end) throw this.fail('truncated input');
    const t = this.b[this.pos++]!;
    if (++this.items > this.maxItems) throw this.fail(`more than ${this.maxItems} values`);
    if (t < 0x80) return t;
    if (t < FIXARRAY) return this.latin1(t - FIXSTR);
    if (t < FIXOBJECT) return this.array(t - FIXARRAY);
    if (t < T_UNDEFINED) return this.object(t - FIXOBJECT);
    if (t >= 0xe0) return t - 0x100;
    switch (t) {
      case T_UNDEFINED:
        return undefined;
      case T_NULL:
        return null;
      case T_FALSE:
        return false;
      case T_TRUE:
        return true;
      case T_INT8:
      case T_UINT8:
      case T_INT16:
      case T_INT32:
      case T_FLOAT64: {
        const v = readNumberAt(this.b, this.pos - 1, this.end);
        if (v === undefined) throw this.fail('truncated input: a number runs past the end');
        this.pos = numberEnd.pos;
        return v;
      }
      case T_BIGINT:
        return this.bigint();
      case T_LATIN1_8:
      case T_LATIN1_32:
      case T_UTF8_8:
      case T_UTF8_32:
      case T_UTF16:
        return this.stringBody(t);
      case T_ARRAY:
        return this.array(this.count(1));
      case T_OBJECT:
        return this.object(this.count(2));
      case T_NULL_OBJECT:
        return this.nullObject();
      case T_REF: {
        const id = this.varint();
        if (id >= this.refs.length) throw this.fail(`back-reference to object #${id}, not defined yet`);
        return this.refs[id];
      }
      case T_MAP:
        return this.map();
      case T_SET:
        return this.set();
      case T_DATE: {
        const d = new Date(this.float64());
        this.refs.push(d);
        return d;
      }
      case T_REGEXP:
        return this.regexp();
      case T_ARRAY_BUFFER: {
        const n = this.count(1);
        const ab = newArrayBuffer(n);
        this.b.copy(new Uint8Array(ab), 0, this.pos, this.pos + n);
        this.pos += n;
        this.refs.push(ab);
        return ab;
      }
      case T_VIEW:
        return this.view();
      case T_SPLIT:
        return this.splitPart();
      case T_BOXED_NUMBER:
        return this.boxed(Object(this.float64()));
      case T_BOXED_STRING:
        return this.boxed(Object(this.string('a boxed String')));
      case T_BOXED_FALSE:
        return this.boxed(Object(false));
      case T_BOXED_TRUE:
        return this.boxed(Object(true));
      case T_BOXED_BIGINT: {
        if (this.byte() !== T_BIGINT) {
          this.pos--;
          throw this.fail('expected a bigint inside a boxed BigInt');
        }
        return this.boxed(Object(this.bigint()));
      }
      case T_ERROR:
        return this.error();
      case T_INSTANCE:
        return this.instance();
      case T_HOLE:
        this.pos--;
        throw this.fail('an array hole outside an array');
    }
    this.pos--;
    throw this.fail(`unknown tag 0x${t.toString(16)}`);
  }

  boxed(o: object): object {
    this.refs.push(o);
    return o;
  }

  array(len: number): unknown[] {
    this.enter();
    const a: unknown[] = [];
    this.refs.push(a);
    const b = this.b;
    let i = 0;
    try {
      for (; i < len; i++) {
        if (this.pos < this.end && b[this.pos] === T_HOLE) {
          this.pos++;
          if (++this.items > this.maxItems) throw this.fail(`more than ${this.maxItems} values`);
          a.length = i + 1;
        } else {
          a.push(this.value());
        }
      }
    } catch (e) {
      throw addSegment(e, `[${i}]`);
    }
    this.depth--;
    return a;
  }

  object(n: number): Record<string, unknown> {
    this.enter();
    const o: Record<string, unknown> = {};
    this.refs.push(o);
    this.props(o, n, false);
    this.depth--;
    return o;
  }

  nullObject(): Record<string, unknown> {
    const n = this.count(2);
    this.enter();
    const o = Object.create(null) as Record<string, unknown>;
    this.refs.push(o);
    this.props(o, n, true);
    this.depth--;
    return o;
  }

  /** n (key, value) pairs as own enumerable data props. `define`: never run setters on the chain. */
  props(o: Record<string, unknown>, n: number, define: boolean): void {
    let key = '';
    let segment = '<key>';
    try {
      for (let i = 0; i < n; i++) {
        segment = `<key #${i}>`;
        key = this.string('an object key');
        segment = keySegment(key);
        const v = this.value();
        // `__proto__` must become an own property, never a prototype change.
        if (define || key === '__proto__') {
          Object.defineProperty(o, key, { value: v, writable: true, enumerable: true, configurable: true });
        } else {
          o[key] = v;
        }
      }
    } catch (e) {
      throw addSegment(e, segment);
    }
  }

  map(): Map<unknown, unknown> {
    const n = this.count(2);
    this.enter();
    const m = new Map<unknown, unknown>();
    this.refs.push(m);
    let segment = '<map key>';
    try {
      for (let i = 0; i < n; i++) {
        segment = '<map key>';
        const k = this.value();
        segment = '<map value>';
        m.set(k, this.value());
      }
    } catch (e) {
      throw addSegment(e, segment);
    }
    this.depth--;
    return m;
  }

  set(): Set<unknown> {
    const n = this.count(1);
    this.enter();
    const s = new Set<unknown>();
    this.refs.push(s);
    try {
      for (let i = 0; i < n; i++) s.add(this.value());
    } catch (e) {
      throw addSegment(e, '<set item>');
    }
    this.depth--;
    return s;
  }

  regexp(): RegExp {
    const source = this.string('a RegExp source');
    const flags = this.string('RegExp flags');
    let re: RegExp;
    try {
      re = new RegExp(source, flags);
    } catch {
      throw this.fail(`invalid RegExp /${source.slice(0, 100)}/${flags.slice(0, 20)}`);
    }
    this.refs.push(re);
    return re;
  }

  /** A view's kind byte and byte length, checked; `inline`: its bytes follow in the input. */
  viewHeader(inline: boolean): { kind: number; k: (typeof VIEW_KINDS)[number]; n: number } {
    const kind = this.byte();
    const k = VIEW_KINDS[kind];
    if (k === undefined) throw this.fail(`unknown typed array kind ${kind}`);
    const n = inline ? this.count(1) : this.varint();
    if (n % k.size !== 0) throw this.fail(`${k.name} byte length ${n} is not a multiple of ${k.size}`);
    if (k.ctor === undefined && kind !== VIEW_BUFFER)
      throw this.fail(`${k.name} is not available in this runtime`);
    return { kind, k, n };
  }

  view(): ArrayBufferView {
    const { kind, k, n } = this.viewHeader(true);
    const p = this.pos;
    let v: ArrayBufferView;
    if (kind === VIEW_BUFFER) {
      // allocUnsafeSlow: never a slice of Node's shared pool.
      v = Buffer.allocUnsafeSlow(n);
      this.b.copy(v as Buffer, 0, p, p + n);
    } else {
      const ab = newArrayBuffer(n);
      const bytes = new Uint8Array(ab);
      this.b.copy(bytes, 0, p, p + n);
      if (!LITTLE_ENDIAN && k.size > 1) swapBytes(bytes, 0, n, k.size);
      v = kind === 1 ? bytes : new k.ctor!(ab);
    }
    this.pos = p + n;
    this.refs.push(v);
    return v;
  }

  /** An ArrayBuffer or view whose bytes come from the segment source (see encodeSplit). */
  splitPart(): ArrayBuffer | ArrayBufferView {
    const source = this.segments;
    if (source === undefined) throw this.fail('an out-of-band part, but this message has none');
    const t = this.byte();
    if (t === T_ARRAY_BUFFER) {
      const ab = this.segment(source, this.varint());
      this.refs.push(ab);
      return ab;
    }
    if (t !== T_VIEW) throw this.fail(`an out-of-band part must be an ArrayBuffer or a view, not tag ${t}`);
    const { kind, k, n } = this.viewHeader(false);
    const ab = this.segment(source, n);
    const v: ArrayBufferView =
      kind === VIEW_BUFFER ? Buffer.from(ab) : kind === 1 ? new Uint8Array(ab) : new k.ctor!(ab);
    this.refs.push(v);
    return v;
  }

  segment(source: SegmentSource, n: number): ArrayBuffer {
    const ab = source(n);
    if (!(ab instanceof ArrayBuffer) || ab.byteLength !== n)
      throw this.fail(`an out-of-band part of ${n} bytes did not arrive whole`);
    return ab;
  }

  lookupClass(name: string): Function {
    const ctor = this.classes?.byName.get(name);
    if (ctor === undefined) {
      throw this.fail(
        `an instance of class ${name} arrived but ${name} is not a known class here: pass it in deps`,
      );
    }
    return ctor;
  }

  instance(): object {
    const name = this.string('a class name');
    const ctor = this.lookupClass(name);
    const n = this.count(2);
    this.enter();
    // Like structured clone, the constructor is not run; only the own data travels.
    const o = Object.create(ctor.prototype as object) as Record<string, unknown>;
    this.refs.push(o);
    this.props(o, n, true);
    this.depth--;
    return o;
  }

  error(): Error {
    const kind = this.byte();
    let base: ErrorConstructor;
    let newTarget: Function | undefined;
    if (kind === ERR_CLASS) {
      newTarget = this.lookupClass(this.string('an error class name'));
      base = ERROR_CTORS[errorKindOf(newTarget.prototype as object, undefined)]!;
    } else {
      const c = ERROR_CTORS[kind];
      if (c === undefined) throw this.fail(`unknown error kind ${kind}`);
      base = c;
    }
    this.enter();
    // A real Error object (not a look-alike); skip the costly stack capture, the stack travels.
    const limit = Error.stackTraceLimit;
    let e: Error;
    try {
      setStackTraceLimit(0);
      const args = base === (AggregateError as unknown) ? [[]] : [];
      e = newTarget === undefined ? Reflect.construct(base, args) : Reflect.construct(base, args, newTarget);
    } finally {
      setStackTraceLimit(limit);
    }
    this.refs.push(e);
    const flags = this.byte();
    if (flags > 31) throw this.fail(`bad error flags 0x${flags.toString(16)}`);
    let segment = '.name';
    try {
      if (flags & F_NAME) defineHidden(e, 'name', this.value());
      segment = '.message';
      if (flags & F_MESSAGE) defineHidden(e, 'message', this.value());
      segment = '.stack';
      if (flags & F_STACK) defineHidden(e, 'stack', this.value());
      else delete (e as { stack?: unknown }).stack;
      segment = '.cause';
      if (flags & F_CAUSE) defineHidden(e, 'cause', this.value());
      segment = '.errors';
      if (flags & F_ERRORS) defineHidden(e, 'errors', this.value());
      else if (hasOwn(e, 'errors')) delete (e as { errors?: unknown }).errors;
    } catch (err) {
      throw addSegment(err, segment);
    }
    this.props(e as unknown as Record<string, unknown>, this.count(2), true);
    this.depth--;
    return e;
  }

  run(
    bytes: Uint8Array,
    classes: ClassRegistry | undefined,
    limits: DecodeBudget | undefined,
    segments: SegmentSource | undefined,
    start: number,
    end: number,
  ): unknown {
    this.segments = segments;
    this.b = bytes instanceof Buffer ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.start = start;
    this.pos = start;
    this.end = end;
    // A fresh array is cheaper than truncating the old one (a runtime call).
    this.refs = [];
    this.depth = 0;
    this.items = 0;
    this.classes = classes;
    this.maxDepth = DEFAULT_MAX_DEPTH;
    this.maxItems = DEFAULT_MAX_ITEMS;
    this.maxHeap = Number.POSITIVE_INFINITY;
    if (limits !== undefined) {
      if (limits.maxDepth !== undefined) this.maxDepth = limits.maxDepth;
      if (limits.maxItems !== undefined) this.maxItems = limits.maxItems;
      if (limits.maxHeapBytes !== undefined) this.maxHeap = limits.maxHeapBytes;
      if (limits.maxBytes !== undefined && end - start > limits.maxBytes) {
        throw new PathFail(`input is ${end - start} bytes, over the maxBytes limit of ${limits.maxBytes}`);
      }
    }
    if (end === start) throw new PathFail('empty input');
    const version = this.b[start]!;
    if (version !== CODEC_VERSION) {
      throw new PathFail(`encoded by codec version ${version}; this build reads version ${CODEC_VERSION}`);
    }
    this.pos = start + 1;
    const v = this.value();
    if (this.pos !== this.end) throw this.fail(`${this.end - this.pos} trailing bytes after the value`);
    return v;
  }
}

function mib(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}

function setStackTraceLimit(n: number): void {
  try {
    Error.stackTraceLimit = n;
  } catch {
    // Frozen by the host (e.g. hardened intrinsics): then we just pay for the stack capture.
  }
}

function defineHidden(o: object, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, writable: true, enumerable: false, configurable: true });
}

/**
 * An ArrayBuffer of exactly n bytes. Large ones skip zero-filling (every byte is written next);
 * small ones come from `new ArrayBuffer`, cheaper than Buffer's slow path at that size.
 */
function newArrayBuffer(n: number): ArrayBuffer {
  return n < 4096 ? new ArrayBuffer(n) : (Buffer.allocUnsafeSlow(n).buffer as ArrayBuffer);
}

const sharedDecoder = new Decoder();
let decoding = false;

/**
 * Decodes one message. Any malformed, truncated or hostile input throws CodecError.
 * Decoded typed arrays and Buffers are copies that own their memory, never views of `bytes`.
 * Split parts (see {@link encodeSplit}) come from `segments`, in order; without it they are
 * an error.
 */
export function decode(
  bytes: Uint8Array,
  classes?: ClassRegistry,
  limits?: DecodeBudget,
  segments?: SegmentSource,
): unknown {
  if (!(bytes instanceof Uint8Array)) throw new CodecError('value: decode expects a Uint8Array', 'value');
  return decodeIn(bytes, 0, bytes.byteLength, classes, limits, segments);
}

/**
 * Like {@link decode}, for a value that is `bytes[start, end)`: no view of the range is made
 * (the server decodes every result this way, straight from the chunk it was read in).
 */
export function decodeRange(
  bytes: Uint8Array,
  start: number,
  end: number,
  classes?: ClassRegistry,
  limits?: DecodeBudget,
): unknown {
  if (!(bytes instanceof Uint8Array)) throw new CodecError('value: decode expects a Uint8Array', 'value');
  if (
    !(
      Number.isInteger(start) &&
      Number.isInteger(end) &&
      start >= 0 &&
      start <= end &&
      end <= bytes.byteLength
    )
  )
    throw new RangeError(`decodeRange: [${start}, ${end}) is not a range of ${bytes.byteLength} bytes`);
  return decodeIn(bytes, start, end, classes, limits, undefined);
}

function decodeIn(
  bytes: Uint8Array,
  start: number,
  end: number,
  classes: ClassRegistry | undefined,
  limits: DecodeBudget | undefined,
  segments: SegmentSource | undefined,
): unknown {
  // Decoding runs no user code, but stay correct if that ever changes.
  const dec = decoding ? new Decoder() : sharedDecoder;
  decoding = true;
  try {
    return dec.run(bytes, classes, limits, segments, start, end);
  } catch (e) {
    if (e instanceof PathFail) throw toCodecError(e, 'value');
    // Anything else (e.g. a stack overflow with a huge maxDepth) is still malformed input to the caller.
    const msg = e instanceof Error ? e.message : String(e);
    throw new CodecError(`value: malformed input (${msg})`, 'value');
  } finally {
    if (dec === sharedDecoder) {
      decoding = false;
      dec.refs = NO_REFS;
      dec.b = EMPTY;
      dec.classes = undefined;
      dec.segments = undefined;
    }
  }
}
