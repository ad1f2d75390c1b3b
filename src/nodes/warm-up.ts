/**
 * A local pool warms each new worker, and its own side of the pipe, with made-up jobs
 * (protocol/warm-up.ts) while the worker would idle: from the moment it is ready until the
 * first real job comes, in slices of WARM_UP_BATCH jobs, two at a time (the worker runs one
 * while the next travels), up to WARM_UP_JOBS. A slice is sent only to a worker that holds no
 * real job, so a real job finds at most two slices ahead of it. Their results are read and decoded as real ones are, then dropped here: the
 * job server never sees them (no ids, stats, estimates or progress of its own are touched).
 */
import { decodeRange } from '../protocol/codec.ts';
import { encodeMessage, JobStatus } from '../protocol/messages.ts';
import {
  WARM_UP_BATCH,
  WARM_UP_DEFINITION,
  WARM_UP_FIRST_ID,
  warmUpRunFrame,
  warmUpSample,
} from '../protocol/warm-up.ts';
import type { WorkerHandle } from './worker-handle.ts';

/**
 * Made-up jobs per worker: enough for V8 to compile the hot path of both sides (about 25 ms
 * of CPU per worker here, once; figures in bench/NOTES.md).
 */
export const WARM_UP_JOBS = 32 * WARM_UP_BATCH;

interface Progress {
  /** Made-up jobs sent so far. */
  sent: number;
  /** Of those, not answered yet. */
  open: number;
}

export class PoolWarmUp {
  readonly #workers = new WeakMap<WorkerHandle, Progress>();
  /** Results of made-up jobs read, over all workers (for tests). */
  answered = 0;
  /** Results that did not decode to what was sent: a broken path (for tests; always 0). */
  wrong = 0;
  #stopped = false;

  constructor(private readonly jobsPerWorker = WARM_UP_JOBS) {}

  /** The worker is ready: warm it from the next turn of the event loop on, if nothing real came first. */
  start(w: WorkerHandle): void {
    if (this.jobsPerWorker <= 0 || this.#workers.has(w)) return;
    this.#workers.set(w, { sent: 0, open: 0 });
    setImmediate(() => this.#next(w)).unref();
  }

  /** No more slices (the pool closes). */
  stop(): void {
    this.#stopped = true;
  }

  /**
   * A result with an id from WARM_UP_FIRST_ID on: a made-up job's. Reads it as the pool
   * reads a real one, and sends the next slice once the last one is answered.
   */
  take(w: WorkerHandle, id: number, status: JobStatus, bytes: Uint8Array, start: number, end: number): void {
    const progress = this.#workers.get(w);
    if (!progress || progress.open === 0) return;
    const value = decodeRange(bytes, start, end);
    this.answered++;
    if (status !== JobStatus.Ok || !sameSample(value, id - WARM_UP_FIRST_ID)) this.wrong++;
    // A slice answered whole: the next one, from the next turn of the event loop.
    if (--progress.open === WARM_UP_BATCH) setImmediate(() => this.#next(w)).unref();
  }

  /** Sends slices until two are open, unless the worker got a real job, or is gone, or warm. */
  #next(w: WorkerHandle): void {
    const progress = this.#workers.get(w)!;
    while (progress.open < 2 * WARM_UP_BATCH && progress.sent < this.jobsPerWorker) {
      if (this.#stopped || !w.alive || w.inFlight.length > 0) return;
      if (progress.sent === 0) w.send(encodeMessage({ type: 'define', defs: [WARM_UP_DEFINITION] }));
      w.sendFrame(warmUpRunFrame(progress.sent, WARM_UP_BATCH, w.framed));
      progress.sent += WARM_UP_BATCH;
      progress.open += WARM_UP_BATCH;
    }
  }
}

/** Whether a made-up job's result is the sample it was sent (the function hands it back). */
function sameSample(value: unknown, index: number): boolean {
  const sent = warmUpSample(index);
  return JSON.stringify(value) === JSON.stringify(sent) && typeof value === typeof sent;
}
