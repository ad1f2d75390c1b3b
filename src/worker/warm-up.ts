/**
 * A new worker's first jobs run its code cold: interpreted, with no type feedback, and the
 * optimising compiler busy on a background thread just when the first burst of jobs comes.
 * For tiny jobs that made the first 10,000 jobs of a fresh process about twice as costly per
 * job as later ones (`npm run bench`, "W1 cold"). So a worker, once it has said it is ready,
 * runs synthetic tiny jobs through its own hot paths (decoding a run frame, looking up the
 * function, decoding the arguments, encoding and framing the result) in a throwaway runtime
 * whose results go nowhere, in small batches on an idle event loop, and stops for good as
 * soon as the server sends anything. A real job waits at most one batch (well under a
 * millisecond once warm); a worker that is given work at once never warms up at all.
 */
import { encode } from '../protocol/codec.ts';
import { encodeMessage, type FunctionDefinition } from '../protocol/messages.ts';
import { writeRunFrame } from '../protocol/run-frame.ts';
import { joinFrame } from '../transport/frames.ts';
import { WorkerRuntime } from './runtime.ts';

/** Synthetic jobs in all: about what V8 needs to optimise the hot paths (see the top). */
export const WARM_UP_JOBS = 6000;
/** Jobs per batch, between which the worker reads its messages. */
const WARM_UP_BATCH = 50;

const WARM_UP_DEF: FunctionDefinition = {
  hash: 'pp-node:warm-up',
  name: 'warmUp',
  code: "'use strict';\nconst fn = ((x) => x + 1\n);\nreturn { fn: fn, classes: {} };",
  bindings: [],
  modules: [],
  globals: {},
};

const noop = (): void => {};

/** Runs the warm-up until done or until `stop()` says real work came (checked between batches). */
export async function warmUp(stop: () => boolean, jobs = WARM_UP_JOBS): Promise<void> {
  const runtime = new WorkerRuntime({ send: noop, sendFrame: noop });
  runtime.receive(joinFrame(encodeMessage({ type: 'define', defs: [WARM_UP_DEF] }), false));
  const hash = WARM_UP_DEF.hash;
  for (let done = 0; done < jobs; done += WARM_UP_BATCH) {
    await nextTurn();
    if (stop()) return;
    const batch = [];
    const blobs = [];
    for (let i = 0; i < WARM_UP_BATCH; i++) {
      batch.push({ id: done + i + 1, hash });
      blobs.push(encode([undefined, [done + i]]));
    }
    runtime.receive(writeRunFrame(batch, blobs, undefined, false));
    while (runtime.busy) await nextTurn();
  }
}

/** After the event loop has polled for input (a message from the server comes first). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
