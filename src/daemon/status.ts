/**
 * A node's answer to 'status' (protocol 3+): counts kept as jobs end, and the report built from
 * them and from what the daemon knows at that moment. Kept out of daemon.ts; the daemon calls
 * `finished` / `failed` as jobs end and `report` when a client asks.
 */
import { freemem, loadavg, totalmem } from 'node:os';
import { JobStatus } from '../protocol/messages.ts';
import type { NodeStatus } from '../protocol/status.ts';

/** Seconds over which jobs/s is counted (the current second included, in part). */
export const RATE_WINDOW_S = 5;
/** Per-second buckets kept (a ring): more than the window, so that old ones are always cleared. */
const BUCKETS = 8;

/** What the daemon knows at the moment of a report. */
export type DaemonFacts = Pick<
  NodeStatus,
  'id' | 'name' | 'version' | 'protocol' | 'ncpus' | 'ready' | 'busy' | 'queued' | 'clients' | 'monitors'
>;

export class StatusBook {
  #done = 0;
  #failures = 0;
  readonly #counts = new Float64Array(BUCKETS);
  /** Which second of the clock each bucket counts. */
  readonly #seconds = new Float64Array(BUCKETS).fill(-1);
  readonly #startedAt: number;
  readonly #now: () => number;

  /** @param now clock in ms (tests); default performance.now. */
  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
    this.#startedAt = now();
  }

  /** A job ended with this status (from its worker). Cancelled jobs do not count. */
  finished(status: JobStatus): void {
    if (status === JobStatus.Cancelled) return;
    if (status !== JobStatus.Ok) this.#failures++;
    this.#count();
  }

  /** A job failed through no fault of its code (its worker crashed, it timed out). */
  failed(): void {
    this.#failures++;
    this.#count();
  }

  #count(): void {
    this.#done++;
    const sec = Math.floor(this.#now() / 1000);
    const i = sec % BUCKETS;
    if (this.#seconds[i] !== sec) {
      this.#seconds[i] = sec;
      this.#counts[i] = 0;
    }
    this.#counts[i]!++;
  }

  /** Jobs done per second over the last RATE_WINDOW_S seconds (or since start, if shorter). */
  jobsPerSecond(): number {
    const now = this.#now();
    const sec = Math.floor(now / 1000);
    let n = 0;
    for (let i = 0; i < BUCKETS; i++) {
      const s = this.#seconds[i]!;
      if (s > sec - RATE_WINDOW_S && s <= sec) n += this.#counts[i]!;
    }
    // The window: RATE_WINDOW_S - 1 whole seconds and the part of this one gone by.
    const window = Math.min(RATE_WINDOW_S - 1 + (now / 1000 - sec), (now - this.#startedAt) / 1000);
    return window > 0 ? n / window : 0;
  }

  get done(): number {
    return this.#done;
  }

  get failures(): number {
    return this.#failures;
  }

  report(facts: DaemonFacts): NodeStatus {
    const [l1 = 0, l5 = 0, l15 = 0] = loadavg();
    return {
      ...facts,
      jobsDone: this.#done,
      failures: this.#failures,
      jobsPerSecond: Math.round(this.jobsPerSecond() * 100) / 100,
      rateWindowS: RATE_WINDOW_S,
      load: [l1, l5, l15],
      freeMemory: freemem(),
      totalMemory: totalmem(),
      uptimeS: Math.max(0, (this.#now() - this.#startedAt) / 1000),
      time: Date.now(),
    };
  }
}
