// The fuzz target for the handshake, the secure channel, the frame reader and the message
// decoder (test/helpers/fuzz.ts). `npm test` runs it briefly with a fixed seed; by hand:
//   PP_FUZZ_SECONDS=600 PP_FUZZ_SEED=12345 node --import tsx --test test/fuzz.test.ts
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fuzz, mutate, Rng } from './helpers/fuzz.ts';

const seconds = Number(process.env.PP_FUZZ_SECONDS ?? 2.5);
const seed = Number(process.env.PP_FUZZ_SEED ?? 0x5eed13);

test('the generator is seeded: the same seed gives the same inputs', () => {
  const base = new Uint8Array([0x50, 0x50, 0x4e, 0x01, 0x01, 9, 9, 9]);
  const run = (s: number) => {
    const rng = new Rng(s);
    return Array.from({ length: 50 }, () => Buffer.from(mutate(rng, base, base)).toString('hex')).join();
  };
  assert.equal(run(7), run(7));
  assert.notEqual(run(7), run(8));
});

test(`fuzz: handshake, secure channel, frames and messages (seed ${seed}, ${seconds} s)`, {
  timeout: (seconds + 60) * 1000,
}, () => {
  // At least 2,000 inputs (100 for each handshake target) however loaded the machine is.
  const report = fuzz(seed, performance.now() + seconds * 1000, Number.MAX_SAFE_INTEGER, 5000, 2000);
  console.log(
    `fuzz: ${report.inputs} inputs, slowest ${report.slowestMs.toFixed(1)} ms: ${JSON.stringify(report.perTarget)}`,
  );
  // Enough inputs that every target ran many times, even on a loaded machine.
  assert.ok(report.inputs >= 7 * 100, `only ${report.inputs} inputs in ${seconds} s`);
  for (const [target, n] of Object.entries(report.perTarget)) assert.ok(n >= 100, `${target}: ${n} inputs`);
});
