// A local pool warms each new worker with made-up jobs until its first real one
// (nodes/warm-up.ts): they come back right, the job server never sees them, and a real job
// sent while a worker warms finds at most one slice ahead of it, after which warming stops.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Server } from '../src/api/server.ts';
import { getBundle } from '../src/functions/bundle.ts';
import type { DispatchJob, NodeEvents } from '../src/nodes/compute-node.ts';
import { wholeArgs } from '../src/nodes/job-args.ts';
import { LocalPool } from '../src/nodes/local-pool.ts';
import { WARM_UP_JOBS } from '../src/nodes/warm-up.ts';
import { decodeRange, encode } from '../src/protocol/codec.ts';
import { WARM_UP_BATCH } from '../src/protocol/warm-up.ts';
import { pollUntil } from './helpers/poll.ts';

const triple = (x: number) => x * 3;

function realJob(id: number, x: number): DispatchJob {
  const { hash, name, code, bindings, modules } = getBundle({ fn: triple });
  const def = { hash, name, code, bindings, modules, globals: {} };
  return {
    id,
    hash,
    name,
    definition: () => def,
    args: wholeArgs(encode([undefined, [x]])),
    estimatedMs: undefined,
    timeoutMs: undefined,
    refs: [],
  };
}

/** A pool, and every event it reported to its server. */
function pool(ncpus: number, isolation: 'process' | 'thread') {
  const results = new Map<number, unknown>();
  const other: string[] = [];
  const events: NodeEvents = {
    onResult: (_n, job, _status, _ms, bytes, start, end) =>
      results.set(job.id, decodeRange(bytes, start, end)),
    onJobFailed: (_n, job, error) => other.push(`failed ${job.id}: ${error.message}`),
    onRequeue: (_n, jobs) => other.push(`requeued ${jobs.map((j) => j.id).join(',')}`),
    onCapacity: () => {},
  };
  return { pool: new LocalPool({ ncpus, isolation }, events), results, other };
}

for (const isolation of ['process', 'thread'] as const) {
  describe(`warming up local workers (${isolation})`, () => {
    test('every made-up job comes back with the value it took, and none reaches the server', {
      timeout: 60_000,
    }, async () => {
      const { pool: p, results, other } = pool(2, isolation);
      try {
        await p.whenReady();
        await pollUntil(() => p.warmUp.answered === 2 * WARM_UP_JOBS, {
          timeoutMs: 50_000,
          what: `${2 * WARM_UP_JOBS} made-up results`,
        });
        assert.equal(p.warmUp.wrong, 0);
        assert.equal(results.size, 0, 'no result of a made-up job is reported');
        assert.deepEqual(other, []);
        assert.equal(p.inFlight, 0);
        p.dispatch([realJob(1, 14)]);
        await pollUntil(() => results.has(1), { what: 'the real job' });
        assert.equal(results.get(1), 42);
        assert.equal(p.warmUp.answered, 2 * WARM_UP_JOBS, 'no warming after the budget');
      } finally {
        await p.close();
      }
    });

    test('a real job sent while the worker warms runs after the slice in progress, and warming stops', {
      timeout: 60_000,
    }, async () => {
      const { pool: p, results, other } = pool(1, isolation);
      try {
        await p.whenReady();
        await pollUntil(() => p.warmUp.answered > 0, { timeoutMs: 30_000, what: 'warming to start' });
        p.dispatch([realJob(7, 5), realJob(8, 6)]);
        await pollUntil(() => results.size === 2, { what: 'both real jobs' });
        assert.equal(results.get(7), 15);
        assert.equal(results.get(8), 18);
        assert.deepEqual(other, []);
        const answered = p.warmUp.answered;
        assert.equal(answered % WARM_UP_BATCH, 0, 'whole slices only');
        assert.ok(answered < WARM_UP_JOBS, `warming stopped at the real jobs (${answered} made-up jobs ran)`);
        // Idle again: warming does not resume (a further slice would have been sent at once).
        p.dispatch([realJob(9, 7)]);
        await pollUntil(() => results.has(9), { what: 'a third real job' });
        assert.equal(p.warmUp.answered, answered);
        assert.equal(p.warmUp.wrong, 0);
      } finally {
        await p.close();
      }
    });
  });
}

test('made-up jobs are not the server’s: its first job is #1, and its stats and progress count only real jobs', {
  timeout: 60_000,
}, async () => {
  const server = new Server({ ncpus: 1, ppservers: [] });
  try {
    await server.ready();
    const job = server.submit(triple, [4]);
    assert.equal(job.id, 1);
    assert.equal(await job, 12);
    const stats = server.getStats();
    assert.equal(stats.totalJobs, 1);
    assert.deepEqual(
      stats.nodes.map((n) => [n.node, n.jobs]),
      [['local', 1]],
    );
    assert.deepEqual(server.progress(), { total: 1, finished: 1, failed: 0, pending: 0 });
    assert.equal(server.getActiveNodes()[0]!.inFlight, 0);
  } finally {
    await server.close();
  }
});
