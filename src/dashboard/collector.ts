/**
 * What the dashboard shows, gathered cheaply while jobs run and summed up a few times a second.
 *
 * The server calls {@link Collector.ran} once per finished job and {@link Collector.failed} once
 * per failed job. Both are O(1) and allocate nothing on the common path: `ran` writes a few
 * numbers into a fixed ring of typed arrays, `failed` counts (and keeps the message of at most
 * {@link MAX_ERRORS_PER_UPDATE} errors per update). Everything else (rates, ETAs, the node
 * table, sampling the task stream) happens in {@link Collector.update}, which the dashboard
 * calls a few times a second while a page is connected.
 */
import type { NodeSummary, ServerStats } from '../stats.ts';
import { etaSeconds, RateMeter } from './rate.ts';

/** What the collector reads from the server: its public view, plus the per-group tallies. */
export interface DashboardSource {
  server: {
    getStats(): ServerStats;
    getActiveNodes(): NodeSummary[];
    on(event: 'node-up', listener: (node: NodeSummary) => void): unknown;
    on(event: 'node-down', listener: (node: NodeSummary, reason: string) => void): unknown;
    off(event: 'node-up' | 'node-down', listener: (...args: any[]) => void): unknown;
  };
  /** The groups with their current burst: total, finished, failed, pending. */
  groups(): Iterable<[string, { total: number; finished: number; failed: number; pending: number }]>;
}

/** Finished jobs remembered between two updates for the task stream (a power of two). */
export const RING_SIZE = 8192;
/** At most this many job bars per update; beyond it, an even sample of them. */
export const MAX_BARS_PER_UPDATE = 250;
/** Job errors kept with their message per update; the others are only counted. */
export const MAX_ERRORS_PER_UPDATE = 10;
/** Events a page gets when it connects. */
export const EVENT_HISTORY = 200;
const MAX_MESSAGE = 300;

/** One line of the events list. */
export interface DashboardEvent {
  /** Sequence number (a page shows each once). */
  seq: number;
  /** Server time, ms since the server started. */
  t: number;
  kind: 'node-up' | 'node-down' | 'node-error' | 'job-error';
  /** Node id for node events, `#id name` for job errors. */
  subject: string;
  message: string;
}

/** A row of the progress table. */
export interface GroupRow {
  name: string;
  total: number;
  finished: number;
  failed: number;
  pending: number;
  /** Jobs finished per second over the last seconds. */
  rate: number;
  /** Seconds left at that rate; null when unknown. */
  eta: number | null;
}

/** A row of the node table. */
export interface NodeRow {
  id: string;
  name: string;
  ncpus: number;
  /** Jobs running (at most ncpus). */
  busy: number;
  /** Jobs held beyond its CPUs (queued on the node). */
  queued: number;
  jobs: number;
  failed: number;
  meanMs: number;
  speed: number;
  rttMs: number;
  version: string | null;
  up: boolean;
}

/** One message to the page. */
export interface Update {
  /** Server time of this update, ms since the server started. */
  t: number;
  uptime: number;
  /** Jobs finished per second over all groups. */
  rate: number;
  groups: GroupRow[];
  nodes: NodeRow[];
  /** Node ids and function names the bars refer to by index (only grow). */
  nodeIds: string[];
  fns: string[];
  /** Job bars, 5 numbers each: node index, function index, start (server ms), duration ms, 1 if ok. */
  bars: number[];
  /** Jobs finished since the previous update that have no bar (sampled out). */
  unsampled: number;
  events: DashboardEvent[];
  /** Job errors since the previous update not listed in events. */
  moreErrors: number;
}

