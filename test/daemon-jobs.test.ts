// The daemon's job table (src/daemon/jobs.ts) dispatching through the scheduler's one
// dispatcher, with a simulated worker pool: clients served in turn, the pool's room obeyed,
// jobs given back to the queue keep their place, a withdraw takes queued jobs out.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JobTable } from '../src/daemon/jobs.ts';
import type { ClientSession } from '../src/daemon/session.ts';
import type { DispatchJob } from '../src/nodes/compute-node.ts';
import type { FunctionDefinition } from '../src/protocol/messages.ts';

/** What the table reads of a session: its id, definitions, refs and id map. */
function session(id: string): ClientSession {
  const defs = new Map<string, FunctionDefinition>([['h', { hash: 'h', name: 'f' } as FunctionDefinition]]);
  return {
    id,
    defs,
    refs: new Map(),
    unreadable: new Map(),
    byClientId: new Map<number, number>(),
    open: true,
    sendFailed: () => assert.fail('no job should fail'),
    queueResult: () => {},
  } as unknown as ClientSession;
}

/** A worker pool with room for `cap` jobs at a time. */
class Pool {
  readonly got: DispatchJob[] = [];
  cap: number;
  constructor(cap: number) {
    this.cap = cap;
  }
  room(): number {
    return Math.max(0, this.cap - this.got.length);
  }
  dispatch(jobs: DispatchJob[]): void {
    this.got.push(...jobs);
  }
  cancel(): void {}
  withdraw(): number {
    return 0;
  }
}

const tick = () => new Promise<void>((r) => setImmediate(r));

/** The session and client id of each job the pool got, as `a1`. */
function names(table: JobTable, jobs: readonly DispatchJob[]): string[] {
  return jobs.map((d) => {
    const job = table.get(d.id)!;
    return `${job.session.id}${job.clientId}`;
  });
}

function setup(cap: number) {
  const table = new JobTable();
  const pool = new Pool(cap);
  table.runner = pool as unknown as JobTable['runner'];
  const a = session('a');
  const b = session('b');
  return { table, pool, a, b };
}

const blob = new Uint8Array([0]);

test('the daemon hands its clients’ jobs to its workers in turn, as far as they have room', async () => {
  const { table, pool, a, b } = setup(4);
  for (let i = 1; i <= 4; i++) table.accept(a, i, 'h', 0, [], blob);
  for (let i = 1; i <= 2; i++) table.accept(b, i, 'h', 0, [], blob);
  table.scheduleDrain();
  await tick();
  assert.deepEqual(names(table, pool.got), ['a1', 'b1', 'a2', 'b2']);
  assert.equal(table.queue.size, 2, 'no room for more');
  table.measured('h', 3);
  pool.cap = 10;
  table.scheduleDrain();
  await tick();
  assert.deepEqual(names(table, pool.got.slice(4)), ['a3', 'a4']);
  assert.equal(pool.got[5]!.estimatedMs, 3, 'each job goes with the estimate known when it leaves');
});

test('the daemon: a withdraw takes queued jobs out; jobs its workers give back keep their place in line', async () => {
  const { table, pool, a, b } = setup(1);
  for (let i = 1; i <= 3; i++) table.accept(a, i, 'h', 0, [], blob);
  table.accept(b, 1, 'h', 0, [], blob);
  table.scheduleDrain();
  await tick();
  assert.deepEqual(names(table, pool.got), ['a1']);
  // a's client steals a3 back (queued here: given up at once) and a1 (in a worker: not here).
  assert.deepEqual(table.withdraw(a, [3, 1]), [3]);
  // The worker gives a1 back unstarted: it goes back to the front of a's line.
  const first = table.get(pool.got[0]!.id)!;
  pool.got.length = 0;
  table.queue.unshiftAll([first]);
  pool.cap = 10;
  table.scheduleDrain();
  await tick();
  // a had its turn (a1), so b's comes first; then a1 again, ahead of a2.
  assert.deepEqual(names(table, pool.got), ['b1', 'a1', 'a2']);
  assert.equal(table.queue.size, 0);
});
