// The small-value writer and reader (protocol/codec/small.ts) against the general codec:
// the same bytes for every argument list they take, the same value for every result they
// read, and "not mine" (the general path) for everything else.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as format from '../src/protocol/codec/format.ts';
import {
  decodeSmall,
  decodeSmallArgs,
  encodeSmallArgs,
  encodeSmallInto,
  encodeStringList,
  NOT_SMALL,
} from '../src/protocol/codec/small.ts';
import { decode, decodeRange, encode, encodeInto, encodeSplit } from '../src/protocol/codec.ts';
import { prng } from './helpers/sched-sim.ts'; // seeded: a failure names a seed that reproduces it

// Every number form the codec has, and the edges between them.
const NUMBERS = [
  0,
  -0,
  1,
  -1,
  31,
  32,
  -32,
  -33,
  127,
  128,
  255,
  256,
  -128,
  -129,
  32767,
  32768,
  -32768,
  -32769,
  2 ** 31 - 1,
  2 ** 31,
  -(2 ** 31),
  -(2 ** 31) - 1,
  2 ** 32,
  2 ** 53 - 1,
  -(2 ** 53),
  0.5,
  -1.25,
  Math.PI,
  Number.MIN_VALUE,
  Number.MAX_VALUE,
  Number.EPSILON,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
];
const STRINGS = [
  '',
  'a',
  'hello',
  'x'.repeat(31),
  'x'.repeat(32),
  'é',
  'aé',
  '日本',
  '\u{1F600}',
  '\ud800',
  '\x7f',
];
const OTHERS = [
  undefined,
  null,
  true,
  false,
  1n,
  Symbol('s'),
  () => 1,
  {},
  [],
  [1],
  new Uint8Array(2),
  new Date(0),
];

function randomValue(rand: () => number): unknown {
  const r = rand();
  if (r < 0.45) return NUMBERS[Math.floor(rand() * NUMBERS.length)];
  if (r < 0.6) return (rand() - 0.5) * 10 ** Math.floor(rand() * 12);
  if (r < 0.75) return STRINGS[Math.floor(rand() * STRINGS.length)];
  if (r < 0.8)
    return String.fromCharCode(
      ...Array.from({ length: Math.floor(rand() * 40) }, () => 32 + Math.floor(rand() * 100)),
    );
  return OTHERS[Math.floor(rand() * OTHERS.length)];
}

/** What the general path makes of these arguments (or its error). */
function general(thisArg: unknown, args: unknown[]): Buffer | Error {
  try {
    const { bytes, segments } = encodeSplit([thisArg, args], undefined, 'job');
    assert.equal(segments.length, 0);
    return bytes;
  } catch (error) {
    return error as Error;
  }
}

describe('codec fast path for small arguments', () => {
  it('writes the general encoder bytes for every argument list it takes, and takes the common ones', () => {
    const rand = prng(12);
    let taken = 0;
    for (let round = 0; round < 20_000; round++) {
      const n = Math.floor(rand() * 18);
      const args = Array.from({ length: n }, () => randomValue(rand));
      const thisArg = rand() < 0.9 ? undefined : randomValue(rand);
      const small = encodeSmallArgs(thisArg, args);
      if (small === null) continue;
      taken++;
      const want = general(thisArg, args);
      assert.ok(
        !(want instanceof Error),
        `round ${round}: the general path failed where the fast one did not`,
      );
      assert.deepEqual([...small], [...want], `round ${round}: ${String(args)}`);
    }
    assert.ok(taken > 2_000, `only ${taken} argument lists took the fast path`);
  });

  it('takes every list of primitives it is meant for, and none other', () => {
    for (const v of [
      ...NUMBERS,
      ...STRINGS.filter((s) => /^[\x00-\x7f]{0,31}$/.test(s)),
      undefined,
      null,
      true,
      false,
    ]) {
      assert.notEqual(encodeSmallArgs(undefined, [v]), null, `${String(v)} was left to the general path`);
    }
    for (const v of [...STRINGS.filter((s) => !/^[\x00-\x7f]{0,31}$/.test(s)), ...OTHERS.slice(4)]) {
      assert.equal(encodeSmallArgs(undefined, [v]), null, `${String(v)} took the fast path`);
    }
    assert.equal(encodeSmallArgs({}, [1]), null, 'an object as this');
    assert.equal(encodeSmallArgs(undefined, new Array(16).fill(1)), null, '16 arguments');
    assert.notEqual(encodeSmallArgs(undefined, new Array(15).fill(1)), null, '15 arguments');
  });

  it('keeps holes as holes', () => {
    // biome-ignore lint/suspicious/noSparseArray: the hole is the point
    const args = [1, , 3];
    const small = encodeSmallArgs(undefined, args);
    assert.ok(small);
    assert.deepEqual([...small], [...(general(undefined, args) as Buffer)]);
  });

  it('returns a copy: encoding again does not change earlier output', () => {
    const a = encodeSmallArgs(undefined, [1, 'ab'])!;
    const before = [...a];
    encodeSmallArgs(undefined, [99, 'zz', 7]);
    assert.deepEqual([...a], before);
  });
});

