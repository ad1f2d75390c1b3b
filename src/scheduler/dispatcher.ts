/**
 * The one dispatch loop: takes jobs from a queue and hands them, in batches, to the targets
 * (nodes, or a node's worker pool) that have room for them, as a placement policy decides.
 * The job server (api/server.ts: one FIFO queue, every node of the cluster, the work-stealing
 * policy) and the daemon (daemon/jobs.ts: a fair queue of its clients' jobs, its one worker
 * pool) both dispatch through it.
 *
 * Three plug-ins, so that the loop itself knows nothing of jobs, nodes or sockets:
 *
 * - a {@link JobQueue}: the order jobs wait in (scheduler/fifo.ts for a client;
 *   scheduler/fair-queue.ts, round robin over clients, for a node);
 * - a {@link Placement}: how many of the queued jobs each target gets now, and what to do
 *   when the queue is empty (steal, copy) or jobs wait but no target takes one;
 * - the {@link JobSink}: which jobs are gone (settled while queued), which target a job can
 *   run on, and how a batch is handed over.
 *
 * No timers, no sockets: what the owner must do later (look again after a while) it learns
 * from its placement's `drained` and `heldBack` calls. The loop runs once per result at
 * 100k jobs/s: it allocates nothing but the batches it hands over.
 */
import type { HasRoom } from './policy.ts';

/** A queue jobs wait in, as the dispatcher uses it (scheduler/fifo.ts, scheduler/fair-queue.ts). */
export interface JobQueue<T> {
  /** Jobs queued. */
  readonly size: number;
  /** The job {@link shift} returns next, without removing it; undefined when empty. */
  peek(): T | undefined;
  /** Removes and returns the next job; undefined when empty. */
  shift(): T | undefined;
  /** Puts jobs that were taken back at the front, in their order, to be taken first again. */
  unshiftAll(items: readonly T[]): void;
}

/** How queued jobs are placed on targets: the scheduling decision, as one plug-in. */
export interface Placement<T, N> {
  /**
   * How many jobs each of `targets` gets now (by index), with `queued` jobs waiting of which
   * `next` is the first. A count of 0 for every target holds the jobs back.
   */
  place(next: T, queued: number, targets: readonly N[]): ArrayLike<number>;
  /** The queue is empty (nothing gone excepted): the moment to steal or copy jobs. */
  drained(targets: readonly N[]): void;
  /** Jobs wait, but none was placed: held back for a busy target, or no target has room. */
  heldBack(targets: readonly N[]): void;
}

/** What the dispatcher asks of the jobs it moves, and how it hands them over. */
export interface JobSink<T, N> {
  /** The job no longer needs to run (settled, cancelled or forgotten while queued): dropped. */
  gone(job: T): boolean;
  /** The job can run on `target` (e.g. a native addon built for its platform); else it waits for another. */
  runsOn(job: T, target: N): boolean;
  /** Hands `batch` (never empty) to `target`; the dispatcher keeps no reference to it. */
  send(target: N, batch: T[]): void;
}

/**
 * Moves jobs from a {@link JobQueue} to targets with room, round after round, until the
 * {@link Placement} places none or the queue is empty. A job skipped for a target it cannot
 * run on is offered to the targets after it in the same round; those none of them took go
 * back to the front of the queue, in order, after the round.
 */
export class Dispatcher<T, N extends HasRoom = HasRoom> {
  readonly #queue: JobQueue<T>;
  readonly #placement: Placement<T, N>;
  readonly #sink: JobSink<T, N>;

  constructor(queue: JobQueue<T>, placement: Placement<T, N>, sink: JobSink<T, N>) {
    this.#queue = queue;
    this.#placement = placement;
    this.#sink = sink;
  }

  /** Dispatches what the placement allows now; returns how many jobs were handed over. */
  run(targets: readonly N[]): number {
    const queue = this.#queue;
    const sink = this.#sink;
    let total = 0;
    for (;;) {
      let next = queue.peek();
      while (next !== undefined && sink.gone(next)) {
        queue.shift();
        next = queue.peek();
      }
      if (next === undefined) {
        this.#placement.drained(targets);
        return total;
      }
      const counts = this.#placement.place(next, queue.size, targets);
      let sent = 0;
      let skipped: T[] | undefined;
      for (let i = 0; i < targets.length; i++) {
        const want = counts[i]!;
        if (!(want > 0)) continue;
        const target = targets[i]!;
        const batch: T[] = [];
        // Jobs an earlier target could not run come first: they were ahead in the queue.
        if (skipped)
          for (let k = 0; k < skipped.length && batch.length < want; )
            if (sink.runsOn(skipped[k]!, target)) batch.push(skipped.splice(k, 1)[0]!);
            else k++;
        while (batch.length < want && queue.size > 0) {
          const job = queue.shift()!;
          if (sink.gone(job)) continue;
          if (!sink.runsOn(job, target)) {
            (skipped ??= []).push(job);
            continue;
          }
          batch.push(job);
        }
        if (batch.length > 0) {
          sent += batch.length;
          sink.send(target, batch);
        }
      }
      if (skipped) queue.unshiftAll(skipped);
      total += sent;
      if (sent === 0) {
        this.#placement.heldBack(targets);
        return total;
      }
    }
  }
}
