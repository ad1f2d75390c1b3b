/**
 * The job server's warm-up: made-up jobs through its own job path while it idles after start.
 *
 * In a new process every function on a job's way (submit, the queue, the dispatcher, the run
 * frame, the worker's loop, the result, settling the Job) runs in V8's interpreter until it
 * has run often enough to be compiled, and is compiled in the middle of the first burst, on
 * the same 2 cores that run the jobs: measured here, a fresh process ran its first 10,000
 * tiny jobs at a fifth to a third of a warm one's speed (bench/NOTES.md, "W1 cold"). The workers
 * warm their own loop as they start (worker/warm-up.ts); this warms the whole way, client
 * and workers, with jobs that take it end to end.
 *
 * It runs once, when the local workers are ready, and only while the user has submitted
 * nothing: a program that submits at once warms the path with its own jobs, and one that
 * submits while the warm-up runs waits for at most one slice of it (a few milliseconds),
 * after which the warm-up stops. It costs about a quarter of a CPU-second in all (server and
 * workers, measured on 2 cores), once per server; `new Server({ warmUp: false })` turns it
 * off. Its jobs are counted nowhere (stats, progress, `wait()`, the dashboard) and take no
 * job ids.
 */
import { warmUpSample } from '../protocol/warm-up.ts';

/** Made-up jobs in all: enough for V8 to compile the hot path (more gained nothing measurable here). */
export const WARM_UP_JOBS = 3072;
/** Jobs submitted at a time: a job of the user's waits for at most these. */
export const WARM_UP_SLICE = 128;

/** The made-up jobs' function: it hands its argument back, so that values travel both ways. */
export function warmUp(value: unknown): unknown {
  return value;
}

/**
 * A made-up job's arguments. V8 gives every array literal one kind of elements, widened to
 * the widest value it has held: one literal for all would make every array one of objects,
 * and code compiled for those alone would be thrown away at the user's first `[i]`.
 */
function argsOf(value: unknown): unknown[] {
  if (typeof value !== 'number') return [value];
  return (value | 0) === value ? [value] : [value]; // small integers, and the other numbers
}

/** What the warm-up asks of its server. */
export interface WarmUpHost {
  /** Still nothing of the user's submitted, and not closed. */
  idle(): boolean;
  /** Submits one made-up job, `warmUp(...args)`, through the server's own path. */
  submit(args: unknown[]): PromiseLike<unknown>;
}

/**
 * Runs the warm-up on `host`, slice by slice, while it stays idle. Resolves when done or
 * stopped; never rejects (a made-up job that fails, say because the server closed, ends it).
 */
export async function warmUpServer(host: WarmUpHost): Promise<void> {
  for (let sent = 0; sent < WARM_UP_JOBS; sent += WARM_UP_SLICE) {
    if (!host.idle()) return;
    const slice: PromiseLike<unknown>[] = [];
    for (let i = 0; i < WARM_UP_SLICE; i++) slice.push(host.submit(argsOf(warmUpSample(sent + i))));
    const outcomes = await Promise.allSettled(slice);
    if (outcomes.some((o) => o.status === 'rejected')) return;
  }
}
