/**
 * The daemon's shutdown: queued jobs go back to their clients, running ones finish (up to a
 * grace period), then each client is told goodbye and everything closes.
 */
import type { LocalPool } from '../nodes/local-pool.ts';
import { CloseCode } from '../transport/secure-socket.ts';
import type { JobTable } from './jobs.ts';
import type { Listener } from './listener.ts';
import type { ClientSession } from './session.ts';

export interface ShutdownParts {
  listener: Listener;
  /** Live: a client that leaves during the grace period is no longer in it. */
  sessions: ReadonlyMap<string, ClientSession>;
  table: JobTable;
  pool: LocalPool;
}

/** Runs the shutdown; the caller has already marked itself stopping (nothing new is accepted). */
export async function shutdown(
  { listener, sessions, table, pool }: ShutdownParts,
  graceMs: number,
): Promise<void> {
  const closing = listener.close();
  for (const s of sessions.values()) s.send({ type: 'requeue', ids: table.removeQueued(s) });
  // Jobs queued inside the workers go back too, as each worker ends the job it runs.
  pool.withdrawQueued();
  const deadline = Date.now() + graceMs;
  while (pool.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const s of sessions.values()) {
    const running = table.held(s);
    if (running.length > 0) s.send({ type: 'requeue', ids: running });
    s.send({ type: 'bye', reason: 'node shutting down' });
    s.socket.close(CloseCode.GoingAway, 'node shutting down');
  }
  await pool.close();
  await closing;
}
