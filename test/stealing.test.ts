// Work stealing as a transaction, against the real thing: a node (remote pp-node, or the local
// pool) asked for jobs back while it is starting them gives back only jobs it will not run, so
// every job runs exactly once. Each job writes its id to a run log as it starts, which shows a
// job that ran twice even where the client would silently drop the second result.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { getBundle } from '../src/functions/bundle.ts';
import { Server } from '../src/index.ts';
import type { ComputeNode, DispatchJob, NodeEvents } from '../src/nodes/compute-node.ts';
import { wholeArgs } from '../src/nodes/job-args.ts';
import { LocalPool } from '../src/nodes/local-pool.ts';
import { RemoteNode } from '../src/nodes/remote-node.ts';
import { encode } from '../src/protocol/codec.ts';
import { UNKNOWN_MAX_DEPTH } from '../src/scheduler/depth.ts';
import { resolveSecret } from '../src/secret.ts';
import { startDelayProxy } from './helpers/delay-proxy.ts';
import { type NodeProcess, startNode } from './helpers/nodes.ts';
import { pollUntil } from './helpers/poll.ts';
import { prng } from './helpers/sched-sim.ts';

declare const fs: typeof import('node:fs'); // bound in the worker by modules: ['node:fs']

const SECRET = 'test-secret-0123456789abcdef0123456789';
const dir = mkdtempSync(join(tmpdir(), 'pp-steal-'));
const nodes: NodeProcess[] = [];
after(async () => {
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  rmSync(dir, { recursive: true, force: true });
});

/** Logs its id as it starts, then sleeps `ms`. */
function logged(log: string, id: number, ms: number): number {
  fs.appendFileSync(log, `${id}\n`);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  return id;
}
const bundle = getBundle({ fn: logged, modules: ['node:fs'] });
const definition = () => ({
  hash: bundle.hash,
  name: bundle.name,
  code: bundle.code,
  bindings: bundle.bindings,
  modules: bundle.modules,
  globals: bundle.globals,
});
const job = (log: string, id: number, ms: number): DispatchJob => ({
  id,
  hash: bundle.hash,
  name: bundle.name,
  definition,
  args: wholeArgs(encode([undefined, [log, id, ms]])),
  estimatedMs: ms,
  timeoutMs: undefined,
  refs: [],
});

const waitFor = async (cond: () => boolean, ms: number, what: string) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
};

/**
 * Streams `count` jobs through `node` while asking for some back at random moments, as the
 * scheduler does; jobs given back are dispatched again (as the Server queues them again).
 * Returns how many were given back.
 */
async function stealWhileRunning(
  make: (events: NodeEvents) => ComputeNode,
  count: number,
  seed: number,
): Promise<{ stolen: number; log: string }> {
  const log = join(dir, `run-${seed}.log`);
  const results = new Map<number, number>();
  let stolen = 0;
  const events: NodeEvents = {
    onResult: (_n, j) => results.set(j.id, (results.get(j.id) ?? 0) + 1),
    onJobFailed: (_n, j, error) => assert.fail(`job ${j.id} failed: ${error.message}`),
    onRequeue: (n, jobs, wasStolen) => {
      assert.ok(wasStolen, 'only stolen jobs come back here');
      stolen += jobs.length;
      n.dispatch(jobs);
    },
    onCapacity: () => {},
  };
  const node = make(events);
  try {
    await waitFor(() => node.ncpus > 0, 15_000, 'the node');
    const rnd = prng(seed);
    let next = 1;
    // Rounds of a few jobs, each with one steal at a random moment of its run: before any job
    // starts, as one starts, while the last ones run.
    while (next <= count) {
      const batch: DispatchJob[] = [];
      for (let k = 0; k < 6 && next <= count; k++) batch.push(job(log, next++, 1 + Math.floor(rnd() * 3)));
      node.dispatch(batch);
      await new Promise((r) => setTimeout(r, rnd() * 8));
      node.steal(1 + Math.floor(rnd() * 6));
      await waitFor(() => results.size === next - 1, 10_000, `round up to job ${next - 1}`);
    }
    await waitFor(() => results.size === count, 30_000, `all ${count} results (have ${results.size})`);
  } finally {
    await node.close();
  }
  for (let id = 1; id <= count; id++) assert.equal(results.get(id), 1, `job ${id}: one result`);
  const runs = readFileSync(log, 'utf8').trim().split('\n').map(Number);
  const seen = new Map<number, number>();
  for (const id of runs) seen.set(id, (seen.get(id) ?? 0) + 1);
  for (let id = 1; id <= count; id++)
    assert.equal(seen.get(id), 1, `job ${id} ran ${seen.get(id) ?? 0} times`);
  return { stolen, log };
}

