// A fresh worker warms its job path with made-up jobs until its first message
// (worker/warm-up.ts): they run through the real runtime and come back right, warming stops
// at the first message, and nothing of it reaches the server.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Server } from '../src/api/server.ts';
import { WARM_UP_BATCH } from '../src/protocol/warm-up.ts';
import { WORKER_WARM_UP_JOBS, warmUpWorker } from '../src/worker/warm-up.ts';
import { pollUntil } from './helpers/poll.ts';

describe('a worker warming up', () => {
  test('runs every made-up job through the runtime, and each comes back with the value it took', async () => {
    const warm = warmUpWorker(() => true, 3 * WARM_UP_BATCH, true);
    await warm.done;
    await pollUntil(() => warm.answered === 3 * WARM_UP_BATCH, { what: 'every made-up result' });
    assert.equal(warm.wrong, 0);
  });

  test('stops at the first message from the server, after the slice in progress', async () => {
    let idle = true;
    const warm = warmUpWorker(() => idle, WORKER_WARM_UP_JOBS, true);
    await pollUntil(() => warm.answered > 0, { what: 'warming to start' });
    idle = false;
    await warm.done;
    // The slice in progress finishes (its runtime may yield between its jobs), then nothing more.
    await pollUntil(() => warm.answered % WARM_UP_BATCH === 0, { what: 'the slice in progress' });
    const answered = warm.answered;
    assert.ok(answered < WORKER_WARM_UP_JOBS, `stopped early (${answered} made-up jobs ran)`);
    await new Promise((r) => setImmediate(r));
    assert.equal(warm.answered, answered);
    assert.equal(warm.wrong, 0);
  });
});

for (const isolation of ['process', 'thread'] as const) {
  test(`made-up jobs are not the server’s (${isolation}): its first job is #1, its stats and progress count real jobs only`, {
    timeout: 60_000,
  }, async () => {
    const server = new Server({ ncpus: 1, ppservers: [], isolation });
    try {
      await server.ready();
      const job = server.submit((x: number) => x * 3, [4]);
      assert.equal(job.id, 1);
      assert.equal(await job, 12);
      const stats = server.getStats();
      assert.equal(stats.totalJobs, 1);
      assert.deepEqual(
        stats.nodes.map((n) => [n.node, n.jobs]),
        [['local', 1]],
      );
      assert.deepEqual(server.progress(), { total: 1, finished: 1, failed: 0, pending: 0 });
    } finally {
      await server.close();
    }
  });
}
