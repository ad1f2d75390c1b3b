/**
 * The daemon's job table and its dispatch: the jobs its clients sent, in one fair queue (each
 * client gets its turn), handed to the workers as they have room, through the scheduler's
 * one dispatcher (scheduler/dispatcher.ts) with the {@link PoolPlacement} below.
 */
import type { DispatchJob, RefData } from '../nodes/compute-node.ts';
import { wholeArgs } from '../nodes/job-args.ts';
import type { LocalPool } from '../nodes/local-pool.ts';
import { encode } from '../protocol/codec.ts';
import { JobStatus } from '../protocol/messages.ts';
import { nodeHoldsNext } from '../scheduler/depth.ts';
import { Dispatcher, type JobSink, type Placement } from '../scheduler/dispatcher.ts';
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
export type JobRunner = Pick<LocalPool, 'room' | 'dispatch' | 'cancel' | 'withdraw'>;

let nextInternalId = 1;

export class JobTable {
  /** Every job accepted and not finished, by the daemon's id: queued here or in the workers. */
  readonly jobs = new Map<number, NodeJob>();
  /** Jobs not yet handed to the workers, a line per client. */
  readonly queue = new FairQueue<NodeJob>(ownerOf);
  /** Jobs a client asked back that wait behind a running job in a worker, until it answers. */
  private readonly askedBack = new Set<number>();
  private readonly estimates = new Map<string, DurationEstimate>();
  private drainScheduled = false;
  /** Set once the workers exist (they report to the table from their constructor on). */
  runner: JobRunner | undefined;
  private readonly dispatcher = new Dispatcher<NodeJob, JobRunner>(
    this.queue,
    new PoolPlacement(this.estimates),
    new PoolSink(this.jobs, this.estimates),
  );
  /** The one target of the dispatcher: the workers, once they exist. */
  private readonly targets: JobRunner[] = [];

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
    const job: NodeJob = {
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
    };
    this.jobs.set(id, job);
    s.byClientId.set(clientId, id);
    this.queue.push(job);
  }

  cancel(s: ClientSession, clientId: number): void {
    const id = s.byClientId.get(clientId);
    if (id === undefined) return;
    if (this.queue.remove(s.id, (x) => x.dispatch.id === id) !== undefined) {
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
    for (const job of this.queue.removeAll(s.id, (j) => wanted.has(j.dispatch.id))) {
      wanted.delete(job.dispatch.id);
      if (this.forget(job.dispatch.id)) given.push(job.clientId);
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
    for (const job of this.queue.removeOwner(s.id)) {
      const clientId = this.forget(job.dispatch.id)?.clientId;
      if (clientId !== undefined) ids.push(clientId);
    }
    return ids;
  }

  /** A client left: its queued jobs are dropped (those in the workers finish; their results are dropped). */
  dropQueued(s: ClientSession): void {
    for (const job of this.queue.removeOwner(s.id)) this.jobs.delete(job.dispatch.id);
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
    if (this.targets[0] !== runner) this.targets[0] = runner;
    this.dispatcher.run(this.targets);
  }
}

function ownerOf(job: NodeJob): string {
  return job.session.id;
}

/**
 * How many of the queued jobs the workers take: what they have room for. A worker holds the
 * next job behind the one it runs, but for long ones (scheduler/depth.ts nodeHoldsNext), so
 * that it starts it without a trip through this process. The client already decided how many
 * jobs this node holds, and places the last ones of a burst itself; a job held in a worker can
 * still be stolen, when the job ahead of it ends (see JobTable.withdraw).
 */
class PoolPlacement implements Placement<NodeJob, JobRunner> {
  private readonly counts = [0];
  constructor(private readonly estimates: ReadonlyMap<string, DurationEstimate>) {}

  place(next: NodeJob, _queued: number, targets: readonly JobRunner[]): ArrayLike<number> {
    const estimate = this.estimates.get(next.dispatch.hash)?.value;
    this.counts[0] = targets[0]!.room(estimate, nodeHoldsNext(estimate) ? Number.POSITIVE_INFINITY : 0);
    return this.counts;
  }

  drained(): void {}
  heldBack(): void {}
}

/** The daemon's jobs as the dispatcher moves them: each goes with the estimate known now. */
class PoolSink implements JobSink<NodeJob, JobRunner> {
  constructor(
    private readonly jobs: ReadonlyMap<number, NodeJob>,
    private readonly estimates: ReadonlyMap<string, DurationEstimate>,
  ) {}

  gone(job: NodeJob): boolean {
    return !this.jobs.has(job.dispatch.id);
  }

  runsOn(): boolean {
    return true;
  }

  send(runner: JobRunner, batch: NodeJob[]): void {
    const estimates = this.estimates;
    const jobs: DispatchJob[] = [];
    for (let i = 0; i < batch.length; i++) {
      const d = batch[i]!.dispatch;
      jobs.push({ ...d, estimatedMs: estimates.get(d.hash)?.value });
    }
    runner.dispatch(jobs);
  }
}
