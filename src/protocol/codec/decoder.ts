/** The decoder: bytes to a value, for any input (malformed, truncated or hostile input throws CodecError). */
import type { ClassRegistry } from './classes.ts';
import {
  addSegment,
  hasOwn,
  keySegment,
  latin1Slice,
  PathFail,
  swapBytes,
  toCodecError,
  utf8Decoder,
} from './common.ts';
import {
  CODEC_VERSION,
  CodecError,
  DEFAULT_MAX_DEPTH,
  DEFAULT_MAX_ITEMS,
  ERR_CLASS,
  ERROR_CTORS,
  F_CAUSE,
  F_ERROR,
  F_ERRORS,
  F_MESSAGE,
  F_NAME,
  F_STACK,
  F_SUPPRESSED,
  F64,
  F64_BYTES,
  FIXARRAY,
  FIXOBJECT,
  FIXSTR,
  LITTLE_ENDIAN,
  numberEnd,
  readNumberAt,
  T_ARRAY,
  T_ARRAY_BUFFER,
  T_BIGINT,
  T_BOXED_BIGINT,
  T_BOXED_FALSE,
  T_BOXED_NUMBER,
  T_BOXED_STRING,
  T_BOXED_TRUE,
  T_DATE,
  T_ERROR,
  T_FALSE,
  T_FLOAT64,
  T_HOLE,
  T_INSTANCE,
  T_INT8,
  T_INT16,
  T_INT32,
  T_LATIN1_8,
  T_LATIN1_32,
  T_MAP,
  T_NULL,
  T_NULL_OBJECT,
  T_OBJECT,
  T_REF,
  T_REGEXP,
  T_SET,
  T_SPLIT,
  T_TRUE,
  T_UINT8,
  T_UNDEFINED,
  T_UTF8_8,
  T_UTF8_32,
  T_UTF16,
  T_VIEW,
  VIEW_BUFFER,
  VIEW_KINDS,
} from './format.ts';
import { errorKindOf } from './kinds.ts';
import type { SegmentSource } from './split.ts';

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

function mib(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
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
      throw this.fail(
        `${k.name} is not available in this runtime (Node.js ${process.version})${k.missing ? `: ${k.missing}` : ''}`,
      );
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
    if (flags > 127) throw this.fail(`bad error flags 0x${flags.toString(16)}`);
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
      segment = '.error';
      if (flags & F_ERROR) defineHidden(e, 'error', this.value());
      else if (hasOwn(e, 'error')) delete (e as { error?: unknown }).error;
      segment = '.suppressed';
      if (flags & F_SUPPRESSED) defineHidden(e, 'suppressed', this.value());
      else if (hasOwn(e, 'suppressed')) delete (e as { suppressed?: unknown }).suppressed;
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
  limits: DecodeLimits | undefined,
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
