// Micro-benchmark of the message codec, with v8.serialize/deserialize as a reference point.
// Run: npx tsx bench/codec-micro.ts
import v8 from 'node:v8';
import { decode, encode } from '../src/protocol/codec.ts';

const hex = 'a3f9c1d2e4b5a6978877665544332211ffeeddccbbaa99887766554433221100';
const small = [17, hex, [42]];
const batch = Array.from({ length: 64 }, (_, i) => [1000 + i, hex, [i * 3]]);
const f64 = new Float64Array((1024 * 1024) / 8).map((_, i) => i * 0.5);

let sink = 0;

/** Median ns per call of fn over several timed rounds, after warm-up. */
function time(fn: () => void, iterations: number): number {
  for (let i = 0; i < Math.min(iterations, 20_000); i++) fn();
  const rounds: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn();
    rounds.push(Number(process.hrtime.bigint() - t0) / iterations);
  }
  rounds.sort((a, b) => a - b);
  return rounds[3]!;
}

function row(label: string, codec: number, ref: number, unit: string, per = 1): void {
  const fmt = (n: number) => (n / per).toFixed(unit === 'MB/s' ? 0 : 1).padStart(9);
  console.log(`${label.padEnd(34)} codec ${fmt(codec)} ${unit}   v8 ${fmt(ref)} ${unit}`);
}

function roundTrip(value: unknown, n: number): [codec: number, v8: number] {
  const codec = time(() => {
    sink += (decode(encode(value)) as unknown[]).length;
  }, n);
  const ref = time(() => {
    sink += (v8.deserialize(v8.serialize(value)) as unknown[]).length;
  }, n);
  return [codec, ref];
}

console.log(`node ${process.version} ${process.arch}`);
console.log(`small message: ${encode(small).length} bytes (v8.serialize: ${v8.serialize(small).length})`);

const encSmall = encode(small);
const v8Small = v8.serialize(small);
row(
  'small: encode (ns/op)',
  time(() => {
    sink += encode(small).length;
  }, 300_000),
  time(() => {
    sink += v8.serialize(small).length;
  }, 300_000),
  'ns',
);
row(
  'small: decode (ns/op)',
  time(() => {
    sink += (decode(encSmall) as unknown[]).length;
  }, 300_000),
  time(() => {
    sink += (v8.deserialize(v8Small) as unknown[]).length;
  }, 300_000),
  'ns',
);
const [smallCodec, smallV8] = roundTrip(small, 300_000);
row('small: encode+decode (ns/op)', smallCodec, smallV8, 'ns');

const [batchCodec, batchV8] = roundTrip(batch, 10_000);
row('batch of 64: encode+decode (ns/item)', batchCodec, batchV8, 'ns', 64);

const mb = f64.byteLength / 1e6;
const [bigCodec, bigV8] = roundTrip(f64, 200);
row('1 MiB Float64Array: encode+decode', mb / (bigCodec / 1e9), mb / (bigV8 / 1e9), 'MB/s');

if (sink === 42) console.log('');
