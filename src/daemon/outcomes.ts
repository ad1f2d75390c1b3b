/** Outcome routing: what the workers report about a job goes back to the client that sent it. */
import type { JobStatus } from '../protocol/messages.ts';
import type { JobTable, NodeJob } from './jobs.ts';
import type { ClientSession } from './session.ts';
import type { PeerStats } from './stats.ts';

export class OutcomeRouter {
  constructor(
    private readonly table: JobTable,
    private readonly stats: PeerStats,
    private readonly stopping: () => boolean,
  ) {}

  /** A job ended (returned, threw, timed out or was cancelled in its worker). */
  result(id: number, status: JobStatus, durationMs: number, blob: Uint8Array): void {
    this.table.scheduleDrain();
    const job = this.table.forget(id);
    if (!job) return;
    this.table.measured(job.dispatch.hash, durationMs);
    this.stats.record(job.session.peer, durationMs);
    if (job.session.open) job.session.queueResult([job.clientId, status, durationMs], blob);
  }

  /** A job could not run (its worker died, or it could not be set up). */
  failed(id: number, error: Error): void {
    this.table.scheduleDrain();
    const job = this.table.forget(id);
    if (job?.session.open) job.session.sendFailed(job.clientId, error);
  }

  /**
   * Jobs that never started (their worker died, or gave them back when asked): they keep
   * their place in line, or, when stopping, go back to their clients at once to run elsewhere.
   */
  requeue(ids: number[]): void {
    // Those a client asked back (work stealing) go to it now, as its steal's late answer.
    if (!this.stopping()) {
      const stolen = new Map<ClientSession, number[]>();
      for (const job of this.table.takenBack(ids)) {
        if (!job.session.open) continue;
        const list = stolen.get(job.session) ?? [];
        list.push(job.clientId);
        stolen.set(job.session, list);
      }
      for (const [s, list] of stolen) s.send({ type: 'withdrawn', ids: list });
    }
    const bySession = new Map<ClientSession, NodeJob[]>();
    for (const id of ids) {
      const job = this.table.get(id);
      if (!job?.session.open) {
        this.table.forget(id);
        continue;
      }
      const list = bySession.get(job.session) ?? [];
      list.push(job);
      bySession.set(job.session, list);
    }
    for (const [s, list] of bySession) {
      if (this.stopping())
        s.send({ type: 'requeue', ids: list.map((job) => this.table.forget(job.dispatch.id)!.clientId) });
      else this.table.queue.unshiftAll(list);
    }
    this.table.scheduleDrain();
  }
}
