/**
 * A deterministic simulation of a client scheduling jobs over remote nodes, with a simulated
 * clock: the scheduler's pure policy (src/scheduler/) decides exactly as the Server does, and
 * simulated nodes run jobs on their CPUs, answer steals and send results back over links with
 * a round trip. No timers, no sockets: the same inputs give the same makespan, so a policy
 * change shows as a number, not as noise.
 *
 * A node is modelled as a pp-node is: its own queue, and workers that run one job and hold the
 * next behind it once the function is known to be long, but not very long (as daemon/jobs.ts). A job that a worker does not hold
 * starts a trip through the node's process later (`tripMs`); a steal gets the jobs in the
 * node's queue at once, one a worker holds when the job ahead of it ends.
 *
 * What it leaves out: the local pool's workers (every node here is remote), job timeouts and
 * failures, and the cost of messages themselves.
 */
import { DEQUE_BUDGET_MS, linkDepth, nodeHoldsNext, targetDepth } from '../../src/scheduler/depth.ts';
import { Dispatcher } from '../../src/scheduler/dispatcher.ts';
import { Fifo } from '../../src/scheduler/fifo.ts';
import {
  assignJobs,
  DurationEstimate,
  type NodeLoad,
  placeJobs,
  planSteals,
  stealDelayOf,
  takeNewestFirst,
} from '../../src/scheduler/policy.ts';
import { RunTimes } from '../../src/scheduler/run-times.ts';
import { NodeSpeed } from '../../src/scheduler/speed.ts';

export interface SimNode {
  ncpus: number;
  /** Its jobs take this many times their base duration. */
  slowdown: number;
  rttMs: number;
  /** Usable from this time on (a node that joins); default 0. */
  joinAtMs?: number;
  /** Stops at this time: its queued jobs go back to the client, running ones finish. */
  stopAtMs?: number;
  /** From the node's queue to a worker, ms (a trip through its process); default {@link TRIP_MS}. */
  tripMs?: number;
}

/** A job's trip from a node's queue to a worker that did not hold it: measured here at 1-2 ms. */
export const TRIP_MS = 1;

export interface SimOutcome {
  makespanMs: number;
  /** Lower bound: total work over the capacity (counted from when each node is usable), or the longest job on the fastest CPU. */
  boundMs: number;
  ratio: number;
  /** Jobs that ran, per node. */
  ran: number[];
  /** Jobs run more than once, or never (must both be 0). */
  duplicates: number;
  missing: number;
  steals: number;
  /** Each run: job, node, start and end (ms). */
  runs: Array<{ id: number; node: number; start: number; end: number }>;
}

type Event =
  | { t: number; kind: 'arrive'; node: number; ids: number[] }
  | { t: number; kind: 'finish'; node: number; cpu: number; id: number; ms: number }
  | { t: number; kind: 'result'; node: number; id: number; ms: number }
  | { t: number; kind: 'stealAsk'; node: number; ids: number[] }
  | { t: number; kind: 'stealAnswer'; node: number; ids: number[] }
  | { t: number; kind: 'stop'; node: number }
  | { t: number; kind: 'requeue'; node: number; ids: number[] }
  | { t: number; kind: 'join'; node: number };

const HASH = 'f';

/** What a simulation leaves out of the Server's policy, to show what that part does. */
export interface SimOptions {
  /** Never take the queue newest first (policy.ts takeNewestFirst); default false. */
  inOrder?: boolean;
}

