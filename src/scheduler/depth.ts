/**
 * How many jobs a node holds: the one answer to "how deep is a node's deque", for the local
 * pool's workers and for remote nodes alike. The words, as everywhere in the code and README:
 *
 * - a node's **deque**: the jobs it holds beyond those its CPUs run;
 * - **depth**: how many jobs one CPU (a worker) holds, the one it runs included: its share
 *   of the deque plus one ({@link targetDepth}, {@link workerDepth}, {@link linkDepth});
 * - **room**: how many more jobs a node takes now, its depth times its CPUs less what it
 *   holds (ComputeNode.room; scheduler/policy.ts splits queued jobs by it);
 * - **hold next**: a worker running a long job also holds the next one (depth 2): in the
 *   local pool only while many jobs wait, in a pp-node's pool for jobs under
 *   {@link HOLD_NEXT_BELOW_MS}.
 *
 * A node holds jobs beyond those its CPUs run so that no CPU waits for the next one: locally
 * that wait is one message through a pipe, to a remote node it is a network round trip.
 * Holding more than that only makes work that an idle CPU elsewhere could have run; the
 * work-stealing scheduler (policy.ts) takes such jobs back, but a steal costs a round trip too.
 */

/** Measured run time of short jobs that a worker's deque holds, beyond the job it runs. */
export const DEQUE_BUDGET_MS = 2;

/**
 * Greatest depth of a worker. The budget above is what bounds its deque; this only caps it for
 * functions measured at a few microseconds. Each refill is a wake-up of a sleeping worker, and
 * each is slow in a VM, so a deep deque pays (figures: bench notes in the README).
 */
export const MAX_DEPTH = 1024;

/**
 * Jobs waiting in the scheduler, per worker, from which a worker running a long job also
 * holds the next one, and starts it the moment the last one ends instead of idling through a
 * round trip to the server. Near the end of a burst no worker takes a second job, so that
 * none holds one while another idles.
 */
export const HOLD_NEXT_WAITING_PER_WORKER = 2;

/**
 * A pp-node's workers hold the next job behind the one they run only for jobs shorter than
 * this, so that they start it without a trip through the node's process (1-2 ms a job on a
 * busy machine: 5-10% of 20 ms jobs). Longer ones wait in the node's own queue, where their
 * client takes them back at once for a CPU that would idle; one a worker holds comes back
 * only when the job ahead of it ends, and at the end of a burst of long jobs that wait is
 * what decides the makespan (figures: bench notes).
 */
export const HOLD_NEXT_BELOW_MS = 50;

/** Does a pp-node's worker hold the next job of this expected duration ({@link HOLD_NEXT_BELOW_MS})? */
export function nodeHoldsNext(estimatedMs: number | undefined): boolean {
  return estimatedMs === undefined || estimatedMs < HOLD_NEXT_BELOW_MS;
}

/**
 * A remote node holds enough jobs to keep its CPUs busy for this many round trips of its
 * link, beyond {@link targetDepth}: results come back and new jobs go out in one round trip,
 * and a Wi-Fi link's round trip varies from one to the next.
 */
export const LINK_ROUND_TRIPS = 1.5;

/** The depth of a worker for jobs of this expected duration: 1, plus a deque of short ones. */
export function targetDepth(estimatedMs: number | undefined): number {
  if (estimatedMs === undefined) return 1; // unknown cost: assume long until measured
  if (estimatedMs >= DEQUE_BUDGET_MS) return 1;
  return Math.min(MAX_DEPTH, 1 + Math.floor(DEQUE_BUDGET_MS / Math.max(estimatedMs, 0.001)));
}

/** The depth of a local worker: {@link targetDepth}, or 2 for long jobs when `holdNext`. */
export function workerDepth(estimatedMs: number | undefined, holdNext: boolean): number {
  const long = estimatedMs !== undefined && estimatedMs >= DEQUE_BUDGET_MS;
  return holdNext && long ? 2 : targetDepth(estimatedMs);
}

/**
 * While a function's cost is not known yet, a remote node behind a slow link holds its jobs as
 * if they took this long, out of a large backlog only ({@link UNKNOWN_BACKLOG_SHARE}). With
 * one job more than locally, as for long jobs, its CPUs ran out of jobs one round trip after
 * the first ones and idled through the next (2 ms jobs behind a 20 ms round trip: 21 ms of
 * each CPU, 3-4% of a 600 ms burst; bench/NOTES.md). A job that turns out long comes back by
 * a steal.
 */
export const UNKNOWN_LINK_MS = DEQUE_BUDGET_MS;

/**
 * Of the jobs waiting beyond what the other nodes take (per CPU of this node), a node holds at
 * most this share of jobs of unknown cost ahead of its CPUs: a few jobs of unknown cost are
 * never parked behind a slow link, whatever they turn out to take.
 */
export const UNKNOWN_BACKLOG_SHARE = 1 / 4;

/**
 * Greatest depth of a CPU for jobs of unknown cost: enough for 2 ms jobs behind a 20 ms round
 * trip. The handshake's round trip, the first measure of the link, is longer than the link's
 * when this process was busy then; until the pings say better, it must not park more.
 */
export const UNKNOWN_MAX_DEPTH = 16;

/**
 * Jobs per CPU that a remote node behind a link with round trip `rttMs` should hold: what a
 * CPU runs while results travel back and the next jobs travel out, on top of a local
 * worker's depth. Unknown cost: one more than locally, as for long jobs, and, out of a
 * backlog of `waitingPerCpu` jobs per CPU, enough jobs of {@link UNKNOWN_LINK_MS} to cover the
 * link ({@link UNKNOWN_MAX_DEPTH} at most).
 */
export function linkDepth(estimatedMs: number | undefined, rttMs: number, waitingPerCpu = 0): number {
  const local = targetDepth(estimatedMs);
  const rtt = Math.max(0, rttMs);
  if (estimatedMs === undefined) {
    const cover = Math.ceil((LINK_ROUND_TRIPS * rtt) / UNKNOWN_LINK_MS);
    const backlog = Math.floor(Math.max(0, waitingPerCpu) * UNKNOWN_BACKLOG_SHARE);
    return Math.min(UNKNOWN_MAX_DEPTH, local + Math.max(1, Math.min(cover, backlog)));
  }
  const cover = Math.ceil((LINK_ROUND_TRIPS * rtt) / Math.max(estimatedMs, 0.001));
  return Math.min(MAX_DEPTH, local + Math.max(1, cover));
}
