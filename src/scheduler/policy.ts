/**
 * Scheduling policy, kept pure so it can be reasoned about and tested alone: from numbers
 * only (jobs queued, jobs each node holds and has room for, its speed, its link's round
 * trip) decide how many jobs each node gets, and which nodes should give jobs back to
 * others (work stealing). No sockets, no timers: the server acts on the answers.
 *
 * Two regimes. While many jobs wait, every node simply gets what it has room for
 * ({@link assignJobs}, {@link roomOfNodes}). Near the end of a burst, where a job runs
 * decides when the burst ends: each job goes to the node that would finish it first
 * ({@link placeByFinish}), and when nothing waits any more, a node with room takes back the
 * unstarted jobs of the node that would finish last, if it would finish them sooner
 * ({@link planSteals}). Each node's last job is counted at a pessimistic run time where run
 * times spread (NodeLoad.tailMs), and the last jobs of a burst whose run times grow with
 * submission order are taken longest first ({@link takeNewestFirst}).
 */

import { nodeHoldsNext } from './depth.ts';

/** A node as placement sees it (nodes/compute-node.ts's ComputeNode is one): its room for jobs. */
export interface HasRoom {
  /** How many more jobs of `estimatedMs` it takes now, with `waiting` more queued (ComputeNode.room). */
  room(estimatedMs: number | undefined, waiting: number): number;
}

/**
 * Splits `queued` jobs over nodes that have room for `free[i]` jobs each. When there is less
 * work than room, the work is spread in proportion to the room (largest remainder), so that
 * no node idles while another holds a backlog; ties go to the earlier node.
 */
export function assignJobs(queued: number, free: readonly number[]): number[] {
  const counts = free.map(() => 0);
  let room = 0;
  for (const f of free) room += Math.max(0, f);
  if (queued <= 0 || room === 0) return counts;
  if (queued >= room) return free.map((f) => Math.max(0, f));
  const remainders: Array<[index: number, frac: number]> = [];
  let given = 0;
  free.forEach((f, i) => {
    if (f <= 0) return;
    const exact = (queued * f) / room;
    counts[i] = Math.floor(exact);
    given += counts[i]!;
    remainders.push([i, exact - counts[i]!]);
  });
  remainders.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  for (let k = 0; given < queued; k++, given++) counts[remainders[k % remainders.length]![0]]!++;
  return counts;
}

/**
 * Each node's room for `queued` jobs, by its own `room`. A node may hold jobs ahead of its
 * CPUs only with what the other nodes' plain room (waiting 0) leaves waiting: never while
 * another node has idle CPUs.
 */
export function roomOfNodes(
  nodes: readonly HasRoom[],
  estimatedMs: number | undefined,
  queued: number,
): number[] {
  const plain = nodes.map((n) => n.room(estimatedMs, 0));
  let total = 0;
  for (const p of plain) total += p;
  return nodes.map((n, i) => n.room(estimatedMs, queued - (total - plain[i]!)));
}

/**
 * Splits `count` jobs over workers that hold `loads[i]` jobs and have room for `caps[i]`
 * more, as if each job in turn went to the least loaded worker with room (ties to the
 * earlier one): two idle workers get one job each before either gets a second. Gives out at
 * most the total room.
 */
export function levelFill(loads: readonly number[], caps: readonly number[], count: number): number[] {
  let room = 0;
  for (const c of caps) room += Math.max(0, c);
  const total = Math.min(count, room);
  const counts = loads.map(() => 0);
  if (!(total > 0 && Number.isSafeInteger(total))) return counts; // also NaN, Infinity
  // Jobs given if every worker is filled up to `level` (as far as its room allows).
  const upTo = (level: number): number => {
    let n = 0;
    for (let i = 0; i < loads.length; i++)
      n += Math.min(Math.max(0, caps[i]!), Math.max(0, level - loads[i]!));
    return n;
  };
  // The lowest level that takes them all: binary search from the least load up to the most
  // load plus all the jobs, which takes them all whatever the caps (and stays finite).
  let lo = Math.min(...loads);
  let hi = Math.max(...loads) + total;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (upTo(mid) >= total) hi = mid;
    else lo = mid + 1;
  }
  // Everyone up to the level below it, then the rest one each, earlier workers first.
  let given = 0;
  for (let i = 0; i < loads.length; i++) {
    counts[i] = Math.min(Math.max(0, caps[i]!), Math.max(0, lo - 1 - loads[i]!));
    given += counts[i]!;
  }
  for (let i = 0; i < loads.length && given < total; i++) {
    if (counts[i]! < caps[i]! && loads[i]! + counts[i]! === lo - 1) {
      counts[i]!++;
      given++;
    }
  }
  return counts;
}

