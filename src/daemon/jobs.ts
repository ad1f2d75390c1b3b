/**
 * The daemon's job table and its dispatch: the jobs its clients sent, in one fair queue (each
 * client gets its turn), handed to the workers as they have room.
 */
import type { DispatchJob, RefData } from '../nodes/compute-node.ts';
import { wholeArgs } from '../nodes/job-args.ts';
import type { LocalPool } from '../nodes/local-pool.ts';
import { encode } from '../protocol/codec.ts';
import { JobStatus } from '../protocol/messages.ts';
import { FairQueue } from '../scheduler/fair-queue.ts';
import { DurationEstimate } from '../scheduler/policy.ts';
import type { ClientSession } from './session.ts';

/** A job of a client, under the daemon's own id. */
export interface NodeJob {
  session: ClientSession;
  clientId: number;
  dispatch: DispatchJob;
}

/** What the table asks of the workers. */
export type JobRunner = Pick<LocalPool, 'freeSlots' | 'dispatch' | 'cancel' | 'withdraw'>;

let nextInternalId = 1;

export class JobTable {
  /** Every job accepted and not finished, by the daemon's id: queued here or in the workers. */
  readonly jobs = new Map<number, NodeJob>();
  /** Jobs not yet handed to the workers, a line per client. */
  readonly queue = new FairQueue<number>();
  /** Jobs a client asked back that wait behind a running job in a worker, until it answers. */
  private readonly askedBack = new Set<number>();
  private readonly estimates = new Map<string, DurationEstimate>();
  private drainScheduled = false;
  /** Set once the workers exist (they report to the table from their constructor on). */
  runner: JobRunner | undefined;

  get size(): number {
    return this.jobs.size;
  }

  get(id: number): NodeJob | undefined {
    return this.jobs.get(id);
  }

  /** A job of client `s`; fails it back at once when its function or a Ref was never sent. */
  accept(
    s: ClientSession,
    clientId: number,
    hash: string,
    timeoutMs: number,
    refIds: string[],
    blob: Uint8Array,
  ): void {
    const def = s.defs.get(hash);
    const refs: RefData[] = [];
    for (const r of refIds) {
      const data = s.refs.get(r);
      if (data) refs.push(data);
    }
    if (!def || refs.length !== refIds.length) {
      const unreadable = def ? undefined : s.unreadable.get(hash);
      const what = def ? 'a Ref it was never sent' : `function ${hash.slice(0, 12)} it was never sent`;
      s.sendFailed(clientId, unreadable ?? new Error(`protocol error: the node got a job for ${what}`));
      return;
    }
    const id = nextInternalId++;
    this.jobs.set(id, {
      session: s,
      clientId,
      dispatch: {
        id,
        hash: def.hash,
        name: def.name,
        // A view into the received message (no copy): it lives as long as the message's jobs.
        args: wholeArgs(blob),
        timeoutMs: timeoutMs > 0 ? timeoutMs : undefined,
        estimatedMs: this.estimates.get(def.hash)?.value,
        refs,
        definition: () => def,
      },
    });
    s.byClientId.set(clientId, id);
    this.queue.push(s.id, id);
  }

  cancel(s: ClientSession, clientId: number): void {
    const id = s.byClientId.get(clientId);
    if (id === undefined) return;
    if (this.queue.remove(s.id, (x) => x === id) !== undefined) {
      this.forget(id);
      s.queueResult([clientId, JobStatus.Cancelled, 0], encode(undefined));
      return;
    }
    this.runner?.cancel(id);
  }

  /**
   * A client takes back jobs of its own that have not started, to run them elsewhere (work
   * stealing). Those still in this node's queue are given up at once: returns the client's ids
   * of those. Those a worker holds behind the job it runs are asked of the worker, which gives
   * them up when that job ends unless it starts them (see {@link takenBack}); the rest run here.
   */
  withdraw(s: ClientSession, clientIds: readonly number[]): number[] {
    const wanted = new Set<number>();
    for (const clientId of clientIds) {
      const id = s.byClientId.get(clientId);
      if (id !== undefined) wanted.add(id);
    }
    if (wanted.size === 0) return [];
    const given: number[] = [];
    for (const id of this.queue.removeAll(s.id, (id) => wanted.has(id))) {
      wanted.delete(id);
      const job = this.forget(id);
      if (job) given.push(job.clientId);
    }
    if (wanted.size > 0 && this.runner && this.runner.withdraw(wanted) > 0)
      for (const id of wanted) this.askedBack.add(id);
    return given;
  }

  /**
   * Of jobs a worker gave back unstarted, those a client asked back (see {@link withdraw}):
   * forgotten here, to be handed to their clients. The others are left as they are.
   */
  takenBack(ids: readonly number[]): NodeJob[] {
    const jobs: NodeJob[] = [];
    if (this.askedBack.size === 0) return jobs;
    for (const id of ids) {
      if (!this.askedBack.has(id)) continue;
      const job = this.forget(id);
      if (job) jobs.push(job);
    }
    return jobs;
  }

  /** Takes the queued jobs of client `s` out; returns the client's ids of those it had. */
  removeQueued(s: ClientSession): number[] {
    const ids: number[] = [];
    for (const id of this.queue.removeOwner(s.id)) {
      const clientId = this.forget(id)?.clientId;
      if (clientId !== undefined) ids.push(clientId);
    }
    return ids;
  }

  /** A client left: its queued jobs are dropped (those in the workers finish; their results are dropped). */
  dropQueued(s: ClientSession): void {
    for (const id of this.queue.removeOwner(s.id)) this.jobs.delete(id);
  }

  /** The client's ids of the jobs of `s` still held (running, after the queue was given back). */
  held(s: ClientSession): number[] {
    return [...this.jobs.values()].filter((j) => j.session === s).map((j) => j.clientId);
  }

  forget(id: number): NodeJob | undefined {
    const job = this.jobs.get(id);
    if (!job) return undefined;
    this.jobs.delete(id);
    if (this.askedBack.size > 0) this.askedBack.delete(id);
    job.session.byClientId.delete(job.clientId);
    return job;
  }

  /** A job of function `hash` ran for `durationMs`: later ones are placed by it. */
  measured(hash: string, durationMs: number): void {
    let est = this.estimates.get(hash);
    if (!est) this.estimates.set(hash, (est = new DurationEstimate()));
    est.add(durationMs);
  }

  // No closure here: it would be allocated on every call (one per result).
  private readonly drainTask = (): void => {
    this.drainScheduled = false;
    this.drain();
  };

  scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    queueMicrotask(this.drainTask);
  }

  private drain(): void {
    const runner = this.runner;
    if (!runner) return;
    while (this.queue.size > 0) {
      const next = this.jobs.get(this.queue.peek()!);
      const estimate = next ? this.estimates.get(next.dispatch.hash)?.value : undefined;
      // A worker holds the next job behind the one it runs, so that it starts it without a
      // trip through this process (a millisecond or two per job on a busy machine: 5-10% of
      // 20 ms jobs). The client already decided how many jobs this node holds, and places
      // the last ones of a burst itself; a job held in a worker can still be stolen, when
      // the job ahead of it ends (see withdraw).
      const free = runner.freeSlots(estimate, Number.POSITIVE_INFINITY);
      if (free <= 0) return;
      const batch: DispatchJob[] = [];
      for (const [, id] of this.queue.take(free)) {
        const job = this.jobs.get(id);
        if (job) batch.push({ ...job.dispatch, estimatedMs: this.estimates.get(job.dispatch.hash)?.value });
      }
      if (batch.length === 0) continue;
      runner.dispatch(batch);
    }
  }
}