export class Collector {
  readonly #source: DashboardSource;
  readonly #t0: number;
  // The ring of finished jobs: end time, duration, node, function, ok.
  readonly #end = new Float64Array(RING_SIZE);
  readonly #dur = new Float64Array(RING_SIZE);
  readonly #node = new Uint16Array(RING_SIZE);
  readonly #fn = new Uint16Array(RING_SIZE);
  readonly #ok = new Uint8Array(RING_SIZE);
  #written = 0;
  #read = 0;
  readonly #nodeIndex = new Map<string, number>();
  readonly #nodeIds: string[] = [];
  readonly #fnIndex = new Map<string, number>();
  readonly #fns: string[] = [];
  readonly #nodeFailures = new Map<string, number>();
  readonly #down = new Set<string>();
  readonly #events: DashboardEvent[] = [];
  #seq = 0;
  #sentSeq = 0;
  #errorsThisUpdate = 0;
  #moreErrors = 0;
  readonly #rates = new Map<string, RateMeter>();
  readonly #allRate = new RateMeter();
  #allFinished = 0;
  readonly #onUp = (node: NodeSummary) => {
    this.#down.delete(node.id);
    // (its CPUs count once its workers are ready: the node table shows them)
    this.#event('node-up', node.id, `${node.name}${node.version ? `, pp-node ${node.version}` : ''}`);
  };
  readonly #onDown = (node: NodeSummary, reason: string) => {
    this.#down.add(node.id);
    this.#event('node-down', node.id, reason);
  };

  constructor(source: DashboardSource, t0: number) {
    this.#source = source;
    this.#t0 = t0;
    source.server.on('node-up', this.#onUp);
    source.server.on('node-down', this.#onDown);
  }

  /**
   * Results come in batches (one message from a worker or node carries many): the jobs of a
   * batch share the time it arrived, read once, since a clock read can cost more than all
   * the rest of the hook (~300 ns on a VM without a fast clock source).
   */
  #stamp = 0;
  #stamped = false;
  #lastNode: string | null = null;
  #lastNodeAt = 0;
  #lastFn: string | null = null;
  #lastFnAt = 0;
  readonly #unstamp = (): void => {
    this.#stamped = false;
  };

  /** A job finished on `nodeId` after running `durationMs` (hot path: O(1), no allocation). */
  ran(nodeId: string, fnName: string, durationMs: number, ok: boolean): void {
    if (!this.#stamped) {
      this.#stamped = true;
      this.#stamp = performance.now() - this.#t0;
      queueMicrotask(this.#unstamp);
    }
    const at = this.#written++ & (RING_SIZE - 1);
    this.#end[at] = this.#stamp;
    this.#dur[at] = durationMs;
    // Consecutive jobs mostly come from one node and run one function: compare before a lookup.
    if (nodeId !== this.#lastNode) {
      this.#lastNode = nodeId;
      this.#lastNodeAt = this.#indexOf(this.#nodeIndex, this.#nodeIds, nodeId);
    }
    if (fnName !== this.#lastFn) {
      this.#lastFn = fnName;
      this.#lastFnAt = this.#indexOf(this.#fnIndex, this.#fns, fnName);
    }
    this.#node[at] = this.#lastNodeAt;
    this.#fn[at] = this.#lastFnAt;
    this.#ok[at] = ok ? 1 : 0;
    this.#allFinished++;
  }

  /** A job failed (its own error, a crash, a timeout, a cancel); `nodeId` null if it never ran. */
  failed(jobId: number, name: string, nodeId: string | null, error: unknown): void {
    if (nodeId !== null) this.#nodeFailures.set(nodeId, (this.#nodeFailures.get(nodeId) ?? 0) + 1);
    if (this.#errorsThisUpdate >= MAX_ERRORS_PER_UPDATE) {
      this.#moreErrors++;
      return;
    }
    this.#errorsThisUpdate++;
    this.#event('job-error', `#${jobId} ${name}${nodeId ? ` on ${nodeId}` : ''}`, messageOf(error));
  }

  /** A remote node cannot be used (wrong secret, unreachable...). */
  nodeError(nodeId: string, error: Error): void {
    this.#event('node-error', nodeId, messageOf(error));
  }

  #indexOf(index: Map<string, number>, names: string[], name: string): number {
    let i = index.get(name);
    if (i === undefined) {
      // (past 65,535 names, which no program has, the rest share the last index)
      i = Math.min(names.length, 0xffff);
      if (i < 0xffff) {
        index.set(name, i);
        names.push(name);
      }
    }
    return i;
  }

  #event(kind: DashboardEvent['kind'], subject: string, message: string): void {
    const t = performance.now() - this.#t0;
    this.#events.push({ seq: ++this.#seq, t, kind, subject, message: clip(message) });
    if (this.#events.length > EVENT_HISTORY) this.#events.shift();
  }

  /** Everything so far, for a page that just connected (all remembered events, no bars). */
  snapshot(): Update {
    return this.#summary(this.#events.slice());
  }

  /** What changed since the previous update: the message sent to every page. */
  update(): Update {
    const fresh: DashboardEvent[] = [];
    for (const e of this.#events) if (e.seq > this.#sentSeq) fresh.push(e);
    this.#sentSeq = this.#seq;
    const u = this.#summary(fresh);
    this.#takeBars(u);
    u.moreErrors = this.#moreErrors;
    this.#moreErrors = 0;
    this.#errorsThisUpdate = 0;
    return u;
  }

  #summary(events: DashboardEvent[]): Update {
    const now = performance.now() - this.#t0;
    const groups: GroupRow[] = [];
    for (const [name, p] of this.#source.groups()) {
      let meter = this.#rates.get(name);
      if (!meter) this.#rates.set(name, (meter = new RateMeter()));
      const rate = meter.sample(p.finished, now);
      const { total, finished, failed, pending } = p;
      groups.push({ name, total, finished, failed, pending, rate, eta: etaSeconds(pending, rate) ?? null });
    }
    const stats = this.#source.server.getStats();
    const active = new Map(this.#source.server.getActiveNodes().map((n) => [n.id, n]));
    const nodes: NodeRow[] = stats.nodes.map((s) => {
      const a = active.get(s.node);
      return {
        id: s.node,
        name: a?.name ?? s.node,
        ncpus: a?.ncpus ?? 0,
        busy: a ? Math.min(a.inFlight, a.ncpus) : 0,
        queued: a ? Math.max(0, a.inFlight - a.ncpus) : 0,
        jobs: s.jobs,
        failed: this.#nodeFailures.get(s.node) ?? 0,
        meanMs: s.timePerJob * 1000,
        speed: s.speed,
        rttMs: a?.rttMs ?? 0,
        version: a?.version ?? null,
        up: a !== undefined && !this.#down.has(s.node),
      };
    });
    return {
      t: now,
      uptime: stats.uptime,
      rate: this.#allRate.sample(this.#allFinished, now),
      groups,
      nodes,
      nodeIds: this.#nodeIds,
      fns: this.#fns,
      bars: [],
      unsampled: 0,
      events,
      moreErrors: 0,
    };
  }

  /** The jobs finished since the previous update, at most MAX_BARS_PER_UPDATE of them evenly sampled. */
  #takeBars(u: Update): void {
    const written = this.#written;
    const finished = written - this.#read;
    const from = Math.max(this.#read, written - RING_SIZE);
    const n = written - from;
    const take = Math.min(n, MAX_BARS_PER_UPDATE);
    const bars: number[] = new Array(take * 5);
    for (let k = 0; k < take; k++) {
      const at = (from + Math.floor((k * n) / take)) & (RING_SIZE - 1);
      const dur = this.#dur[at]!;
      bars[k * 5] = this.#node[at]!;
      bars[k * 5 + 1] = this.#fn[at]!;
      bars[k * 5 + 2] = round2(this.#end[at]! - dur);
      bars[k * 5 + 3] = round2(dur);
      bars[k * 5 + 4] = this.#ok[at]!;
    }
    this.#read = written;
    u.bars = bars;
    u.unsampled = finished - take;
  }

  /** Stops listening to the server. */
  close(): void {
    this.#source.server.off('node-up', this.#onUp);
    this.#source.server.off('node-down', this.#onDown);
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function clip(s: string): string {
  return s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE - 1)}…` : s;
}

/** An error's message; never throws. */
function messageOf(value: unknown): string {
  try {
    if (value instanceof Error) return `${value.name}: ${value.message}`;
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