/**
 * Running mean of a function's job durations, weighted toward recent jobs so that the
 * estimate follows a function whose cost changes with its arguments.
 */
export class DurationEstimate {
  private mean = 0;
  private n = 0;
  add(ms: number): void {
    this.n++;
    // Exact mean for the first jobs, then an exponential moving average.
    const weight = this.n < 20 ? 1 / this.n : 0.05;
    this.mean += (ms - this.mean) * weight;
  }
  get value(): number | undefined {
    return this.n === 0 ? undefined : this.mean;
  }
}

/** What the policy knows of one node at a decision. */
export interface NodeLoad {
  /** CPUs that run jobs now (0: the node takes nothing). */
  readonly ncpus: number;
  /** Jobs it holds: running, and queued there. */
  readonly held: number;
  /** How many more it takes right now. */
  readonly room: number;
  /** Expected run time of the jobs in question on this node, ms; undefined: not known yet. */
  readonly msPerJob: number | undefined;
  /** Round trip of its link, ms (0 for the local pool). */
  readonly rttMs: number;
  /** Jobs it holds that it could give back now (unstarted, not already asked for). */
  readonly stealable: number;
  /**
   * How long until it answers a steal, ms: a remote node's round trip; a local pool's worker
   * answers only when the job it runs ends. Default: `rttMs`.
   */
  readonly stealDelayMs?: number;
  /**
   * A pessimistic run time of the job in question on this node, ms: a high quantile of such
   * jobs' run times (run-times.ts RunTimes.tailFactor). Where the last job placed on a node
   * would end is counted with it: a job that may turn out long must not start on a slow CPU
   * when the burst is about to end. Default: `msPerJob`.
   */
  readonly tailMs?: number;
}

/**
 * How long until a node answers a steal, ms. A local pool's worker gives back the job it holds
 * next only when the job it runs ends (half a job, on average). A remote node gives back the
 * jobs in its own queue within its round trip; those its workers hold behind the job they run
 * (jobs shorter than depth.ts HOLD_NEXT_BELOW_MS: all it holds beyond one per CPU, while it
 * holds two or fewer per CPU) likewise only when that job ends.
 */
export function stealDelayOf(
  local: boolean,
  rttMs: number,
  ncpus: number,
  held: number,
  msPerJob: number | undefined,
): number {
  const heldInWorkers = local || (held <= 2 * ncpus && msPerJob !== undefined && nodeHoldsNext(msPerJob));
  return (local ? 0 : rttMs) + (heldInWorkers ? 0.5 * (msPerJob ?? UNKNOWN_MS) : 0);
}

/** Queued jobs placed one by one by expected finish time: more would cost more than they save. */
export const FINISH_WINDOW = 256;

/**
 * A steal must bring a job's expected finish forward by this share of the victim's time per
 * job, so that estimates that are a little off do not move jobs to and fro.
 */
export const STEAL_MARGIN = 0.1;

/** Most jobs one planning round moves. */
const MAX_STEALS_PER_ROUND = 1024;

/** Taken for a job of unknown cost: long, as in depth.ts, so that it goes where CPUs idle. */
export const UNKNOWN_MS = 50;

/**
 * Time for `node` to run `count` jobs of its queue (the jobs running now taken as half done):
 * rounds of its CPUs.
 */
function workOf(node: NodeLoad, count: number): number {
  if (count <= 0) return 0;
  const ms = node.msPerJob ?? UNKNOWN_MS;
  const rounds = Math.floor((count - 1) / Math.max(1, node.ncpus));
  return (rounds > 0 ? (rounds - 0.5) * ms : 0) + tailOf(node);
}

/** The last job's pessimistic run time on `node` (NodeLoad.tailMs). */
function tailOf(node: NodeLoad): number {
  const ms = node.msPerJob ?? UNKNOWN_MS;
  return node.tailMs !== undefined && node.tailMs > ms ? node.tailMs : ms;
}

/**
 * When the `extra`-th job given to `node` now (1 = the next one) would be done and its result
 * back, from now: after the jobs it holds, or a round trip and its own run time, whichever is
 * later. (What a node holds, as the client counts it, lags by half a round trip, and so do its
 * results: the link cancels out of a busy node's backlog.)
 */
export function finishOf(node: NodeLoad, extra: number): number {
  return Math.max(node.rttMs + tailOf(node), workOf(node, node.held + extra));
}

/** When the last of the jobs `node` holds, but for `removed` of them, would be done and back. */
function lastFinishOf(node: NodeLoad, removed: number): number {
  const held = node.held - removed;
  return held <= 0 ? 0 : Math.max(node.rttMs / 2, workOf(node, held));
}

