/**
 * How fast a node runs jobs, learnt from the run times its results carry: per function (a
 * node twice as fast for numeric code may be no faster for I/O-bound jobs), and over all
 * functions as one figure against the cluster's mean (for display, and for a function the
 * node has not run yet).
 */
import { DurationEstimate } from './policy.ts';

/**
 * One result's run time counts at most this many times faster or slower than the mean it is
 * added to (the node's own for the function, the cluster's for the overall figure): a job that
 * met a page fault storm, or one tiny input, must not decide a node's speed.
 */
const MAX_RATIO = 8;
/** Weight of older results in the overall figure, per result (a slow drift, not a jump). */
const DECAY = 0.98;

/**
 * How often the server looks again at the end of a burst while some CPU idles and another
 * node holds jobs: a node that stays silent is slower than it was thought to be.
 */
export const END_OF_BURST_RECHECK_MS = 20;
/** The longest wait between such looks while nothing comes back. */
export const MAX_RECHECK_MS = 640;

export class NodeSpeed {
  /**
   * Since when the node has held jobs without finishing one (performance.now() ms): the last
   * result, or the dispatch that found it holding none. Its silence bounds its speed.
   */
  quietSince = 0;
  readonly #perFunction = new Map<string, DurationEstimate>();
  #expected = 0;
  #actual = 0;

  /** A result of function `hash` that ran `ms` here, where the cluster's mean so far is `meanMs`. */
  add(hash: string, ms: number, meanMs: number | undefined): void {
    if (!(ms >= 0 && ms < Number.POSITIVE_INFINITY)) return; // a node's nonsense must not poison it
    let e = this.#perFunction.get(hash);
    if (!e) this.#perFunction.set(hash, (e = new DurationEstimate()));
    const own = e.value;
    e.add(own === undefined ? ms : Math.min(own * MAX_RATIO, Math.max(own / MAX_RATIO, ms)));
    if (meanMs === undefined || !(meanMs > 0)) return;
    const clipped = Math.min(meanMs * MAX_RATIO, Math.max(meanMs / MAX_RATIO, ms));
    this.#expected = this.#expected * DECAY + meanMs;
    this.#actual = this.#actual * DECAY + clipped;
  }

  /** Relative speed: 2 runs jobs in half the cluster's mean time; 1 until measured. */
  get relative(): number {
    return this.#actual > 0 ? this.#expected / this.#actual : 1;
  }

  /** Expected run time here of a job of `hash` whose cluster-wide mean is `meanMs`. */
  msPerJob(hash: string, meanMs: number | undefined): number | undefined {
    const own = this.#perFunction.get(hash)?.value;
    if (own !== undefined) return own;
    return meanMs === undefined ? undefined : meanMs / this.relative;
  }
}
