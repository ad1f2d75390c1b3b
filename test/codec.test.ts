import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import vm from 'node:vm';
import * as format from '../src/protocol/codec/format.ts';
import {
  type ClassRegistry,
  CODEC_VERSION,
  CodecError,
  decode,
  decodeRange,
  encode,
  encodeSplit,
  joinSplit,
  makeClassRegistry,
} from '../src/protocol/codec.ts';

// Wire tags used to hand-craft inputs, from the format (codec/format.ts). The bytes of the
// 'wire format' tests are written out instead: they pin the format itself.
const T = {
  UNDEFINED: format.T_UNDEFINED,
  NULL: format.T_NULL,
  INT32: format.T_INT32,
  BIGINT: format.T_BIGINT,
  LATIN1_8: format.T_LATIN1_8,
  LATIN1_32: format.T_LATIN1_32,
  UTF8_8: format.T_UTF8_8,
  UTF8_32: format.T_UTF8_32,
  UTF16: format.T_UTF16,
  ARRAY: format.T_ARRAY,
  HOLE: format.T_HOLE,
  OBJECT: format.T_OBJECT,
  NULL_OBJECT: format.T_NULL_OBJECT,
  REF: format.T_REF,
  MAP: format.T_MAP,
  SET: format.T_SET,
  REGEXP: format.T_REGEXP,
  ARRAY_BUFFER: format.T_ARRAY_BUFFER,
  VIEW: format.T_VIEW,
  ERROR: format.T_ERROR,
  INSTANCE: format.T_INSTANCE,
};

function rt<V>(v: V, classes?: ClassRegistry): V {
  return decode(encode(v, classes), classes) as V;
}