/** Runs `jobs` (base durations, ms, in submission order) over `nodes`; `stealing` as Server's option. */
export function simulate(
  nodes: readonly SimNode[],
  jobs: readonly number[],
  stealing: boolean,
  options: SimOptions = {},
): SimOutcome {
  const events: Event[] = [];
  let seq = 0;
  const order = new Map<Event, number>();
  const at = (e: Event) => {
    order.set(e, seq++);
    // Sorted insert (stable by insertion for equal times): the queues here stay short.
    let lo = 0;
    let hi = events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (events[mid]!.t <= e.t) lo = mid + 1;
      else hi = mid;
    }
    events.splice(lo, 0, e);
  };
  const estimate = new DurationEstimate();
  const runTimes = new RunTimes();
  const client = nodes.map(() => ({
    up: false,
    stopping: false,
    sent: new Set<number>(), // insertion order: oldest first
    asked: new Set<number>(),
    pendingUntil: 0,
    speed: new NodeSpeed(),
  }));
  /** The node's side: its own queue, and per worker the job it runs and the one it holds next. */
  const node = nodes.map((n) => ({
    up: false,
    deque: [] as number[],
    cpus: Array.from({ length: n.ncpus }, () => ({ running: -1, held: -1 })),
    /** Held jobs a steal (or the node's stop) asked back: given back when the job ahead ends. */
    askedBack: new Set<number>(),
    estimate: new DurationEstimate(),
  }));
  const ranCount = new Map<number, number>();
  const ran = nodes.map(() => 0);
  const queue = new Fifo<number>();
  for (let id = 0; id < jobs.length; id++) queue.push(id);
  let done = 0;
  let steals = 0;
  let now = 0;
  let lastDone = 0;
  const runs: SimOutcome['runs'] = [];

  const msOn = (i: number) => client[i]!.speed.msPerJob(HASH, estimate.value) ?? estimate.value;
  const roomOf = (i: number, ms: number | undefined) => {
    const c = client[i]!;
    if (!c.up || c.stopping) return 0;
    const n = nodes[i]!;
    const depth = stealing ? linkDepth(ms, n.rttMs) : targetDepth(ms) + 1;
    return Math.max(0, n.ncpus * depth - c.sent.size);
  };
  const loads = (withStealable: boolean): NodeLoad[] =>
    nodes.map((n, i) => {
      const c = client[i]!;
      const ms = msOn(i);
      const usable = c.up && !c.stopping;
      return {
        ncpus: usable ? n.ncpus : 0,
        held: c.sent.size,
        room: roomOf(i, ms),
        msPerJob: ms,
        rttMs: n.rttMs,
        stealable:
          withStealable && usable && now >= c.pendingUntil
            ? Math.max(0, c.sent.size - n.ncpus - c.asked.size)
            : 0,
        stealDelayMs: stealDelayOf(false, n.rttMs, n.ncpus, c.sent.size, ms),
        tailMs: ms === undefined ? undefined : ms * runTimes.tailFactor,
      };
    });

  // The scheduler's one dispatch loop, as in the Server, with its placement (policy.ts).
  const targets = nodes.map((_, i) => ({ i, room: () => roomOf(i, msOn(i)) }));
  const dispatcher = new Dispatcher<number, (typeof targets)[number]>(
    queue,
    {
      place: (_next, queued) =>
        stealing
          ? placeJobs(queued, loads(false))
          : assignJobs(
              queued,
              targets.map((t) => t.room()),
            ),
      drained: () => {
        if (stealing && nodes.length > 1) steal();
      },
      heldBack: () => {},
    },
    {
      gone: () => false,
      runsOn: () => true,
      send: ({ i }, ids) => {
        for (const id of ids) client[i]!.sent.add(id);
        at({ t: now + nodes[i]!.rttMs / 2, kind: 'arrive', node: i, ids });
      },
    },
  );
  // As the Server: the last jobs of a burst that grows with submission order, longest first
  // (nothing is submitted after the start here, so never back in order but by the option).
  const drain = () => {
    if (stealing && nodes.length > 1)
      queue.newestFirst = takeNewestFirst(queue.size, runTimes.grows, options.inOrder === true);
    dispatcher.run(targets);
  };

  const steal = () => {
    const l = loads(true);
    if (!l.some((x) => x.stealable > 0)) return;
    planSteals(l).forEach((k, i) => {
      if (k === 0) return;
      const c = client[i]!;
      const all = [...c.sent];
      const ids: number[] = [];
      for (let j = all.length - 1; j >= nodes[i]!.ncpus && ids.length < k; j--)
        if (!c.asked.has(all[j]!)) ids.push(all[j]!);
      if (ids.length === 0) return;
      for (const id of ids) c.asked.add(id);
      c.pendingUntil = now + 4 * nodes[i]!.rttMs + 100;
      steals++;
      at({ t: now + nodes[i]!.rttMs / 2, kind: 'stealAsk', node: i, ids });
    });
  };

  const run = (i: number, cpu: number, id: number, startAt: number) => {
    node[i]!.cpus[cpu]!.running = id;
    const ms = jobs[id]! * nodes[i]!.slowdown;
    runs.push({ id, node: i, start: startAt, end: startAt + ms });
    at({ t: startAt + ms, kind: 'finish', node: i, cpu, id, ms });
  };

  /** The node hands jobs of its queue to its workers, as daemon/jobs.ts does. */
  const start = (i: number) => {
    const n = node[i]!;
    if (!n.up) return;
    const est = n.estimate.value;
    const long = est !== undefined && est >= DEQUE_BUDGET_MS && nodeHoldsNext(est);
    const idle = n.cpus.filter((c) => c.running < 0);
    const canHold = long ? n.cpus.filter((c) => c.held < 0).length - idle.length : 0;
    let give = Math.min(n.deque.length, idle.length + Math.max(0, canHold));
    const trip = nodes[i]!.tripMs ?? TRIP_MS;
    for (let cpu = 0; cpu < n.cpus.length && give > 0; cpu++)
      if (n.cpus[cpu]!.running < 0) {
        run(i, cpu, n.deque.shift()!, now + trip);
        give--;
      }
    for (const c of n.cpus)
      if (give > 0 && c.held < 0) {
        c.held = n.deque.shift()!;
        give--;
      }
  };

  const takeBack = (i: number, ids: readonly number[]) => {
    const c = client[i]!;
    const back = ids.filter((id) => c.sent.delete(id));
    for (const id of ids) c.asked.delete(id);
    queue.unshiftAll(back);
  };

  nodes.forEach((n, i) => {
    at({ t: n.joinAtMs ?? 0, kind: 'join', node: i });
    if (n.stopAtMs !== undefined) at({ t: n.stopAtMs, kind: 'stop', node: i });
  });

  while (events.length > 0) {
    const e = events.shift()!;
    now = e.t;
    switch (e.kind) {
      case 'join':
        node[e.node]!.up = true;
        // The client hears of it a round trip later (connect, welcome).
        client[e.node]!.up = true;
        break;
      case 'arrive': {
        const n = node[e.node]!;
        if (n.up) {
          n.deque.push(...e.ids);
          start(e.node);
        } else at({ t: now + nodes[e.node]!.rttMs / 2, kind: 'requeue', node: e.node, ids: e.ids });
        break;
      }
      case 'finish': {
        const n = node[e.node]!;
        const cpu = n.cpus[e.cpu]!;
        cpu.running = -1;
        n.estimate.add(e.ms);
        ranCount.set(e.id, (ranCount.get(e.id) ?? 0) + 1);
        ran[e.node]!++;
        at({ t: now + nodes[e.node]!.rttMs / 2, kind: 'result', node: e.node, id: e.id, ms: e.ms });
        const held = cpu.held;
        cpu.held = -1;
        if (held >= 0) {
          // The worker reads its messages between jobs: a withdraw of the held job wins now.
          if (n.askedBack.delete(held))
            at({
              t: now + nodes[e.node]!.rttMs / 2,
              kind: n.up ? 'stealAnswer' : 'requeue',
              node: e.node,
              ids: [held],
            });
          else run(e.node, e.cpu, held, now);
        }
        start(e.node);
        break;
      }
      case 'result': {
        const c = client[e.node]!;
        if (!c.sent.delete(e.id)) break;
        c.asked.delete(e.id);
        runTimes.add(e.id, e.ms, msOn(e.node), e.node);
        c.speed.add(HASH, e.ms, estimate.value);
        estimate.add(e.ms);
        done++;
        lastDone = now;
        break;
      }
      case 'stealAsk': {
        const n = node[e.node]!;
        const want = new Set(e.ids);
        const given = n.deque.filter((id) => want.has(id));
        n.deque = n.deque.filter((id) => !want.has(id));
        for (const c of n.cpus) if (want.has(c.held)) n.askedBack.add(c.held);
        at({ t: now + nodes[e.node]!.rttMs / 2, kind: 'stealAnswer', node: e.node, ids: given });
        break;
      }
      case 'stealAnswer':
        client[e.node]!.pendingUntil = 0;
        takeBack(e.node, e.ids);
        break;
      case 'stop': {
        const n = node[e.node]!;
        n.up = false;
        const ids = n.deque;
        n.deque = [];
        for (const c of n.cpus) if (c.held >= 0) n.askedBack.add(c.held);
        at({ t: now + nodes[e.node]!.rttMs / 2, kind: 'requeue', node: e.node, ids });
        break;
      }
      case 'requeue':
        client[e.node]!.stopping = true;
        takeBack(e.node, e.ids);
        break;
    }
    // As the Server: one drain per turn, after whatever the event changed.
    if (e.kind !== 'finish' && e.kind !== 'arrive' && e.kind !== 'stealAsk' && e.kind !== 'stop') drain();
  }

  let duplicates = 0;
  let missing = 0;
  for (let id = 0; id < jobs.length; id++) {
    const k = ranCount.get(id) ?? 0;
    if (k === 0) missing++;
    if (k > 1) duplicates++;
  }
  if (done !== jobs.length) missing = Math.max(missing, jobs.length - done);
  const boundMs = lowerBound(nodes, jobs);
  return { makespanMs: lastDone, boundMs, ratio: lastDone / boundMs, ran, duplicates, missing, steals, runs };
}

