/** The encoder: a value to bytes (the format: format.ts). */
import { types } from 'node:util';
import type { ClassRegistry } from './classes.ts';
import {
  addSegment,
  bigintValueOf,
  booleanValueOf,
  dateGetTime,
  describe,
  getProto,
  hasOwn,
  isEnumerable,
  isNativeError,
  isWellFormed,
  keySegment,
  numberValueOf,
  PathFail,
  stringValueOf,
  swapBytes,
  toCodecError,
  utf8Write,
} from './common.ts';
import {
  CODEC_VERSION,
  DEFAULT_MAX_DEPTH,
  ERR_CLASS,
  ERROR_NAMES,
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
  FIXOBJECT_MAX,
  FIXSTR,
  LITTLE_ENDIAN,
  MAX_BUFFER,
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
  T_HOLE,
  T_INSTANCE,
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
  T_UNDEFINED,
  T_UTF8_8,
  T_UTF8_32,
  T_UTF16,
  T_VIEW,
  VIEW_KINDS,
  writeNumberAt,
} from './format.ts';
import {
  errorKindOf,
  foreignKind,
  K_ARRAY_BUFFER,
  K_BIGINT,
  K_BOOLEAN,
  K_DATE,
  K_ERROR,
  K_MAP,
  K_NULL_PROTO,
  K_NUMBER,
  K_PLAIN,
  K_REGEXP,
  K_SET,
  K_STRING,
  K_SYMBOL,
  K_VIEW,
  PROTO_KINDS,
} from './kinds.ts';
import type { SplitSegment } from './split.ts';

// Built-ins that no registry entry can carry: say what to do instead of "pass it in deps".
const UNCLONEABLE_HINTS = new Map<Function, string>([
  [Promise, 'await it and pass the result'],
  [WeakMap, 'weak collections cannot be copied; use a Map'],
  [WeakSet, 'weak collections cannot be copied; use a Set'],
  [WeakRef, 'pass the referenced value (deref()) instead'],
  [URL, 'pass url.href (a string) instead'],
]);

// ---------------------------------------------------------------------------------------------
// Encoder

const NO_SEGMENTS: SplitSegment[] = Object.freeze([]) as unknown as SplitSegment[];

const INITIAL_SCRATCH = 64 * 1024;
// Give a scratch buffer that grew for one huge message back to the GC.
const KEEP_SCRATCH = 8 * 1024 * 1024;
// Up to this many objects, identity is tracked with a linear scan: a Map costs more for tiny messages.
const LINEAR_SEEN = 24;

export class Encoder {
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
    if (hasOwn(e, 'error') && !isEnumerable.call(e, 'error')) flags |= F_ERROR;
    if (hasOwn(e, 'suppressed') && !isEnumerable.call(e, 'suppressed')) flags |= F_SUPPRESSED;
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
      segment = '.error';
      if (flags & F_ERROR) this.writeValue((e as { error?: unknown }).error);
      segment = '.suppressed';
      if (flags & F_SUPPRESSED) this.writeValue((e as { suppressed?: unknown }).suppressed);
    } catch (err) {
      throw addSegment(err, segment);
    }
    this.depth--;
    this.writeProps(e, -1, false);
  }
}

const POOLED_BELOW = 1024;
// Views at least this large skip the scratch buffer (see Encoder.deferred).
const DEFER_VIEW_BYTES = 64 * 1024;
export const sharedEncoder = new Encoder();

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

/** What {@link encodeInto} takes before its `orNew` flag. */
type EncodeIntoArgs = [
  value: unknown,
  classes: ClassRegistry | undefined,
  rootName: string,
  out: Uint8Array,
  at: number,
];

/**
 * Like {@link encode}, but writes the bytes into `out` from `at` and returns where they end,
 * without allocating. When they do not fit there, it writes nothing and returns -1, or with
 * `orNew`, returns the encoding as a new Buffer (as {@link encode} would: no second pass).
 */
export function encodeInto(...args: EncodeIntoArgs): number;
export function encodeInto(...args: [...EncodeIntoArgs, orNew: true]): number | Buffer;
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
