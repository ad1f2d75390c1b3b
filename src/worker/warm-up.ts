/**
 * A fresh worker warms its job path while it waits for its first message (see
 * protocol/warm-up.ts): made-up jobs run through a runtime of their own, from the frame a
 * server writes to the result frame the worker writes back, which goes nowhere. A slice at a
 * time, between turns of the event loop, and only until the first message from the server
 * comes in: a real job waits for one slice at most. Nothing leaves the worker, so the server,
 * and the user's process, see nothing of it and pay nothing for it.
 */
import { decodeRange } from '../protocol/codec.ts';
import { encodeMessage, JobStatus } from '../protocol/messages.ts';
import { type ResultView, readResult } from '../protocol/result-frame.ts';
import { WARM_UP_BATCH, WARM_UP_DEFINITION, warmUpRunFrame, warmUpSample } from '../protocol/warm-up.ts';
import { FRAME_HEADER_BYTES, joinFrame } from '../transport/frames.ts';
import { WorkerRuntime } from './runtime.ts';

/**
 * Made-up jobs a worker runs at most: about 40 ms of CPU per worker here, once (figures in
 * bench/NOTES.md). Fewer left most of the path to be compiled during the first burst; more
 * cost more than they saved on a 2-core machine.
 */
export const WORKER_WARM_UP_JOBS = 32 * WARM_UP_BATCH;

/** How a warm-up went (for tests). */
export interface WarmUp {
  /** Made-up jobs answered so far. */
  readonly answered: number;
  /** Of those, answers that were not the value sent (a broken path: always 0; checked with `verify`). */
  readonly wrong: number;
  /** Resolves when warming stopped: all jobs ran, or a message came first. */
  readonly done: Promise<void>;
}

/**
 * Starts warming in the background (from the next turn of the event loop). `idle()` tells
 * whether the worker has had no message from its server yet; once it has, warming stops.
 * With `verify` (tests), each result is also read back and compared with what was sent.
 */
export function warmUpWorker(idle: () => boolean, jobs = WORKER_WARM_UP_JOBS, verify = false): WarmUp {
  const view: ResultView = { id: 0, status: 0, durationMs: 0, blobStart: 0 };
  const state = { answered: 0, wrong: 0, done: Promise.resolve() };
  const runtime = new WorkerRuntime({
    // Only the 'define' below could fail, answered with a general 'done': counted as wrong.
    send() {
      state.wrong++;
    },
    sendFrame(buf, start, end) {
      state.answered++;
      if (!verify) return;
      const ok =
        readResult(buf, view, start + FRAME_HEADER_BYTES, end) &&
        view.status === JobStatus.Ok &&
        sameValue(decodeRange(buf, view.blobStart, end), warmUpSample(view.id));
      if (!ok) state.wrong++;
    },
  });
  state.done = new Promise<void>((resolve) => {
    let sent = 0;
    const step = (): void => {
      if (!idle() || sent >= jobs) {
        resolve();
        return;
      }
      if (sent === 0)
        runtime.receive(joinFrame(encodeMessage({ type: 'define', defs: [WARM_UP_DEFINITION] }), false));
      const count = Math.min(WARM_UP_BATCH, jobs - sent);
      runtime.receive(warmUpRunFrame(sent + 1, count, false));
      sent += count;
      setImmediate(step);
    };
    setImmediate(step);
  });
  return state;
}

/** Whether a made-up job's result is the value it was sent (its function hands it back). */
function sameValue(got: unknown, sent: unknown): boolean {
  return typeof got === typeof sent && JSON.stringify(got) === JSON.stringify(sent);
}