describe('codec fast path for small results', () => {
  it('reads what the general decoder reads, for every value it takes', () => {
    for (const v of [...NUMBERS, undefined, null, true, false]) {
      const bytes = encode(v);
      const got = decodeSmall(bytes, 0, bytes.byteLength);
      assert.notEqual(got, NOT_SMALL, `${String(v)} was left to the general decoder`);
      assert.ok(Object.is(got, v), `${String(v)} read as ${String(got)}`);
      // Inside a larger buffer, at an offset.
      const framed = Buffer.concat([Buffer.from([9, 9, 9]), bytes, Buffer.from([7])]);
      assert.ok(Object.is(decodeSmall(framed, 3, 3 + bytes.byteLength), v));
    }
  });

  it('leaves everything else, malformed bytes included, to the general decoder', () => {
    for (const v of ['', 'abc', [1], { a: 1 }, 1n, new Date(0)]) {
      const bytes = encode(v);
      assert.equal(decodeSmall(bytes, 0, bytes.byteLength), NOT_SMALL, String(v));
    }
    const one = encode(1);
    const pi = encode(Math.PI);
    const cases: Uint8Array[] = [
      new Uint8Array([]),
      one.subarray(0, 1), // version only
      Buffer.from([0x7f, 1]), // wrong version
      Buffer.concat([one, Buffer.from([1])]), // trailing byte
      pi.subarray(0, pi.byteLength - 1), // truncated float
      Buffer.concat([encode(undefined), Buffer.from([0])]),
    ];
    for (const bytes of cases) {
      assert.equal(decodeSmall(bytes, 0, bytes.byteLength), NOT_SMALL, `[${[...bytes]}]`);
      assert.throws(() => decodeRange(bytes, 0, bytes.byteLength), `[${[...bytes]}] is malformed`);
    }
  });
});

describe('codec fast path for lists of function hashes', () => {
  it('writes the general encoder bytes for lists of ASCII strings, and leaves the rest to it', () => {
    const rand = prng(7);
    let taken = 0;
    for (let round = 0; round < 5_000; round++) {
      const n = Math.floor(rand() * 18);
      const list = Array.from({ length: n }, () => {
        const len = [0, 1, 31, 32, 40, 64, 85, 86, 100][Math.floor(rand() * 9)]!;
        const ascii = rand() < 0.95;
        return Array.from({ length: len }, () =>
          String.fromCharCode(ascii ? 32 + Math.floor(rand() * 95) : 0xe9 + Math.floor(rand() * 2)),
        ).join('');
      });
      const small = encodeStringList(list);
      if (small === null) continue;
      taken++;
      assert.deepEqual([...small], [...encode(list)], `round ${round}`);
    }
    assert.ok(taken > 500, `only ${taken} lists took the fast path`);
    assert.ok(encodeStringList(['a'.repeat(64)]), 'a sha-256 hex hash');
    assert.equal(encodeStringList(['a'.repeat(86)]), null);
    assert.equal(encodeStringList(['é']), null);
    assert.equal(encodeStringList(new Array(16).fill('a')), null);
  });
});

describe('codec fast paths of the worker side', () => {
  it('reads back every argument list the fast writer takes, as the general decoder does', () => {
    const rand = prng(99);
    let taken = 0;
    for (let round = 0; round < 20_000; round++) {
      const args = Array.from({ length: Math.floor(rand() * 16) }, () => randomValue(rand));
      const thisArg = rand() < 0.9 ? undefined : randomValue(rand);
      const bytes = encodeSmallArgs(thisArg, args);
      if (bytes === null) continue;
      const got = decodeSmallArgs(bytes);
      assert.ok(got, `round ${round}: not read back`);
      taken++;
      const want = decode(bytes) as [unknown, unknown[]];
      assert.equal(got[1].length, want[1].length);
      assert.ok(Object.is(got[0], want[0]));
      for (let i = 0; i < want[1].length; i++)
        assert.ok(Object.is(got[1][i], want[1][i]), `round ${round} [${i}]`);
      // A plain Uint8Array (a worker thread's message) reads the same.
      assert.deepEqual(decodeSmallArgs(new Uint8Array(bytes)), got);
    }
    assert.ok(taken > 2_000, `only ${taken} lists read back`);
  });

  it('reads Latin-1 strings as the general decoder does, and leaves the rest to it', () => {
    // FIXSTR bytes above 0x7f: the encoder never writes them, the decoder reads them as Latin-1.
    const bytes = Buffer.from([format.CODEC_VERSION, 0xa2, format.T_UNDEFINED, 0xa1, 0x82, 0xe9, 0x41]);
    assert.deepEqual(decodeSmallArgs(bytes), decode(bytes));
    const general = [
      encodeSplit([undefined, [{ a: 1 }]]).bytes,
      encodeSplit([undefined, ['x'.repeat(40)]]).bytes,
      // biome-ignore lint/suspicious/noSparseArray: a hole goes to the general decoder
      encodeSplit([undefined, [1, , 3]]).bytes,
      encodeSplit([undefined, new Array(16).fill(0)]).bytes,
      encodeSplit([{}, [1]]).bytes,
      encode([1, [2]]).subarray(0, 4), // truncated
      Buffer.concat([encodeSmallArgs(undefined, [1])!, Buffer.from([0])]), // trailing byte
    ];
    for (const b of general) assert.equal(decodeSmallArgs(b), undefined, `[${[...b]}]`);
  });

  it('writes a small result as encodeInto does, at an offset, and leaves the rest to it', () => {
    for (const v of [...NUMBERS, ...STRINGS, undefined, null, true, false, [1], { a: 1 }, 1n]) {
      const fast = Buffer.alloc(96, 0xee);
      const slow = Buffer.alloc(96, 0xee);
      const end = encodeSmallInto(v, fast, 48);
      if (end === undefined) {
        assert.ok(
          typeof v === 'object' ||
            typeof v === 'bigint' ||
            (typeof v === 'string' && !/^[\x00-\x7f]{0,31}$/.test(v)),
          `${String(v)} was left to the general encoder`,
        );
        continue;
      }
      assert.equal(end, encodeInto(v, undefined, 'result', slow, 48));
      assert.deepEqual([...fast], [...slow], String(v));
    }
    assert.equal(encodeSmallInto(1, Buffer.alloc(60), 48), undefined, 'too little room left');
  });
});