/**
 * Places the first `queued` jobs of the queue (at most {@link FINISH_WINDOW}) one by one on the
 * node that would finish each first, counting those placed before it (earliest finish time,
 * as in list scheduling). Returns how many each node gets now: a job whose best node has no
 * room stays queued for it, rather than start on a node that would finish it later (near
 * the end of a burst, a slow CPU must not take a job that a busy fast one finishes sooner).
 */
export function placeByFinish(queued: number, nodes: readonly NodeLoad[]): number[] {
  const counts = nodes.map(() => 0);
  const placed = nodes.map(() => 0);
  const window = Math.min(queued, FINISH_WINDOW);
  for (let j = 0; j < window; j++) {
    let best = -1;
    let bestAt = Number.POSITIVE_INFINITY;
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i]!;
      if (!(n.ncpus > 0)) continue;
      const at = finishOf(n, placed[i]! + 1);
      if (at < bestAt) {
        best = i;
        bestAt = at;
      }
    }
    if (best < 0) break;
    placed[best]!++;
    if (counts[best]! < nodes[best]!.room) counts[best]!++;
  }
  return counts;
}

/**
 * The job server's placement of `queued` jobs over nodes (nodes/compute-node.ts) with several
 * to balance: while many wait, each node gets its room ({@link assignJobs}); near the end of
 * a burst ({@link FINISH_WINDOW} or fewer), each job goes to the node that would finish it
 * first ({@link placeByFinish}). Returns a count per node.
 */
export function placeJobs(queued: number, nodes: readonly NodeLoad[]): number[] {
  if (queued <= FINISH_WINDOW) return placeByFinish(queued, nodes);
  return assignJobs(
    queued,
    nodes.map((n) => n.room),
  );
}

/**
 * Whether the job server takes its queued jobs from the newest end, longest first: near the
 * end of a burst ({@link FINISH_WINDOW} or fewer queued, more than one) of jobs whose run times
 * grow with submission order (run-times.ts RunTimes.grows). Never while `inOrder`: a job
 * submitted since turns the queue back to submission order until it has emptied, so that no
 * job waits behind ever newer ones.
 */
export function takeNewestFirst(queued: number, grows: boolean, inOrder: boolean): boolean {
  return grows && !inOrder && queued > 1 && queued <= FINISH_WINDOW;
}

/**
 * Work stealing, for when no job waits in the queue: how many jobs each node should give back
 * (the newest of those it holds unstarted), so that nodes with room run them sooner. Jobs move
 * one at a time from the node whose last job would finish last to the node with room that
 * would finish it first, as long as that is sooner by a margin; a stolen job first pays the
 * victim's round trip (the ask and the answer) and then the thief's. Returns a count per node.
 */
export function planSteals(nodes: readonly NodeLoad[]): number[] {
  const taken = nodes.map(() => 0);
  const incoming = nodes.map(() => 0);
  for (let step = 0; step < MAX_STEALS_PER_ROUND; step++) {
    let victim = -1;
    let victimAt = 0;
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i]!;
      if (n.stealable - taken[i]! <= 0 || incoming[i]! > 0) continue;
      const at = lastFinishOf(n, taken[i]!);
      if (at > victimAt) {
        victim = i;
        victimAt = at;
      }
    }
    if (victim < 0) break;
    const v = nodes[victim]!;
    let thief = -1;
    let thiefAt = Number.POSITIVE_INFINITY;
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i]!;
      if (i === victim || taken[i]! > 0 || !(n.ncpus > 0) || n.room - incoming[i]! <= 0) continue;
      // The ask and the answer, then the thief's own link, or its backlog if that is longer.
      const at = Math.max(
        (v.stealDelayMs ?? v.rttMs) + n.rttMs + tailOf(n),
        workOf(n, n.held + incoming[i]! + 1),
      );
      if (at < thiefAt) {
        thief = i;
        thiefAt = at;
      }
    }
    if (thief < 0) break;
    if (!(thiefAt + STEAL_MARGIN * (v.msPerJob ?? UNKNOWN_MS) < victimAt)) break;
    taken[victim]!++;
    incoming[thief]!++;
  }
  return taken;
}

/**
 * A running job is late once it has run this many times as long as jobs of its function
 * take on its node (Spark's speculation multiplier).
 */
export const LATE_AFTER = 1.5;

/**
 * How long a job must have run on a node where such jobs take `msThere` before a backup copy
 * on an idle node, where it would take `msHere` plus the link's round trip, is worth it: it
 * must be late there, and the copy must be expected to take less than the job has already
 * run (a job that ran long is likely to run longer still, as heavy tails go). Undefined while
 * `msThere` is unknown.
 */
export function backupAfterMs(
  msThere: number | undefined,
  msHere: number | undefined,
  rttHereMs: number,
): number | undefined {
  if (msThere === undefined) return undefined;
  return Math.max(LATE_AFTER * msThere, (msHere ?? msThere) + rttHereMs);
}
