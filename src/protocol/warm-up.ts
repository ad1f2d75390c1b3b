/**
 * Made-up jobs with which a fresh worker warms its job path before its first real jobs
 * (worker/warm-up.ts; figures: bench/NOTES.md, "W1 cold"). In a new process every function
 * on a job's way runs in V8's interpreter until it has run often enough to be compiled, and
 * is compiled in the middle of the first burst: a fresh worker spends two to three times the
 * CPU per tiny job of a warm one. Made-up jobs run while the worker would idle anyway move
 * part of that cost out of the first burst.
 *
 * They are ordinary 'define' and 'run' messages, written by the encoders a server writes
 * real ones with, so they take the code real jobs take, with a mix of small values of the
 * common kinds, so that what V8 learns from them holds for real arguments, not only for
 * small integers.
 */
import { encodeSplit } from './codec.ts';
import type { FunctionDefinition } from './messages.ts';
import { writeRunFrame } from './run-frame.ts';

/** Made-up jobs per slice: a real message waits for at most one (well under a millisecond once warm). */
export const WARM_UP_BATCH = 32;

/** The made-up jobs' function: it hands its argument back (the value travels both ways). */
export const WARM_UP_DEFINITION: FunctionDefinition = Object.freeze({
  // Not a SHA-256 (64 hex digits), so that it can never be a real function's hash.
  hash: 'pp-node:warm-up',
  name: 'warmUp',
  code: 'return { fn: function warmUp(value) { return value; } };',
  bindings: [],
  modules: [],
  globals: {},
}) as FunctionDefinition;

/** Arguments of the made-up jobs: small values of the kinds jobs commonly take and return. */
const SAMPLES: readonly unknown[] = [
  0,
  1,
  42,
  -7,
  1_000_000,
  0.5,
  2.75,
  -2.5e-3,
  'x',
  'hello world',
  'ünïcödé',
  true,
  false,
  null,
  undefined,
  [1, 2, 3],
  [0.5, 'a', null],
  { a: 1, b: 'two' },
  { x: 1.5, y: -2, tags: ['p', 'q'] },
  17,
  123_456,
  2 ** 31,
];

/** The argument of made-up job `i`. */
export function warmUpSample(i: number): unknown {
  return SAMPLES[i % SAMPLES.length];
}

/** A made-up job, as writeRunFrame reads one. */
interface WarmJob {
  readonly id: number;
  readonly hash: string;
}

/**
 * A 'run' frame of made-up jobs `first` to `first + count - 1` (their ids), each with the
 * argument {@link warmUpSample} of its id, encoded as submit encodes arguments, with a frame
 * header if `withHeader`.
 */
export function warmUpRunFrame(first: number, count: number, withHeader: boolean): Buffer {
  const jobs: WarmJob[] = [];
  const blobs: Uint8Array[] = [];
  for (let i = first; i < first + count; i++) {
    jobs.push({ id: i, hash: WARM_UP_DEFINITION.hash });
    blobs.push(encodeSplit([undefined, [warmUpSample(i)]], undefined, 'job').bytes);
  }
  return writeRunFrame(jobs, blobs, undefined, withHeader);
}