/**
 * The least makespan any scheduler could reach: the work over the capacity, where capacity is
 * CPUs over slowdown and counts from when each node is usable (until it stops), or the longest
 * job on the fastest CPU, whichever is larger.
 */
export function lowerBound(nodes: readonly SimNode[], jobs: readonly number[]): number {
  let work = 0;
  for (const j of jobs) work += j;
  const fastest = Math.min(...nodes.map((n) => n.slowdown));
  const longest = Math.max(...jobs) * fastest;
  // Smallest T with sum over nodes of capacity x usable time in [join, min(stop, T)] >= work.
  const usable = (T: number) =>
    nodes.reduce((s, n) => {
      const from = n.joinAtMs ?? 0;
      const to = Math.min(T, n.stopAtMs ?? Number.POSITIVE_INFINITY);
      return s + Math.max(0, to - from) * (n.ncpus / n.slowdown);
    }, 0);
  let lo = 0;
  let hi = 1;
  while (usable(hi) < work) hi *= 2;
  for (let k = 0; k < 60; k++) {
    const mid = (lo + hi) / 2;
    if (usable(mid) >= work) hi = mid;
    else lo = mid;
  }
  return Math.max(hi, longest);
}

/** A seeded PRNG (mulberry32), so both policies see the same jobs. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Heavy-tailed durations (Pareto, shape 1.2) from `minMs`, cut at `maxMs`. */
export function paretoJobs(count: number, minMs: number, maxMs: number, seed: number): number[] {
  const rnd = prng(seed);
  return Array.from({ length: count }, () => Math.min(maxMs, minMs / (1 - rnd()) ** (1 / 1.2)));
}
