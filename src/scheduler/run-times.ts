/**
 * What the run times of one function look like beyond their mean, learnt from its results:
 *
 * - how far they spread: a high quantile of each result's run time over what its node was
 *   expected to take ({@link RunTimes.tailFactor}: 1 when all jobs take as long, about 3.5 for
 *   heavy-tailed ones, Pareto 5-300 ms). Placement (policy.ts) counts the last jobs of a burst
 *   at their mean times this: a job that may turn out long must not start on a slow CPU just
 *   before the burst ends;
 * - whether they grow with the order the jobs were submitted in ({@link RunTimes.grows}): pp's
 *   sum_primes submits ever larger inputs, and the longest jobs come last. Run in submission
 *   order, such a burst ends with its longest jobs, and some of them on a slow node: even
 *   knowing every job's run time, placement in submission order ends 3-7% after the lower
 *   bound, where longest first ends within 1% (bench notes). The job server then takes the
 *   last jobs of the burst from the newest end of its queue (policy.ts takeNewestFirst).
 */

/** Results remembered: enough for a quantile and a correlation, few enough to follow a change. */
export const RUN_TIMES_WINDOW = 128;
/** The quantile of run time over expected run time that {@link RunTimes.tailFactor} gives. */
export const TAIL_QUANTILE = 0.95;
/** Results before {@link RunTimes.grows} can say yes, and of one node before they count. */
export const GROWS_AFTER = 16;
const NODE_RESULTS = 8;
/** Nodes told apart (results of further ones count with the last). */
const MAX_NODES = 32;
/**
 * Least correlation of run time with submission order for {@link RunTimes.grows}: a
 * steady trend, not chance (over 16 or more unrelated results, 0.8 is out of reach).
 */
export const GROWS_MIN_CORRELATION = 0.8;
/** ... and the least growth over the results remembered, as a share of their mean. */
export const GROWS_MIN_RISE = 0.5;
/** A factor above this counts as this: one outlier must not park a node. */
const MAX_FACTOR = 8;
/** Recomputed after this many results (each time would cost more than it tells), and after each of the first {@link RUN_TIMES_WINDOW}/4. */
const EVERY = 8;

export class RunTimes {
  /** Run time over the node's expected run time. */
  readonly #ratios = new Float64Array(RUN_TIMES_WINDOW);
  /** Submission order (the job's id), run time, and which node ran it. */
  readonly #seq = new Float64Array(RUN_TIMES_WINDOW);
  readonly #ms = new Float64Array(RUN_TIMES_WINDOW);
  readonly #node = new Uint8Array(RUN_TIMES_WINDOW);
  readonly #nodes = new Map<unknown, number>();
  #count = 0;
  #ratioCount = 0;
  #tailFactor = 1;
  #grows = false;

  /**
   * A result of the job submitted `seq`-th (ids grow with submission) that ran `ms` on `node`,
   * where `expectedMs` was expected. Whether run times grow is judged node by node, where
   * they compare without knowing how fast each node is.
   */
  add(seq: number, ms: number, expectedMs: number | undefined, node: unknown): void {
    if (!(ms >= 0 && ms < Number.POSITIVE_INFINITY)) return;
    let k = this.#nodes.get(node);
    if (k === undefined) {
      k = Math.min(this.#nodes.size, MAX_NODES - 1);
      if (this.#nodes.size < MAX_NODES) this.#nodes.set(node, k);
    }
    const i = this.#count % RUN_TIMES_WINDOW;
    this.#seq[i] = seq;
    this.#ms[i] = ms;
    this.#node[i] = k;
    this.#count++;
    if (expectedMs !== undefined && expectedMs > 0) {
      this.#ratios[this.#ratioCount % RUN_TIMES_WINDOW] = Math.min(MAX_FACTOR, ms / expectedMs);
      this.#ratioCount++;
    }
    if (this.#count <= RUN_TIMES_WINDOW / 4 || this.#count % EVERY === 0) this.#update();
  }

  /** A high quantile of run time over expected run time ({@link TAIL_QUANTILE}); at least 1. */
  get tailFactor(): number {
    return this.#tailFactor;
  }

  /** Run times grow steadily with submission order (see the top). */
  get grows(): boolean {
    return this.#grows;
  }

  #update(): void {
    const r = Math.min(this.#ratioCount, RUN_TIMES_WINDOW);
    if (r > 0) {
      const sorted = this.#ratios.slice(0, r).sort();
      this.#tailFactor = Math.max(1, sorted[Math.min(r - 1, Math.floor(TAIL_QUANTILE * r))]!);
    }
    const n = Math.min(this.#count, RUN_TIMES_WINDOW);
    if (n < GROWS_AFTER) {
      this.#grows = false;
      return;
    }
    // Each node's results on their own (a slow node's run times are not a fast one's), then
    // weighted by how many each node has.
    let weight = 0;
    let correlation = 0;
    let rise = 0;
    for (let k = 0; k < Math.min(this.#nodes.size, MAX_NODES); k++) {
      const fit = fitOf(this.#seq, this.#ms, this.#node, k, n);
      if (!fit || fit.count < NODE_RESULTS) continue;
      weight += fit.count;
      correlation += fit.count * fit.correlation;
      rise += fit.count * fit.rise;
    }
    this.#grows =
      weight >= NODE_RESULTS &&
      correlation / weight >= GROWS_MIN_CORRELATION &&
      rise / weight >= GROWS_MIN_RISE;
  }
}

/** A straight line through one node's run times against submission order. */
interface Line {
  count: number;
  meanSeq: number;
  meanMs: number;
  /** ms per step of submission order. */
  slope: number;
  /** How well run time follows submission order (Pearson's r). */
  correlation: number;
  /** The line's rise over the span of the results, as a share of their mean. */
  rise: number;
}

/** The straight line through node `k`'s results among the first `n`. */
function fitOf(x: Float64Array, y: Float64Array, node: Uint8Array, k: number, n: number): Line | undefined {
  let count = 0;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    if (node[i] !== k) continue;
    count++;
    mx += x[i]!;
    my += y[i]!;
  }
  if (count < 2) return undefined;
  mx /= count;
  my /= count;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    if (node[i] !== k) continue;
    const dx = x[i]! - mx;
    const dy = y[i]! - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
    if (x[i]! < lo) lo = x[i]!;
    if (x[i]! > hi) hi = x[i]!;
  }
  const line = { count, meanSeq: mx, meanMs: my, slope: 0, correlation: 0, rise: 0 };
  if (!(sxx > 0 && syy > 0 && my > 0)) return line;
  line.slope = sxy / sxx;
  line.correlation = sxy / Math.sqrt(sxx * syy);
  line.rise = (line.slope * (hi - lo)) / my;
  return line;
}