describe('a steal racing job starts: only jobs that never start move, each job runs once', () => {
  test('remote node', async () => {
    const n = await startNode({ secret: SECRET, workers: 2 });
    nodes.push(n);
    const { secret } = resolveSecret({ secret: SECRET, create: false });
    const { stolen } = await stealWhileRunning(
      (events) =>
        new RemoteNode({ host: '127.0.0.1', port: n.port, secret }, events, {
          onUp() {},
          onDown() {},
          onProblem() {},
        }),
      240,
      1,
    );
    assert.ok(stolen > 0, 'some steals won the race (else this test shows nothing)');
  });

  test('local pool', async () => {
    const { stolen } = await stealWhileRunning(
      (events) => new LocalPool({ ncpus: 2, isolation: 'thread', sharedMemory: false }, events),
      240,
      2,
    );
    assert.ok(stolen > 0, 'some steals won the race (else this test shows nothing)');
  });
});

test('a pp-node gives back a job its worker holds behind a running one, when that job ends; each job runs once', async () => {
  const n = await startNode({ secret: SECRET, workers: 1 });
  nodes.push(n);
  const { secret } = resolveSecret({ secret: SECRET, create: false });
  const log = join(dir, 'held.log');
  const results: number[] = [];
  const stolen: number[] = [];
  const handedBack: number[] = []; // by the node's close: none, if all went as it should
  const node = new RemoteNode(
    { host: '127.0.0.1', port: n.port, secret },
    {
      onResult: (_n, j) => results.push(j.id),
      onJobFailed: (_n, j, error) => assert.fail(`job ${j.id} failed: ${error.message}`),
      onRequeue: (_n, jobs, wasStolen) => {
        for (const j of jobs) (wasStolen ? stolen : handedBack).push(j.id);
      },
      onCapacity: () => {},
    },
    { onUp() {}, onDown() {}, onProblem() {} },
  );
  try {
    await waitFor(() => node.ncpus > 0, 15_000, 'the node');
    node.dispatch([job(log, 1, 5)]); // the node learns the function's time: long enough to hold the next behind
    await waitFor(() => results.length === 1, 10_000, 'the first job');
    // Its one worker runs 2 and holds 3 next; 4 waits in the node's queue.
    node.dispatch([job(log, 2, 300), job(log, 3, 300), job(log, 4, 300)]);
    await pollUntil(() => readFileSync(log, 'utf8').trim().split('\n').length === 2, { timeoutMs: 10_000 });
    assert.equal(node.steal(2), 2, 'asks for the two newest');
    await waitFor(() => stolen.length === 2, 10_000, 'both given back');
    assert.deepEqual([...stolen].sort(), [3, 4], 'the queued job and the one the worker held both come back');
    await waitFor(() => results.length === 2, 10_000, 'job 2');
  } finally {
    await node.close();
  }
  assert.deepEqual(
    readFileSync(log, 'utf8').trim().split('\n').map(Number),
    [1, 2],
    'jobs 3 and 4 never ran there',
  );
  assert.deepEqual(results, [1, 2]);
  assert.deepEqual(handedBack, []);
});

describe('speculative execution', () => {
  /** Slow where the node says so (PP_TEST_SLOW_MS), else 5 ms. */
  function sleepy(i: number): number {
    const ms = Number(process.env.PP_TEST_SLOW_MS ?? 5);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    return i * 10;
  }

  async function run(speculative: boolean) {
    // Its own process group: killed with its workers, asleep in 30 s jobs (a worker left running
    // would hold the node's stderr pipe, and this file, open until it wakes up).
    const n = await startNode({
      secret: SECRET,
      workers: 2,
      env: { PP_TEST_SLOW_MS: '30000' },
      detached: true,
    });
    nodes.push(n);
    const server = new Server({
      ncpus: 2,
      isolation: 'thread',
      ppservers: [`127.0.0.1:${n.port}`],
      secret: SECRET,
      speculative,
    });
    try {
      await waitFor(() => server.getActiveNodes().length === 2, 15_000, 'the node');
      const delivered = new Map<number, number>();
      // Learn the speeds first: the remote node's jobs take 30 s, the local ones 5 ms.
      const jobs = Array.from({ length: 40 }, (_, i) =>
        server.submit(sleepy, [i], {
          callback: (r: number) => delivered.set(r, (delivered.get(r) ?? 0) + 1),
        }),
      );
      if (!speculative) {
        // Without backups the jobs on the slow node would take 30 s: show they are still running.
        await waitFor(() => jobs.filter((j) => j.finished).length >= 30, 15_000, 'the local jobs');
        return { server, stats: server.getStats(), finished: jobs.filter((j) => j.finished).length };
      }
      assert.deepEqual(
        await Promise.all(jobs),
        jobs.map((_, i) => i * 10),
      );
      for (let i = 0; i < 40; i++) assert.equal(delivered.get(i * 10), 1, `job ${i} delivered once`);
      return { server, stats: server.getStats(), finished: 40 };
    } finally {
      await server.close();
      process.kill(-n.child.pid!, 'SIGKILL');
      await n.exited;
    }
  }

  test('a job that runs late on a slow node also runs on an idle CPU; the first result wins, once', async () => {
    const { stats } = await run(true);
    assert.ok(stats.backups!.started >= 1 && stats.backups!.won >= 1, JSON.stringify(stats));
    const local = stats.nodes.find((r) => r.node === 'local')!;
    assert.equal(local.jobs, 40, `every job finished on the fast CPUs: ${JSON.stringify(stats)}`);
  });

  test('off by default: no copies', async () => {
    const { stats, finished } = await run(false);
    assert.equal(stats.backups!.started, 0);
    assert.ok(finished < 40, 'jobs on the slow node are still running');
  });
});

