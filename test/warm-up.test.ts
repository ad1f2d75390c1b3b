// A fresh worker warms its job path with made-up jobs until its first message
// (worker/warm-up.ts): they run through the real runtime and come back right, warming stops
// at the first message, and nothing of it reaches the server. The server warms its whole path
// likewise while it idles after start (api/warm-up.ts): its made-up jobs show nowhere, and it
// stops when the user submits or closes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Server } from '../src/api/server.ts';
import { WARM_UP_JOBS, WARM_UP_SLICE, warmUpServer } from '../src/api/warm-up.ts';
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

describe("the server's warm-up (api/warm-up.ts)", () => {
  /** A host whose submits resolve at once, counted; `idle` as the test sets it. */
  function fakeHost(opts: { idleUntil?: number; rejectAt?: number } = {}) {
    const host = {
      submitted: 0,
      idle: () => host.submitted < (opts.idleUntil ?? Number.POSITIVE_INFINITY),
      submit: (args: unknown[]) => {
        host.submitted++;
        return host.submitted === opts.rejectAt
          ? Promise.reject(new Error('closed'))
          : Promise.resolve(args[0]);
      },
    };
    return host;
  }

  test('submits WARM_UP_JOBS made-up jobs, slice by slice', async () => {
    const host = fakeHost();
    await warmUpServer(host);
    assert.equal(host.submitted, WARM_UP_JOBS);
  });

  test('stops after the slice in progress once the server is no longer idle', async () => {
    const host = fakeHost({ idleUntil: WARM_UP_SLICE + 1 });
    await warmUpServer(host);
    assert.equal(host.submitted, 2 * WARM_UP_SLICE);
  });

  test('stops, without rejecting, when a made-up job fails (the server closed)', async () => {
    const host = fakeHost({ rejectAt: 3 });
    await warmUpServer(host);
    assert.equal(host.submitted, WARM_UP_SLICE);
  });

  for (const isolation of ['process', 'thread'] as const) {
    test(`runs on its own once the workers are ready, shows nowhere, and a job submitted meanwhile runs as job #1 (${isolation})`, {
      timeout: 60_000,
    }, async () => {
      const server = new Server({ ncpus: 2, ppservers: [], isolation });
      const jobErrors: unknown[] = [];
      server.on('job-error', (_job, error) => jobErrors.push(error));
      try {
        await server.ready();
        // Nothing submitted, yet the local workers get jobs: the made-up ones.
        await pollUntil(() => server.getActiveNodes()[0]!.inFlight > 0, { what: 'the warm-up to start' });
        assert.deepEqual(server.progress(), { total: 0, finished: 0, failed: 0, pending: 0 });
        const job = server.submit((x: number) => x * 3, [4]);
        assert.equal(job.id, 1);
        assert.equal(await job, 12);
        // The warm-up stops after its slice in progress; none of it counts.
        await pollUntil(() => server.getActiveNodes()[0]!.inFlight === 0, { what: 'the warm-up to stop' });
        assert.equal(server.getStats().totalJobs, 1);
        assert.deepEqual(server.progress(), { total: 1, finished: 1, failed: 0, pending: 0 });
        await server.wait();
        const second = server.submit((x: number) => x + 1, [1]);
        assert.equal(second.id, 2);
        assert.equal(await second, 2);
        assert.deepEqual(jobErrors, []);
      } finally {
        await server.close();
      }
    });
  }

  test('a server closed while warming up settles its made-up jobs quietly', { timeout: 60_000 }, async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const errors: unknown[] = [];
    const realError = console.error;
    console.error = (...args: unknown[]) => errors.push(args);
    try {
      const server = new Server({ ncpus: 1, ppservers: [] });
      server.on('job-error', (_job, error) => errors.push(error));
      await server.ready();
      await pollUntil(() => server.getActiveNodes()[0]!.inFlight > 0, { what: 'the warm-up to start' });
      await server.close();
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setTimeout(r, 0));
    } finally {
      console.error = realError;
      process.off('unhandledRejection', onUnhandled);
    }
    assert.deepEqual(unhandled, []);
    assert.deepEqual(errors, []);
  });
});
