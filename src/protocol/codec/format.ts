/**
 * The codec's byte format: every tag, flag and table index that goes on the wire is stated
 * here, once (the encoder, the decoder and the fast paths in protocol/run-frame.ts and
 * result-frame.ts import them).
 *
 * Adding a type (a new tag), in this order:
 * 1. Take the next reserved tag below (0xda..0xdf) as a `T_` constant; never reuse or renumber
 *    a tag, a VIEW_KINDS or ERROR_CTORS index (older peers read them): append only.
 * 2. Describe its body in the table below.
 * 3. Encoder (encoder.ts): give the type a kind in kinds.ts (PROTO_KINDS by exact prototype;
 *    foreignKind for objects of another realm) and write it in `Encoder.writeKind`. If it has
 *    identity (can be shared or cyclic), it takes an object id when its header is written.
 * 4. Decoder (decoder.ts): read it in `Decoder.value`, checking every length against the bytes
 *    left and the limits (`count`, `enter`), and take its object id at the same point.
 * 5. Tests (test/codec.test.ts): a round trip, the exact bytes of a small value, and each
 *    malformed form (truncated, too long, bad length) failing with a CodecError and its path.
 * 6. A change that old peers cannot read raises CODEC_VERSION (and the handshake's protocol).
 *
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

export const CODEC_VERSION = 1;

export class CodecError extends Error {
  readonly path: string;
  constructor(message: string, path: string) {
    super(message);
    this.name = 'CodecError';
    this.path = path;
  }
}

// ---------------------------------------------------------------------------------------------
// Tags

export const FIXSTR = 0x80;
export const FIXARRAY = 0xa0;
export const FIXOBJECT = 0xb0;
export const FIXOBJECT_MAX = 7;
export const T_UNDEFINED = 0xb8;
export const T_NULL = 0xb9;
export const T_FALSE = 0xba;
export const T_TRUE = 0xbb;
export const T_INT8 = 0xbc;
export const T_UINT8 = 0xbd;
export const T_INT16 = 0xbe;
export const T_INT32 = 0xbf;
export const T_FLOAT64 = 0xc0;
export const T_BIGINT = 0xc1;
export const T_LATIN1_8 = 0xc2;
export const T_LATIN1_32 = 0xc3;
export const T_UTF8_8 = 0xc4;
export const T_UTF8_32 = 0xc5;
export const T_UTF16 = 0xc6;
export const T_ARRAY = 0xc7;
export const T_HOLE = 0xc8;
export const T_OBJECT = 0xc9;
export const T_NULL_OBJECT = 0xca;
export const T_REF = 0xcb;
export const T_MAP = 0xcc;
export const T_SET = 0xcd;
export const T_DATE = 0xce;
export const T_REGEXP = 0xcf;
export const T_ARRAY_BUFFER = 0xd0;
export const T_VIEW = 0xd1;
export const T_BOXED_NUMBER = 0xd2;
export const T_BOXED_STRING = 0xd3;
export const T_BOXED_FALSE = 0xd4;
export const T_BOXED_TRUE = 0xd5;
export const T_BOXED_BIGINT = 0xd6;
export const T_ERROR = 0xd7;
export const T_INSTANCE = 0xd8;
export const T_SPLIT = 0xd9;

export const ERR_CLASS = 8;
export const F_NAME = 1;
export const F_MESSAGE = 2;
export const F_STACK = 4;
export const F_CAUSE = 8;
export const F_ERRORS = 16;
/** SuppressedError's own `error` and `suppressed` (not enumerable, like `cause`). */
export const F_ERROR = 32;
export const F_SUPPRESSED = 64;

export const DEFAULT_MAX_DEPTH = 512;
export const DEFAULT_MAX_ITEMS = 16 * 1024 * 1024;
export const MAX_BUFFER = bufferConstants.MAX_LENGTH;

export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// Float64 <-> bytes without allocating a DataView per call.
export const F64 = new Float64Array(1);
export const F64_BYTES = new Uint8Array(F64.buffer);

type ViewCtor = new (buffer: ArrayBuffer, byteOffset?: number, length?: number) => ArrayBufferView;
interface ViewKind {
  name: string;
  ctor: ViewCtor | undefined;
  size: number;
  /**
   * What to do when this runtime lacks the kind and a peer on a newer Node.js sends one (a
   * mixed-version cluster): said in the error.
   */
  missing?: string;
}

const Float16 = (globalThis as { Float16Array?: ViewCtor }).Float16Array;

// Index in this table = kind byte on the wire; append only.
export const VIEW_KINDS: ViewKind[] = [
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
  {
    name: 'Float16Array',
    ctor: Float16,
    size: 2,
    missing: 'it needs Node.js 24 or newer on both sides; send a Float32Array instead',
  },
  { name: 'DataView', ctor: DataView, size: 1 },
  { name: 'Buffer', ctor: undefined, size: 1 },
];
export const VIEW_BUFFER = 13;

/**
 * SuppressedError (explicit resource management: a `using` block whose disposal threw too)
 * is built in from Node.js 24 on. Where it is not, its errors decode as this stand-in of the
 * same name, which keeps `error` and `suppressed`.
 */
const SuppressedErrorCtor: ErrorConstructor =
  (globalThis as unknown as { SuppressedError?: ErrorConstructor }).SuppressedError ??
  (() => {
    const StandIn = class SuppressedError extends Error {};
    Object.defineProperty(StandIn.prototype, 'name', {
      value: 'SuppressedError',
      writable: true,
      configurable: true,
    });
    return StandIn as unknown as ErrorConstructor;
  })();

// Index = error kind byte on the wire; append only. 8 is ERR_CLASS (a class of the registry).
export const ERROR_CTORS: ReadonlyArray<ErrorConstructor | undefined> = [
  Error,
  EvalError,
  RangeError,
  ReferenceError,
  SyntaxError,
  TypeError,
  URIError,
  AggregateError as unknown as ErrorConstructor,
  undefined,
  SuppressedErrorCtor,
];
export const ERROR_NAMES: ReadonlyArray<string | undefined> = ERROR_CTORS.map((c) => c?.name);

/** Most bytes one number takes (a float64 and its tag). */
export const NUMBER_MAX_BYTES = 9;

/**
 * Writes a number as the encoder does (the smallest integer form, else float64) into `b` at
 * `pos`, which has room for NUMBER_MAX_BYTES; returns the end. Exported for protocol/result-frame.ts.
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