/** Runs fn and returns the CodecError it throws (fails on anything else). */
function codecError(fn: () => unknown): CodecError {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof CodecError)) {
      assert.fail(`expected a CodecError, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    }
    assert.equal(e.name, 'CodecError');
    return e;
  }
  assert.fail('expected a CodecError, nothing was thrown');
}

function bytes(...parts: (number | number[] | Uint8Array)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === 'number') out.push(p);
    else out.push(...p);
  }
  return Uint8Array.from(out);
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** Latin-1 string value (fixstr for short ones). */
function str(s: string): number[] {
  const codes = [...s].map((c) => c.charCodeAt(0));
  return codes.length < 32 ? [0x80 | codes.length, ...codes] : [T.LATIN1_8, codes.length, ...codes];
}

/** Small seeded PRNG (mulberry32) so fuzz failures reproduce. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Point {
  constructor(
    public x: number,
    public y: number,
  ) {}
  norm(): number {
    return Math.hypot(this.x, this.y);
  }
}

let constructed = 0;
class Counted {
  tag = 'c';
  constructor() {
    constructed++;
  }
}

class JobError extends Error {
  code = 'E_JOB';
  override name = 'JobError';
}

class ProtoNamedError extends TypeError {}
ProtoNamedError.prototype.name = 'ProtoNamedError';

class WithSetter {
  stored: unknown = 'none';
  set x(v: unknown) {
    this.stored = v;
  }
}

const registry = makeClassRegistry([
  ['Point', Point],
  ['Counted', Counted],
  ['JobError', JobError],
  ['WithSetter', WithSetter],
]);

describe('encode output', () => {
  it('starts with the version byte; outputs of 1 KiB or more own their ArrayBuffer', () => {
    for (const v of [1, 'x', [17, 'a'.repeat(64), [42]], new Float64Array(1000), { a: 'b'.repeat(5000) }]) {
      const out = encode(v);
      assert.ok(Buffer.isBuffer(out));
      assert.equal(out[0], CODEC_VERSION);
      if (out.byteLength >= 1024) {
        assert.equal(out.byteOffset, 0);
        assert.equal(out.byteLength, out.buffer.byteLength);
      }
    }
  });

  it('returns independent buffers (the scratch buffer is reused)', () => {
    const a = encode('first string value');
    const copy = Buffer.from(a);
    encode('second string value, which is longer');
    assert.deepEqual(a, copy);
  });

  it('can be transferred when 1 KiB or more', () => {
    const value = [1, 2, 3, 'x'.repeat(2000)];
    const out = encode(value);
    const ab = out.buffer as ArrayBuffer;
    const moved = structuredClone(ab, { transfer: [ab] });
    assert.equal(out.byteLength, 0);
    assert.deepEqual(decode(new Uint8Array(moved)), value);
  });

  it('uses compact encodings for small ints', () => {
    assert.equal(encode(0).length, 2);
    assert.equal(encode(127).length, 2);
    assert.equal(encode(-32).length, 2);
    assert.equal(encode(-128).length, 3);
    assert.equal(encode(255).length, 3);
    assert.equal(encode(-32768).length, 4);
    assert.equal(encode(2 ** 31 - 1).length, 6);
    assert.equal(encode(-0).length, 10);
    assert.equal(encode([17, 'a3f9'.repeat(16), [42]]).length, 71);
  });

  it('survives re-entrant encode calls from getters', () => {
    const inner = { n: 1 };
    const outer = {
      get nested() {
        return encode(inner);
      },
      after: 'tail',
    };
    const r = decode(encode(outer)) as { nested: Buffer; after: string };
    assert.deepEqual(decode(r.nested), inner);
    assert.equal(r.after, 'tail');
  });
});

describe('round trip: primitives', () => {
  it('undefined, null, booleans', () => {
    for (const v of [undefined, null, true, false]) assert.equal(rt(v), v);
  });

  it('numbers, including -0, NaN and the int boundaries', () => {
    const nums = [
      0,
      1,
      127,
      128,
      255,
      256,
      32767,
      32768,
      65535,
      65536,
      2 ** 31 - 1,
      2 ** 31,
      2 ** 32,
      2 ** 53,
      2 ** 53 + 2,
      -1,
      -32,
      -33,
      -128,
      -129,
      -32768,
      -32769,
      -(2 ** 31),
      -(2 ** 31) - 1,
      -(2 ** 53),
      1.5,
      -1.5,
      0.1,
      Math.PI,
      Number.MIN_VALUE,
      -Number.MIN_VALUE,
      Number.MAX_VALUE,
      Number.EPSILON,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NaN,
      -0,
    ];
    for (const n of nums) assert.ok(Object.is(rt(n), n), `${Object.is(n, -0) ? '-0' : n}`);
    assert.ok(Object.is(rt(-0), -0));
    assert.ok(Object.is((rt([-0]) as number[])[0], -0));
  });

  it('bigints of any size and sign', () => {
    const values = [
      0n,
      1n,
      -1n,
      127n,
      255n,
      256n,
      -256n,
      2n ** 47n,
      2n ** 48n,
      2n ** 63n - 1n,
      -(2n ** 63n),
      2n ** 64n,
      -(2n ** 64n) - 1n,
      2n ** 1000n + 12345n,
      -(3n ** 2000n),
      BigInt(`0x${'f'.repeat(1000)}`),
    ];
    for (const v of values) assert.equal(rt(v), v);
    const rand = prng(7);
    for (let i = 0; i < 200; i++) {
      let hex = '';
      const len = 1 + Math.floor(rand() * 80);
      for (let j = 0; j < len; j++) hex += Math.floor(rand() * 16).toString(16);
      const v = BigInt(`0x${hex}`) * (rand() < 0.5 ? -1n : 1n);
      assert.equal(rt(v), v);
    }
  });

  it('strings: ASCII, UTF-8, long, and at the length boundaries', () => {
    const values = [
      '',
      'a',
      'ab\u0000cd',
      'x'.repeat(7),
      'x'.repeat(8),
      'x'.repeat(31),
      'x'.repeat(32),
      'x'.repeat(85),
      'x'.repeat(86),
      'x'.repeat(255),
      'x'.repeat(256),
      'x'.repeat(100_000),
      'héllo wörld',
      'é'.repeat(31),
      'é'.repeat(200),
      '日本語のテキスト',
      '😀 emoji 🎉',
      '😀'.repeat(1000),
      '\u00ff\u0080\u007f',
      '\uFEFFstarts with a BOM',
      '\uFEFF',
    ];
    for (const s of values) assert.equal(rt(s), s);
  });

  it('strings with lone surrogates use the UTF-16 fallback and round-trip exactly', () => {
    const values = [
      '\uD800',
      '\uDC00',
      'a\uD800',
      '\uDFFFz',
      '\uDC00\uD800',
      '😀\uD83D',
      `${'é'.repeat(50)}\uD800${'x'.repeat(100)}`,
      `${'x'.repeat(40)}\uDBFF`,
    ];
    for (const s of values) {
      const out = encode(s);
      assert.equal(out[1], T.UTF16, JSON.stringify(s));
      assert.equal(decode(out), s);
    }
    // Well-formed pairs stay UTF-8.
    assert.equal(encode('😀')[1], T.UTF8_8);
  });
});

describe('round trip: containers', () => {
  it('arrays, including holes, sizes around the compact forms, and nesting', () => {
    for (const n of [0, 1, 15, 16, 17, 1000]) {
      const a = Array.from({ length: n }, (_, i) => i * 3 - 7);
      assert.deepEqual(rt(a), a);
    }
    // biome-ignore lint/suspicious/noSparseArray: holes are the point
    const holes = [1, , 3, , , 'x', ,];
    const r = rt(holes);
    assert.equal(r.length, 7);
    assert.deepEqual(
      r.map((_, i) => i in r),
      holes.map((_, i) => i in holes),
    );
    assert.ok(!(1 in r) && !(6 in r) && 5 in r);
    const empty = rt(new Array(5));
    assert.equal(empty.length, 5);
    assert.ok(!(0 in empty) && !(4 in empty));
    const withUndefined = rt([undefined, undefined]);
    assert.ok(0 in withUndefined && 1 in withUndefined);
    assert.deepEqual(rt([[[[]]], [1, [2, [3]]]]), [[[[]]], [1, [2, [3]]]]);
  });

  it('arrays ignore non-index properties', () => {
    const a: number[] & { extra?: string } = [1, 2];
    a.extra = 'dropped';
    const r = rt(a);
    assert.deepEqual(r, [1, 2]);
    assert.equal(r.extra, undefined);
  });

  it('plain objects: key order, numeric keys, odd keys, sizes around the compact form', () => {
    const o = { b: 1, a: 2, 10: 'ten', 2: 'two', 'with space': [], '': 0, é: 'é', [Symbol('s')]: 1 };
    const r = rt(o);
    assert.deepEqual(r, { b: 1, a: 2, 10: 'ten', 2: 'two', 'with space': [], '': 0, é: 'é' });
    assert.deepEqual(Object.keys(r), Object.keys(o));
    assert.equal(Object.getOwnPropertySymbols(r).length, 0);
    for (const n of [0, 7, 8, 100]) {
      const big = Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
      assert.deepEqual(rt(big), big);
    }
    const hidden = Object.defineProperty({ shown: 1 }, 'hidden', { value: 2, enumerable: false });
    assert.deepEqual(Object.keys(rt(hidden)), ['shown']);
  });

  it('getters are read as values', () => {
    const r = rt({
      get g() {
        return 42;
      },
    });
    assert.deepEqual(Object.getOwnPropertyDescriptor(r, 'g'), {
      value: 42,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  });

  it('null-prototype objects stay null-prototype', () => {
    const o = Object.assign(Object.create(null), { a: 1, b: { c: 2 } });
    const r = rt(o);
    assert.equal(Object.getPrototypeOf(r), null);
    assert.equal(Object.getPrototypeOf(r.b), Object.prototype);
    assert.deepEqual(r, o);
  });

  it('__proto__ and constructor keys become own data properties, never a prototype', () => {
    const o = JSON.parse('{"__proto__": {"polluted": true}, "constructor": {"prototype": {"x": 1}}}');
    const r = rt(o);
    assert.equal(Object.getPrototypeOf(r), Object.prototype);
    assert.ok(Object.hasOwn(r, '__proto__'));
    assert.deepEqual(Object.getOwnPropertyDescriptor(r, '__proto__')?.value, { polluted: true });
    assert.ok(Object.hasOwn(r, 'constructor'));
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal((r as Record<string, unknown>).polluted, undefined);
    const nullProto = rt(Object.assign(Object.create(null), JSON.parse('{"__proto__": 5}')));
    assert.equal(Object.getPrototypeOf(nullProto), null);
    assert.equal(Object.getOwnPropertyDescriptor(nullProto, '__proto__')?.value, 5);
  });

  it('hand-crafted __proto__ keys cannot pollute either', () => {
    const input = bytes(1, 0xb1, str('__proto__'), 0xb1, str('polluted'), 0xbb);
    const r = decode(input) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(r), Object.prototype);
    assert.ok(Object.hasOwn(r, '__proto__'));
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.hasOwn(Object.prototype, 'polluted'), false);
  });

  it('Map and Set, with object keys and nesting', () => {
    const key = { k: 1 };
    const m = new Map<unknown, unknown>([
      [1, 'one'],
      ['two', 2],
      [key, new Set([1, 'a', key])],
      [Number.NaN, null],
      [undefined, [1, 2]],
    ]);
    const r = rt(m);
    assert.deepEqual(r, m);
    assert.deepEqual([...r.keys()].slice(0, 2), [1, 'two']);
    const rKey = [...r.keys()][2];
    assert.ok((r.get(rKey) as Set<unknown>).has(rKey), 'identity of the key is kept inside the set');
    assert.deepEqual(rt(new Set()), new Set());
    assert.deepEqual(rt(new Map()), new Map());
  });

  it('Date, including an invalid Date', () => {
    const d = new Date('2024-02-29T12:34:56.789Z');
    const r = rt(d);
    assert.ok(r instanceof Date);
    assert.equal(r.getTime(), d.getTime());
    const invalid = rt(new Date(Number.NaN));
    assert.ok(invalid instanceof Date);
    assert.ok(Number.isNaN(invalid.getTime()));
  });

  it('RegExp source and flags', () => {
    for (const re of [/a+b/, /x/gi, /^\d{3}-\w+$/msuy, /(?<year>\d{4})/d, /é\u{1F600}/u, /a\/b/g]) {
      const r = rt(re);
      assert.ok(r instanceof RegExp);
      assert.equal(r.source, re.source);
      assert.equal(r.flags, re.flags);
    }
  });

  it('boxed primitives', () => {
    const values = [
      new Number(3.5),
      new Number(-0),
      new String('boxed'),
      new Boolean(false),
      new Boolean(true),
    ];
    for (const v of values) {
      const r = rt(v);
      assert.equal(typeof r, 'object');
      assert.equal(Object.getPrototypeOf(r), Object.getPrototypeOf(v));
      assert.ok(Object.is(r.valueOf(), v.valueOf()));
    }
    const big = rt(Object(2n ** 70n) as object);
    assert.equal(typeof big, 'object');
    assert.equal((big as { valueOf(): bigint }).valueOf(), 2n ** 70n);
  });
});

describe('round trip: binary data', () => {
  it('ArrayBuffer', () => {
    const ab = new Uint8Array([1, 2, 3, 250]).buffer;
    const r = rt(ab);
    assert.ok(r instanceof ArrayBuffer);
    assert.deepEqual(new Uint8Array(r), new Uint8Array(ab));
    assert.equal(rt(new ArrayBuffer(0)).byteLength, 0);
  });

  it('every typed array kind and DataView', () => {
    const arrays: ArrayBufferView[] = [
      new Int8Array([-128, 0, 127]),
      new Uint8Array([0, 255]),
      new Uint8ClampedArray([0, 128, 255]),
      new Int16Array([-32768, 1, 32767]),
      new Uint16Array([0, 65535]),
      new Int32Array([-(2 ** 31), 2 ** 31 - 1]),
      new Uint32Array([0, 2 ** 32 - 1]),
      new Float32Array([1.5, Number.NaN, Number.NEGATIVE_INFINITY, -0]),
      new Float64Array([Math.PI, -0, Number.MAX_VALUE]),
      new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n]),
      new BigUint64Array([0n, 2n ** 64n - 1n]),
      new DataView(new Uint8Array([9, 8, 7]).buffer),
      new Float64Array(0),
    ];
    const F16 = (globalThis as { Float16Array?: new (a: number[]) => ArrayBufferView }).Float16Array;
    if (F16) arrays.push(new F16([1.5, -2, 65504]));
    for (const a of arrays) {
      const r = rt(a);
      assert.equal(Object.getPrototypeOf(r), Object.getPrototypeOf(a), a.constructor.name);
      assert.deepEqual(r, a);
      assert.equal(r.byteOffset, 0);
      assert.equal(r.buffer.byteLength, r.byteLength);
    }
    const f = rt(new Float32Array([-0]));
    assert.ok(Object.is(f[0], -0));
  });

  it('Buffer decodes as a Buffer, Uint8Array as a plain Uint8Array', () => {
    const buf = Buffer.from('hello buffer');
    const rb = rt(buf);
    assert.ok(Buffer.isBuffer(rb));
    assert.equal(rb.toString(), 'hello buffer');
    // Not carved out of Node's shared pool.
    assert.equal(rb.byteOffset, 0);
    assert.equal(rb.buffer.byteLength, rb.length);
    const u8 = new Uint8Array([1, 2, 3]);
    const ru = rt(u8);
    assert.ok(!Buffer.isBuffer(ru));
    assert.equal(Object.getPrototypeOf(ru), Uint8Array.prototype);
    assert.deepEqual(ru, u8);
  });

  it('views on a slice of a larger buffer carry only their bytes', () => {
    const big = new ArrayBuffer(1024);
    new Uint8Array(big).forEach((_, i, a) => {
      a[i] = i & 0xff;
    });
    const view = new Uint16Array(big, 100, 10);
    const out = encode(view);
    assert.ok(out.length < 40);
    const r = decode(out) as Uint16Array;
    assert.deepEqual([...r], [...view]);
    assert.equal(r.byteOffset, 0);
    assert.equal(r.buffer.byteLength, 20);
    const dv = new DataView(big, 3, 5);
    const rdv = rt(dv);
    assert.equal(rdv.byteLength, 5);
    assert.equal(rdv.getUint8(0), 3);
    const pooled = Buffer.from('small'); // a slice of the 8 KiB pool
    assert.ok(pooled.buffer.byteLength > pooled.length);
    assert.ok(encode(pooled).length < 20);
  });

  it('decoded binary data is a copy, not a view of the input', () => {
    const input = encode([
      new Float64Array([1, 2]),
      Buffer.from('ab'),
      new Uint8Array([7]),
      new ArrayBuffer(3),
    ]);
    const [f, b, u, ab] = decode(input) as [Float64Array, Buffer, Uint8Array, ArrayBuffer];
    for (const x of [f.buffer, b.buffer, u.buffer, ab]) assert.notEqual(x, input.buffer);
    input.fill(0, 1);
    assert.deepEqual([...f], [1, 2]);
    assert.equal(b.toString(), 'ab');
    assert.equal(u[0], 7);
  });

  it('detached buffers travel as empty', () => {
    const ab = new ArrayBuffer(8);
    const view = new Float64Array(ab);
    structuredClone(ab, { transfer: [ab] });
    assert.equal(rt(ab).byteLength, 0);
    assert.equal(rt(view).length, 0);
  });

  it('large typed arrays', () => {
    const f = new Float64Array(1 << 17).map((_, i) => i / 3);
    assert.deepEqual(rt(f), f);
  });
});

describe('round trip: errors', () => {
  it('every built-in error type keeps name, message and stack', () => {
    const errors = [
      new Error('plain'),
      new EvalError('eval'),
      new RangeError('range'),
      new ReferenceError('ref'),
      new SyntaxError('syntax'),
      new TypeError('type'),
      new URIError('uri'),
    ];
    for (const e of errors) {
      const r = rt(e);
      assert.equal(Object.getPrototypeOf(r), Object.getPrototypeOf(e));
      assert.ok(r instanceof Error);
      assert.equal(r.name, e.name);
      assert.equal(r.message, e.message);
      assert.equal(r.stack, e.stack);
      assert.ok(!Object.prototype.propertyIsEnumerable.call(r, 'message'));
      assert.deepEqual(r, e);
    }
  });

  it('AggregateError keeps .errors', () => {
    const e = new AggregateError([new Error('a'), new TypeError('b'), 'not an error'], 'many');
    const r = rt(e);
    assert.ok(r instanceof AggregateError);
    assert.equal(r.message, 'many');
    assert.equal(r.errors.length, 3);
    assert.ok(r.errors[1] instanceof TypeError);
    assert.equal(r.errors[1].message, 'b');
    assert.equal(r.errors[2], 'not an error');
    assert.ok(!Object.prototype.propertyIsEnumerable.call(r, 'errors'));
  });

  it('SuppressedError keeps .error and .suppressed (a stand-in of that name before Node.js 24)', () => {
    const Ctor = (globalThis as { SuppressedError?: new (e: unknown, s: unknown, m?: string) => Error })
      .SuppressedError;
    const inner = new RangeError('the work failed');
    const e: Error & { error?: unknown; suppressed?: unknown } = Ctor
      ? new Ctor(new TypeError('dispose failed'), inner, 'both failed')
      : new Error('both failed');
    if (!Ctor) {
      // What a built-in one is: name from its prototype, both fields own and not enumerable.
      Object.defineProperty(e, 'name', { value: 'SuppressedError' });
      Object.defineProperty(e, 'error', {
        value: new TypeError('dispose failed'),
        writable: true,
        configurable: true,
      });
      Object.defineProperty(e, 'suppressed', { value: inner, writable: true, configurable: true });
    }
    const r = rt(e) as typeof e;
    assert.equal(r.name, 'SuppressedError');
    assert.equal(r.message, 'both failed');
    if (Ctor) assert.ok(r instanceof Ctor);
    assert.ok(r.error instanceof TypeError);
    assert.equal((r.error as Error).message, 'dispose failed');
    assert.ok(r.suppressed instanceof RangeError);
    assert.equal((r.suppressed as Error).message, 'the work failed');
    for (const key of ['error', 'suppressed']) {
      assert.ok(Object.hasOwn(r, key), key);
      assert.ok(!Object.prototype.propertyIsEnumerable.call(r, key), key);
    }
    assert.deepEqual(Object.keys(r), []);
    // The decoded one travels again as it came (a stand-in too).
    const again = rt(r) as typeof e;
    assert.equal(again.name, 'SuppressedError');
    assert.equal(Object.getPrototypeOf(again), Object.getPrototypeOf(r));
    assert.equal((again.suppressed as Error).message, 'the work failed');
  });

  it('cause, code and other own props; an error without a message', () => {
    const e = new Error('outer', { cause: new RangeError('inner') }) as Error & Record<string, unknown>;
    e.code = 'E_OUTER';
    e.details = { retry: true, at: new Date(0) };
    const r = rt(e) as typeof e;
    assert.equal(r.code, 'E_OUTER');
    assert.deepEqual(r.details, e.details);
    assert.ok(r.cause instanceof RangeError);
    assert.equal((r.cause as Error).message, 'inner');
    assert.ok(!Object.prototype.propertyIsEnumerable.call(r, 'cause'));
    assert.deepEqual(Object.keys(r), ['code', 'details']);
    const noMessage = rt(new Error());
    assert.ok(!Object.hasOwn(noMessage, 'message'));
    assert.equal(noMessage.message, '');
    const undefinedCause = rt(new Error('x', { cause: undefined }));
    assert.ok(Object.hasOwn(undefinedCause, 'cause'));
  });

  it('own name, enumerable or not', () => {
    const e = new Error('m');
    e.name = 'Custom';
    const r = rt(e);
    assert.equal(r.name, 'Custom');
    assert.ok(Object.prototype.propertyIsEnumerable.call(r, 'name'));
    const hidden = new Error('m');
    Object.defineProperty(hidden, 'name', {
      value: 'Hidden',
      enumerable: false,
      writable: true,
      configurable: true,
    });
    const rh = rt(hidden);
    assert.equal(rh.name, 'Hidden');
    assert.ok(!Object.prototype.propertyIsEnumerable.call(rh, 'name'));
  });

  it('an error without a stack stays without one', () => {
    const e = Object.create(Error.prototype) as Error;
    const r = rt(e);
    assert.ok(r instanceof Error);
    assert.equal(r.stack, undefined);
  });

  it('a registered Error subclass decodes as that class', () => {
    const e = new JobError('job failed');
    const r = rt(e, registry);
    assert.ok(r instanceof JobError);
    assert.ok(r instanceof Error);
    assert.equal(r.name, 'JobError');
    assert.equal(r.message, 'job failed');
    assert.equal(r.code, 'E_JOB');
    assert.equal(r.stack, e.stack);
  });

  it('an unregistered Error subclass decodes as its built-in base, keeping name and stack', () => {
    const e = new JobError('no registry');
    const r = rt(e);
    assert.equal(Object.getPrototypeOf(r), Error.prototype);
    assert.equal(r.name, 'JobError');
    assert.equal(r.message, 'no registry');
    assert.equal(r.stack, e.stack);
    assert.equal((r as unknown as { code: string }).code, 'E_JOB');
    // name on the prototype, base TypeError
    const p = new ProtoNamedError('proto');
    const rp = rt(p);
    assert.equal(Object.getPrototypeOf(rp), TypeError.prototype);
    assert.equal(rp.name, 'ProtoNamedError');
    assert.equal(rp.stack, p.stack);
    // A class other than Error with a name getter, e.g. DOMException
    const d = new DOMException('aborted', 'AbortError');
    const rd = rt(d);
    assert.ok(rd instanceof Error);
    assert.equal(rd.name, 'AbortError');
    assert.equal(rd.message, 'aborted');
  });

  it('cycles through errors', () => {
    const e = new Error('self') as Error & { self?: unknown };
    e.self = e;
    const agg = new AggregateError([], 'agg');
    agg.errors.push(agg);
    const c = new Error('c', { cause: e });
    const r = rt([e, agg, c]);
    assert.equal((r[0] as typeof e).self, r[0]);
    assert.equal((r[1] as AggregateError).errors[0], r[1]);
    assert.equal((r[2] as Error).cause, r[0]);
  });
});

describe('round trip: identity', () => {
  it('shared references decode to one object', () => {
    const o = { a: 1 };
    const r = rt([o, o]);
    assert.equal(r[0], r[1]);
    const arr = [1];
    const d = new Date(5);
    const f = new Float64Array(2);
    const rr = rt({ x: arr, y: arr, d1: d, d2: d, f1: f, f2: f });
    assert.equal(rr.x, rr.y);
    assert.equal(rr.d1, rr.d2);
    assert.equal(rr.f1, rr.f2);
  });

  it('self cycles through objects, arrays, Maps, Sets and instances', () => {
    const a: Record<string, unknown> = { name: 'a' };
    a.self = a;
    const ra = rt(a);
    assert.equal(ra.self, ra);
    const arr: unknown[] = [1];
    arr.push(arr);
    const rarr = rt(arr);
    assert.equal(rarr[1], rarr);
    const m = new Map<unknown, unknown>();
    m.set(m, m);
    m.set('a', [m]);
    const rm = rt(m);
    assert.equal(rm.get(rm), rm);
    assert.equal((rm.get('a') as unknown[])[0], rm);
    const s = new Set<unknown>();
    s.add(s);
    const rs = rt(s);
    assert.ok(rs.has(rs));
    const p = new Point(1, 2) as Point & { next?: unknown };
    p.next = p;
    const rp = rt(p, registry);
    assert.equal(rp.next, rp);
  });

  it('identity survives past the linear-scan window (many objects)', () => {
    const objs = Array.from({ length: 200 }, (_, i) => ({ i }));
    const list = [...objs, ...objs.slice().reverse(), objs[0], objs[199]];
    const r = rt(list);
    for (let i = 0; i < 200; i++) {
      assert.equal(r[i], r[399 - i]);
      assert.equal(r[i]!.i, i);
    }
    assert.equal(r[400], r[0]);
    assert.equal(r[401], r[199]);
    assert.equal(new Set(r).size, 200);
  });

  it('a deep graph of shared nodes', () => {
    const leaf = { leaf: true };
    let node: Record<string, unknown> = { leaf };
    for (let i = 0; i < 100; i++) node = { prev: node, leaf, i };
    const r = rt(node);
    let cur = r;
    const leaves = new Set();
    while (cur) {
      leaves.add(cur.leaf);
      cur = cur.prev as Record<string, unknown>;
    }
    assert.equal(leaves.size, 1);
  });
});

describe('values from another realm (vm context)', () => {
  it('travel as the matching built-ins of this realm', () => {
    const v = vm.runInNewContext(`({
      o: { a: [1, 2] },
      m: new Map([[1, new Set(['s'])]]),
      d: new Date(5),
      r: /x/g,
      f: new Float64Array([1.5]),
      ab: new ArrayBuffer(2),
      n: new Number(3),
      e: new TypeError('foreign'),
      np: Object.create(null),
    })`);
    const r = rt(v) as Record<string, unknown>;
    assert.deepEqual(r.o, { a: [1, 2] });
    assert.equal(Object.getPrototypeOf(r), Object.prototype);
    assert.deepEqual(r.m, new Map([[1, new Set(['s'])]]));
    assert.equal((r.d as Date).getTime(), 5);
    assert.equal(String(r.r), '/x/g');
    assert.deepEqual(r.f, new Float64Array([1.5]));
    assert.ok(r.ab instanceof ArrayBuffer);
    assert.deepEqual(r.n, new Number(3));
    assert.ok(r.e instanceof TypeError);
    assert.equal((r.e as Error).message, 'foreign');
    assert.equal(Object.getPrototypeOf(r.np), null);
  });

  it('but a subclass of a built-in of this realm is refused', () => {
    class Registry extends Map {}
    assert.match(codecError(() => encode(new Registry())).message, /class Registry cannot travel/);
  });
});

describe('class instances', () => {
  it('registered classes travel both ways without running the constructor', () => {
    const p = new Point(3, 4);
    const c = new Counted();
    const before = constructed;
    const r = rt({ p, c, again: p }, registry);
    assert.equal(constructed, before);
    assert.ok(r.p instanceof Point);
    assert.equal(r.p.norm(), 5);
    assert.deepEqual(r.p, p);
    assert.equal(r.again, r.p);
    assert.ok(r.c instanceof Counted);
    assert.equal(r.c.tag, 'c');
  });

  it('props are defined, so prototype setters do not run', () => {
    const w = new WithSetter();
    Object.defineProperty(w, 'x', { value: 'own', enumerable: true, writable: true, configurable: true });
    const r = rt(w, registry);
    assert.ok(r instanceof WithSetter);
    assert.equal(Object.getOwnPropertyDescriptor(r, 'x')?.value, 'own');
    assert.equal(r.stored, 'none');
  });

  it('an unregistered class cannot travel; the error names it and the path', () => {
    const e = codecError(() => encode([{ point: new Point(1, 2) }], undefined, 'args'));
    assert.equal(e.path, 'args[0].point');
    assert.equal(
      e.message,
      'args[0].point: an instance of class Point cannot travel: pass the class in deps so the worker ' +
        'knows it (submit(fn, args, { deps: [Point] }))',
    );
    const anon = codecError(() => encode(new (class {})()));
    assert.match(anon.message, /^value: an instance of class anonymous cannot travel/);
    const sub = codecError(() => encode(new (class Sub extends Point {})(1, 2), registry));
    assert.match(sub.message, /class Sub cannot travel/);
  });

  it('decoding an instance of a class unknown here names the class', () => {
    const out = encode({ p: new Point(1, 2) }, registry);
    const e = codecError(() => decode(out));
    assert.match(e.message, /class Point/);
    assert.equal(e.path, 'value.p');
    const other = makeClassRegistry([['Counted', Counted]]);
    assert.match(
      codecError(() => decode(out, other)).message,
      /class Point arrived but Point is not a known class here: pass it in deps/,
    );
    const err = encode(new JobError('x'), registry);
    assert.match(codecError(() => decode(err)).message, /class JobError/);
  });

  it('makeClassRegistry rejects conflicting names and non-classes', () => {
    assert.throws(
      () =>
        makeClassRegistry([
          ['A', Point],
          ['A', Counted],
        ]),
      CodecError,
    );
    assert.throws(() => makeClassRegistry([['arrow', (() => 1) as Function]]), CodecError);
    const r = makeClassRegistry([
      ['Point', Point],
      ['Point', Point],
    ]);
    assert.equal(r.byName.size, 1);
  });
});

describe('values that cannot travel', () => {
  it('functions', () => {
    function named() {}
    const e = codecError(() => encode({ a: [1, named] }, undefined, 'args'));
    assert.equal(e.path, 'args.a[1]');
    assert.match(e.message, /^args\.a\[1\]: functions cannot travel as values: pass it in deps instead/);
    assert.match(e.message, /function named/);
    assert.equal(codecError(() => encode(() => 1)).path, 'value');
    assert.equal(codecError(() => encode(class K {})).path, 'value');
  });

  it('symbols, boxed symbols', () => {
    assert.match(codecError(() => encode([Symbol('s')])).message, /^value\[0\]: symbols cannot travel/);
    assert.match(codecError(() => encode(Object(Symbol('s')))).message, /symbols cannot travel/);
  });

  it('SharedArrayBuffer and views over one', () => {
    const sab = new SharedArrayBuffer(8);
    assert.match(codecError(() => encode({ sab })).message, /^value\.sab: a SharedArrayBuffer cannot travel/);
    assert.match(codecError(() => encode(new Int32Array(sab))).message, /SharedArrayBuffer/);
  });

  it('built-ins without a wire form', () => {
    const cases: [unknown, RegExp][] = [
      [Promise.resolve(1), /class Promise cannot travel: await it/],
      [new WeakMap(), /class WeakMap cannot travel/],
      [new WeakSet(), /class WeakSet cannot travel/],
      [new WeakRef({}), /class WeakRef cannot travel/],
      [new URL('http://example.com/'), /class URL cannot travel: pass url\.href/],
    ];
    for (const [v, re] of cases) assert.match(codecError(() => encode([v], undefined, 'args')).message, re);
  });

  it('paths through Maps, Sets, odd keys, errors and instances', () => {
    const f = () => 0;
    const path = (v: unknown, classes?: ClassRegistry) => codecError(() => encode(v, classes, 'args')).path;
    assert.equal(path([0, new Map([['k', f]])]), 'args[1]<map value>');
    assert.equal(path(new Map([[f, 1]])), 'args<map key>');
    assert.equal(path({ s: new Set([1, f]) }), 'args.s<set item>');
    assert.equal(path({ 'a b': { 'x-y': f } }), 'args["a b"]["x-y"]');
    assert.equal(path(new Error('e', { cause: f })), 'args.cause');
    assert.equal(path(Object.assign(new Error('e'), { extra: [f] })), 'args.extra[0]');
    assert.equal(path(Object.assign(new Point(1, 2), { fn: f }), registry), 'args.fn');
    assert.equal(path(Object.assign(Object.create(null), { n: f })), 'args.n');
  });

  it('nesting deeper than the default depth limit', () => {
    let deep: unknown[] = [];
    for (let i = 0; i < 600; i++) deep = [deep];
    assert.match(codecError(() => encode(deep)).message, /nesting deeper than 512/);
    let ok: unknown[] = [];
    for (let i = 0; i < 511; i++) ok = [ok];
    assert.deepEqual(rt(ok), ok);
  });

  it('errors thrown by getters propagate unchanged', () => {
    const boom = new Error('getter failed');
    const o = {
      get bad() {
        throw boom;
      },
    };
    assert.throws(
      () => encode(o),
      (e) => e === boom,
    );
    // and the shared encoder is still usable
    assert.equal(decode(encode('ok')), 'ok');
  });
});

describe('decoding bad input', () => {
  const samples: unknown[] = [
    [17, 'a3f9c1'.repeat(10), [42]],
    {
      a: 1,
      s: 'héllo',
      b: -(2n ** 90n),
      m: new Map([[1, new Set(['x'])]]),
      d: new Date(1),
      r: /x/g,
      f: new Float64Array([1.5]),
      buf: Buffer.from('zz'),
      e: new TypeError('t', { cause: 1 }),
      box: [new Number(1), new String('s'), Object(3n)],
      lone: 'a\uD800',
      // biome-ignore lint/suspicious/noSparseArray: holes are the point
      holes: [1, , 2],
      np: Object.create(null),
      ab: new ArrayBuffer(3),
      dv: new DataView(new ArrayBuffer(2)),
    },
    (() => {
      const o: Record<string, unknown> = { x: 'y'.repeat(300) };
      o.self = o;
      return [o, o, new AggregateError([o], 'agg')];
    })(),
    { p: new Point(1, 2), j: new JobError('j') },
  ];

  it('truncation at every byte offset throws CodecError', () => {
    for (const v of samples) {
      const full = encode(v, registry);
      for (let n = 0; n < full.length; n++) {
        const e = codecError(() => decode(full.subarray(0, n), registry));
        assert.match(e.message, n === 0 ? /empty input/ : /truncated|length|fits/);
      }
      decode(full, registry);
    }
  });

  it('trailing bytes are rejected', () => {
    for (const v of samples) {
      const full = encode(v, registry);
      const longer = Buffer.concat([full, Buffer.from([0])]);
      assert.match(codecError(() => decode(longer, registry)).message, /1 trailing bytes/);
    }
  });

  it('the wrong version byte is rejected with both versions named', () => {
    for (const version of [0, 2, 255]) {
      const out = Buffer.from(encode([1, 2]));
      out[0] = version;
      const e = codecError(() => decode(out));
      assert.equal(e.message, `value: encoded by codec version ${version}; this build reads version 1`);
    }
  });

  it('random garbage throws CodecError or returns a value, never anything else', () => {
    const rand = prng(12345);
    let decoded = 0;
    for (let i = 0; i < 5000; i++) {
      const len = 1 + Math.floor(rand() * 64);
      const input = new Uint8Array(len);
      for (let j = 0; j < len; j++) input[j] = Math.floor(rand() * 256);
      input[0] = 1; // mostly get past the version check
      if (rand() < 0.5) input[1] = 0xa0 + Math.floor(rand() * 0x40); // start with a container
      try {
        decode(input, registry);
        decoded++;
      } catch (e) {
        if (!(e instanceof CodecError)) assert.fail(`case ${i}: ${(e as Error).stack}`);
      }
    }
    assert.ok(decoded > 0, 'some garbage should happen to be valid');
  });

  it('mutated valid encodings throw CodecError or return a value', () => {
    const rand = prng(99);
    const encodings = samples.map((v) => encode(v, registry));
    for (let i = 0; i < 5000; i++) {
      const input = Buffer.from(encodings[i % encodings.length]!);
      const flips = 1 + Math.floor(rand() * 4);
      for (let f = 0; f < flips; f++) {
        input[1 + Math.floor(rand() * (input.length - 1))] = Math.floor(rand() * 256);
      }
      try {
        decode(input, registry);
      } catch (e) {
        if (!(e instanceof CodecError)) assert.fail(`case ${i}: ${(e as Error).stack}`);
      }
    }
  });

  it('a depth bomb throws quickly', () => {
    const n = 1_000_000;
    const bomb = new Uint8Array(n + 2);
    bomb[0] = 1;
    bomb.fill(0xa1, 1, n + 1); // [[[[...]]]]
    const e = codecError(() => decode(bomb));
    assert.match(e.message, /nesting deeper than maxDepth \(512\)/);
    // It stopped at the limit, not after reading the million levels (speed: npm run bench).
    assert.ok(Number(/at byte (\d+)/.exec(e.message)?.[1]) <= 514, e.message);
    assert.match(
      codecError(() => decode(encode([[[1]]]), undefined, { maxDepth: 2 })).message,
      /maxDepth \(2\)/,
    );
    assert.deepEqual(decode(encode([[[1]]]), undefined, { maxDepth: 3 }), [[[1]]]);
    // Unbounded depth still ends in a CodecError (stack overflow), not a RangeError.
    const objBomb = new Uint8Array(n + 2);
    objBomb[0] = 1;
    for (let i = 1; i <= n; i++) objBomb[i] = 0xa1;
    codecError(() => decode(objBomb, undefined, { maxDepth: Number.POSITIVE_INFINITY }));
  });

  it('maxItems and maxBytes', () => {
    const many = encode(Array.from({ length: 1000 }, (_, i) => i));
    assert.match(
      codecError(() => decode(many, undefined, { maxItems: 100 })).message,
      /more than 100 values/,
    );
    assert.equal((decode(many, undefined, { maxItems: 1001 }) as number[]).length, 1000);
    const holes = encode(new Array(1000));
    assert.match(codecError(() => decode(holes, undefined, { maxItems: 10 })).message, /more than 10 values/);
    assert.match(
      codecError(() => decode(many, undefined, { maxBytes: 100 })).message,
      /over the maxBytes limit/,
    );
  });

  it('length fields larger than the input throw quickly, without allocating', () => {
    const ff = [0xff, 0xff, 0xff, 0xff];
    const fourGiB = varint(2 ** 32);
    const cases = [
      bytes(1, T.LATIN1_32, ff),
      bytes(1, T.UTF8_32, ff),
      bytes(1, T.UTF16, fourGiB),
      bytes(1, T.ARRAY, fourGiB),
      bytes(1, T.OBJECT, fourGiB),
      bytes(1, T.NULL_OBJECT, fourGiB),
      bytes(1, T.MAP, fourGiB),
      bytes(1, T.SET, fourGiB),
      bytes(1, T.ARRAY_BUFFER, fourGiB),
      bytes(1, T.VIEW, 8, fourGiB),
      bytes(1, T.BIGINT, 0, fourGiB),
      bytes(1, T.INSTANCE, str('Point'), fourGiB),
      bytes(1, T.ARRAY, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
      bytes(1, T.REF, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f),
    ];
    const before = process.memoryUsage().arrayBuffers;
    for (const input of cases) {
      const e = codecError(() => decode(input, registry));
      // Refused at the length field itself: nothing read (or allocated) past the input.
      assert.ok(Number(/at byte (\d+)/.exec(e.message)?.[1]) <= input.length, e.message);
    }
    assert.ok(process.memoryUsage().arrayBuffers - before < 64 << 20, 'no large allocation');
  });

  it('back-references must point at objects already decoded', () => {
    const e = codecError(() => decode(bytes(1, 0xa2, T.REF, 1, 0)));
    assert.match(e.message, /back-reference to object #1, not defined yet/);
    assert.equal(e.path, 'value[0]');
    assert.match(codecError(() => decode(bytes(1, T.REF, 0))).message, /back-reference to object #0/);
    // #0 is the array itself: a legal cycle
    const r = decode(bytes(1, 0xa1, T.REF, 0)) as unknown[];
    assert.equal(r[0], r);
  });

  it('invalid UTF-8 is rejected', () => {
    const bad = [
      [0xc0, 0xaf], // overlong
      [0x80], // lone continuation
      [0xed, 0xa0, 0x80], // encoded surrogate
      [0xf8, 0x88, 0x80, 0x80, 0x80],
      [0xe2, 0x82], // truncated sequence
    ];
    for (const b of bad) {
      assert.match(codecError(() => decode(bytes(1, T.UTF8_8, b.length, b))).message, /invalid UTF-8/);
      assert.match(
        codecError(() => decode(bytes(1, T.UTF8_32, b.length, 0, 0, 0, b))).message,
        /invalid UTF-8/,
      );
    }
  });

  it('structural nonsense is rejected', () => {
    const cases: [Uint8Array, RegExp][] = [
      [bytes(1, T.HOLE), /hole outside an array/],
      [bytes(1, 0xda), /unknown tag 0xda/],
      [bytes(1, 0xdf), /unknown tag 0xdf/],
      [bytes(1, T.BIGINT, 2, 0), /bigint sign/],
      [bytes(1, 0xb1, 1, 1), /expected a string for an object key/],
      [bytes(1, T.REGEXP, str('('), str('')), /invalid RegExp/],
      [bytes(1, T.REGEXP, str('a'), str('gg')), /invalid RegExp/],
      [bytes(1, T.VIEW, 8, 3, 1, 2, 3), /not a multiple of 8/],
      [bytes(1, T.VIEW, 99, 0), /unknown typed array kind 99/],
      [bytes(1, T.ERROR, 42, 0, 0), /unknown error kind 42/],
      [bytes(1, T.ERROR, 0, 0x80, 0), /bad error flags/],
      [bytes(1, T.INSTANCE, 1, 0), /expected a string for a class name/],
      [bytes(1, 0xd6, 1), /expected a bigint/],
      [bytes(1, 0xd3, 1), /expected a string/],
    ];
    for (const [input, re] of cases) assert.match(codecError(() => decode(input, registry)).message, re);
  });

  it('paths in decode errors', () => {
    const e = codecError(() => decode(bytes(1, 0xb1, str('outer'), 0xa2, 1, 0xda)));
    assert.equal(e.path, 'value.outer[1]');
    assert.match(e.message, /^value\.outer\[1\]: unknown tag 0xda \(at byte \d+\)/);
  });

  it('decode accepts any Uint8Array, including an offset view', () => {
    const out = encode({ a: [1, 'two'] });
    const big = new Uint8Array(out.length + 10);
    big.set(out, 5);
    assert.deepEqual(decode(big.subarray(5, 5 + out.length)), { a: [1, 'two'] });
    assert.deepEqual(decode(new Uint8Array(out)), { a: [1, 'two'] });
    assert.throws(() => decode('nope' as unknown as Uint8Array), CodecError);
  });
});

describe('structuredClone parity', () => {
  const shared = { s: 1 };
  const cyclic: Record<string, unknown> = { name: 'cyc' };
  cyclic.me = cyclic;
  const values: unknown[] = [
    undefined,
    null,
    true,
    0,
    -0,
    Number.NaN,
    Number.NEGATIVE_INFINITY,
    2 ** 53,
    -1.5,
    10n ** 30n,
    -(10n ** 30n),
    '',
    'é😀',
    'lone \uD800 surrogate',
    // biome-ignore lint/suspicious/noSparseArray: holes are the point
    [1, , 3],
    // biome-ignore lint/suspicious/noSparseArray: holes are the point
    [, ,],
    { a: 1, b: { c: [] }, 3: 'three' },
    JSON.parse('{"__proto__": {"p": 1}}'),
    new Map<unknown, unknown>([
      [{}, new Set([1])],
      ['k', new Map()],
    ]),
    new Set([Number.NaN, 0, 'x']),
    new Date(0),
    /a.b/gimsuy,
    new ArrayBuffer(8),
    new Int16Array([1, -2]),
    new Uint8Array([1, 2, 3]),
    new Float32Array([0.5]),
    new BigInt64Array([1n, -1n]),
    new DataView(new ArrayBuffer(4)),
    new Number(-0),
    new String('x'),
    new Boolean(true),
    Object(5n),
    new Error('e'),
    new RangeError('r', { cause: { why: 1 } }),
    [shared, shared, { shared }],
    cyclic,
    new Map([[cyclic, cyclic]]),
    { deep: [{ deeper: [{ deepest: new Map([[1, [new Set([[]])]]]) }] }] },
  ];
  for (const v of values) {
    it(`${Object.prototype.toString.call(v)} ${typeof v === 'bigint' ? `${v}n` : ''}`, () => {
      assert.deepStrictEqual(rt(v), structuredClone(v));
    });
  }

  it('an invalid Date (deepStrictEqual cannot compare NaN times)', () => {
    const ours = rt(new Date(Number.NaN));
    const theirs = structuredClone(new Date(Number.NaN));
    assert.equal(Object.getPrototypeOf(ours), Object.getPrototypeOf(theirs));
    assert.ok(Number.isNaN(ours.getTime()) && Number.isNaN(theirs.getTime()));
  });

  it('intended differences: null prototypes and Buffers are kept', () => {
    const np = Object.assign(Object.create(null), { x: 1 });
    assert.equal(Object.getPrototypeOf(structuredClone(np)), Object.prototype);
    assert.equal(Object.getPrototypeOf(rt(np)), null);
    assert.ok(!Buffer.isBuffer(structuredClone(Buffer.from('b'))));
    assert.ok(Buffer.isBuffer(rt(Buffer.from('b'))));
  });
});

describe('wire format stability', () => {
  // The exact bytes are the contract between Node versions and machines: a change here breaks
  // mixed clusters, so it must come with a new CODEC_VERSION.
  it('encodes a fixed set of values to fixed bytes', () => {
    const value = [
      0,
      -1,
      300,
      1.5,
      -0,
      'ab',
      'é',
      true,
      null,
      undefined,
      10n ** 20n,
      new Date(0),
      new Map([[1, 2]]),
      new Set(['x']),
      new Uint8Array([1, 2]),
      { k: 'v' },
    ];
    const hex = encode(value).toString('hex');
    assert.equal(hex, GOLDEN_HEX);
    assert.deepEqual(decode(Buffer.from(GOLDEN_HEX, 'hex')), value);
  });
});

// Checked by hand against the tag table in src/protocol/codec/format.ts: version 1, array(16), ints,
// int16 LE, float64 LE (1.5 and -0), latin1 'ab', utf8 'é', true/null/undefined, bigint
// (sign, 9 magnitude bytes LE), Date(0), Map, Set, Uint8Array view, object {k: 'v'}.
const GOLDEN_HEX =
  '01c71000ffbe2c01c0000000000000f83fc00000000000000080826162c402c3a9bbb9b8c10009000010632d5ec76b05ce0000000000000000cc010102cd018178d101020102b1816b8176';

describe('large views', () => {
  it('round-trip exactly when several large views are interleaved with other values', () => {
    const big = new Float64Array(20_000).map((_, i) => i * 1.5);
    const bytes = Buffer.alloc(100_000, 7);
    const shared = { tag: 'x' };
    const value = {
      a: 'before',
      big,
      mid: [1, shared, 'y'.repeat(70_000)],
      bytes,
      again: shared,
      view: new Uint8Array(big.buffer, 8, 80_000),
    };
    const out = decode(encode(value)) as typeof value;
    assert.deepEqual(out, value);
    assert.equal(out.again, out.mid[1], 'shared identity kept after a large view');
    assert.ok(Buffer.isBuffer(out.bytes));
  });

  it('are copied at encode time: later changes to the source do not leak into the encoding', () => {
    const big = new Uint8Array(100_000).fill(1);
    const enc = encode([big]);
    big.fill(2);
    assert.equal((decode(enc) as Uint8Array[])[0]![500], 1);
  });
});

describe('split encoding (large parts out of band)', () => {
  const sourceOf = (parts: readonly Uint8Array[]) => {
    let i = 0;
    return (n: number): ArrayBuffer => {
      const part = parts[i++]!;
      assert.equal(part.byteLength, n);
      return Uint8Array.prototype.slice.call(part).buffer as ArrayBuffer;
    };
  };

  it('leaves large views and ArrayBuffers out, and joins back into exactly the ordinary encoding', () => {
    const big = new Float64Array(20_000).map((_, i) => i * 1.5);
    const raw = new ArrayBuffer(70_000);
    new Uint8Array(raw)[5] = 9;
    const value = { big, list: [raw, Buffer.alloc(100_000, 3), big], small: new Int16Array([1, -2]), s: 'x' };
    const { bytes: enc, segments } = encodeSplit(value);
    assert.equal(segments.length, 3, 'the repeated view is a back-reference, not a second part');
    assert.ok(enc.byteLength < 100, `the parts are not in the bytes (${enc.byteLength} bytes)`);
    assert.equal(segments[0]!.bytes.buffer, big.buffer, 'parts are views of the caller’s memory, not copies');
    const joined = Buffer.concat(
      joinSplit(
        enc,
        segments,
        segments.map((s) => s.bytes),
      ),
    );
    assert.ok(joined.equals(encode(value)));
  });

  it('decodes with the parts from a source, as owned, exactly sized values', () => {
    const big = new Float64Array(20_000).map((_, i) => i * 0.25);
    const raw = new ArrayBuffer(70_000);
    new Uint8Array(raw)[69_999] = 4;
    const value = [big, raw, Buffer.alloc(65_536, 1), { again: big }];
    const { bytes: enc, segments } = encodeSplit(value);
    const out = decode(enc, undefined, undefined, sourceOf(segments.map((s) => s.bytes))) as [
      Float64Array,
      ArrayBuffer,
      Buffer,
      { again: Float64Array },
    ];
    assert.deepEqual(out[0], big);
    assert.equal(out[0].buffer.byteLength, big.byteLength);
    assert.equal(new Uint8Array(out[1])[69_999], 4);
    assert.ok(Buffer.isBuffer(out[2]) && out[2].length === 65_536);
    assert.equal(out[3].again, out[0], 'identity survives');
  });

  it('rejects split parts without a source, and a source that gives the wrong size', () => {
    const { bytes: enc } = encodeSplit([new Uint8Array(65_536)]);
    assert.throws(() => decode(enc), /an out-of-band part, but this message has none/);
    assert.throws(
      () => decode(enc, undefined, undefined, () => new ArrayBuffer(10)),
      /out-of-band part of 65536 bytes did not arrive whole/,
    );
    assert.throws(
      () => decode(bytes(1, 0xd9, T.NULL), undefined, undefined, () => new ArrayBuffer(0)),
      /must be an ArrayBuffer or a view/,
    );
  });

  it('small values encode exactly as without splitting', () => {
    const value = { a: new Float64Array(10), b: 'x'.repeat(100_000) };
    const { bytes: enc, segments } = encodeSplit(value);
    assert.equal(segments.length, 0);
    assert.ok(enc.equals(encode(value)));
  });
});

describe('decodeRange', () => {
  const values: unknown[] = [
    0,
    -0,
    'text',
    { a: [1, 2, { b: 3n }] },
    new Map([[1, new Set(['x'])]]),
    new Float64Array([1.5, 2]),
  ];
  it('decodes a value from the middle of a larger buffer exactly as decode does', () => {
    for (const v of values) {
      const bytes = encode(v);
      const chunk = Buffer.concat([Buffer.from([0xff, 0x00, 0x17]), bytes, Buffer.from([0xc8, 0xc8])]);
      assert.deepEqual(decodeRange(chunk, 3, 3 + bytes.length), decode(bytes));
    }
  });
  it('reads nothing outside the range, and reports a fault as decode does for the range alone', () => {
    const bytes = encode(['abc', 'def']);
    const chunk = Buffer.concat([Buffer.alloc(10), bytes]);
    const alone = (() => {
      try {
        decode(bytes.subarray(0, bytes.length - 1));
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    })();
    assert.match(alone, /truncated.*at byte \d+/);
    assert.throws(
      () => decodeRange(chunk, 10, chunk.length - 1),
      (e: Error) => {
        assert.ok(e instanceof CodecError);
        assert.equal(e.message, alone);
        return true;
      },
    );
    assert.throws(() => decodeRange(chunk, 10, 10), /empty input/);
    assert.throws(
      () => decodeRange(Buffer.concat([chunk, Buffer.from([1])]), 10, chunk.length + 1),
      /trailing/,
    );
  });
  it('rejects a range that is not inside the buffer', () => {
    const chunk = encode(1);
    for (const [s, e] of [
      [-1, 1],
      [0, chunk.length + 1],
      [2, 1],
      [0.5, 1],
    ] as const)
      assert.throws(() => decodeRange(chunk, s, e), RangeError);
  });
});