describe('work stealing through the Server', () => {
  /** Sleeps `ms` and returns `i`. */
  function nap(i: number, ms: number): number {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    return i;
  }

  test('a node behind a slow link: its round trip is known when it comes up, and a first burst covers it', async () => {
    const far = await startNode({ secret: SECRET, workers: 2 });
    nodes.push(far);
    const proxy = await startDelayProxy({ targetPort: far.port, oneWayMs: 40 }); // an 80 ms round trip
    const server = new Server({ ncpus: 0, ppservers: [`127.0.0.1:${proxy.port}`], secret: SECRET });
    try {
      // From the handshake: the first pong is not back yet when the node says its CPUs are ready.
      const rttAtUp = await new Promise<number>((resolve) =>
        server.on('node-up', () => resolve(server.getActiveNodes()[0]!.rttMs)),
      );
      assert.ok(rttAtUp >= 70, `round trip known at node-up: ${rttAtUp} ms`);
      await waitFor(() => server.getActiveNodes()[0]?.ncpus === 2, 15_000, 'the far node');
      // A few jobs of a function never measured: no more than for long jobs (2 per CPU).
      const few = Array.from({ length: 8 }, (_, i) => server.submit(nap, [i, 2]));
      await new Promise((r) => setImmediate(r));
      assert.equal(
        server.getActiveNodes()[0]!.inFlight,
        4,
        'a few jobs of unknown cost are not parked there',
      );
      assert.deepEqual(await Promise.all(few), [0, 1, 2, 3, 4, 5, 6, 7]);
      // A burst of another one: more, to cover the round trip, up to UNKNOWN_MAX_DEPTH per CPU.
      const napToo = (i: number, ms: number): number => nap(i, ms);
      const burst = Array.from({ length: 400 }, (_, i) => server.submit(napToo, [i, 2], { deps: [nap] }));
      await new Promise((r) => setImmediate(r));
      const held = server.getActiveNodes()[0]!.inFlight;
      assert.ok(held > 4 && held <= 2 * UNKNOWN_MAX_DEPTH, `the first batch covers the link: ${held} jobs`);
      assert.deepEqual(
        await Promise.all(burst),
        burst.map((_, i) => i),
      );
    } finally {
      await server.close();
      await proxy.close();
    }
  });

  test('a far node holding a deep queue while local CPUs idle: they steal its unstarted jobs; each job once', async () => {
    const far = await startNode({ secret: SECRET, workers: 2 });
    nodes.push(far);
    const proxy = await startDelayProxy({ targetPort: far.port, oneWayMs: 75 }); // a 150 ms round trip
    const server = new Server({
      ncpus: 0,
      isolation: 'thread',
      ppservers: [`127.0.0.1:${proxy.port}`],
      secret: SECRET,
    });
    try {
      await waitFor(() => server.getActiveNodes()[0]?.ncpus === 2, 15_000, 'the far node');
      await Promise.all(Array.from({ length: 6 }, (_, i) => server.submit(nap, [i, 20]))); // learn: 20 ms
      const delivered = new Map<number, number>();
      const jobs = Array.from({ length: 60 }, (_, i) =>
        server.submit(nap, [i, 20], {
          callback: (r: number) => delivered.set(r, (delivered.get(r) ?? 0) + 1),
        }),
      );
      // Everything queued is at the far node (its deque covers the round trip); then local CPUs come.
      await waitFor(
        () => server.getActiveNodes()[0]!.inFlight === server.progress().pending,
        10_000,
        'the queue to drain into the far node',
      );
      assert.ok(server.getActiveNodes()[0]!.inFlight > 10, 'the far node holds a deep queue');
      server.setNcpus(2);
      assert.deepEqual(
        await Promise.all(jobs),
        jobs.map((_, i) => i),
      );
      for (let i = 0; i < 60; i++) assert.equal(delivered.get(i), 1, `job ${i} delivered once`);
      const stats = server.getStats();
      const local = stats.nodes.find((r) => r.node === 'local')!;
      assert.ok(stats.stolen! > 0 && local.jobs > 0, `stolen ${stats.stolen}, local ran ${local.jobs}`);
    } finally {
      await server.close();
      await proxy.close();
    }
  });
});
