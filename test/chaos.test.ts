/**
 * Chaos (issue 13): jobs stream to a client with one local CPU and three pp-node processes on
 * 127.0.0.1 (discovery off), each reached through a proxy, while a seeded schedule kills nodes
 * (SIGKILL of the node and its workers; a new node takes its place), stops them (SIGSTOP, then
 * SIGCONT) and cuts links (held traffic, or connections reset) and heals them. Every job must
 * settle with its own value, and each callback run once.
 *
 * Short in `npm test` (PP_CHAOS_SECONDS, default 4 s of chaos); long by hand:
 *   PP_CHAOS_SECONDS=300 PP_CHAOS_SEED=7 node --import tsx --test test/chaos.test.ts
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Server } from '../src/index.ts';
import { type ChaosProxy, startChaosProxy } from './helpers/chaos-proxy.ts';
import { type NodeProcess, startNode } from './helpers/nodes.ts';
import { prng } from './helpers/sched-sim.ts'; // one seeded PRNG for the tests (mulberry32)

const SECONDS = Number(process.env.PP_CHAOS_SECONDS ?? 4);
const SEED = Number(process.env.PP_CHAOS_SEED ?? 13);
const SECRET = 'c4a0f1e9d2b3c8a7e6f5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a291807';
const NODES = 3;
/** The chaos goes on past its time until this many events happened (a loaded machine is slow to act). */
const MIN_EVENTS = 4;

function work(i: number, ms: number): number {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  return i * 7 + 1;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Slot {
  node: NodeProcess;
  proxy: ChaosProxy;
  stopped: boolean;
  /** A kill or restart is under way. */
  busy: boolean;
}

const live: NodeProcess[] = [];
after(async () => {
  for (const n of live) {
    try {
      process.kill(-n.child.pid!, 'SIGCONT');
    } catch {}
  }
  await Promise.all(live.map((n) => n.stop('SIGKILL')));
});

async function spawnNode(): Promise<NodeProcess> {
  const n = await startNode({ secret: SECRET, workers: 2, detached: true, logLevel: 'info' });
  live.push(n);
  return n;
}

function signalGroup(n: NodeProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-n.child.pid!, signal);
  } catch {
    // Already gone.
  }
}

test(`chaos for ${SECONDS} s (seed ${SEED}): kills, stops and link cuts while jobs stream; every job settles once with its value`, async () => {
  const random = prng(SEED);
  const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo));
  const slots: Slot[] = [];
  for (let i = 0; i < NODES; i++) {
    const node = await spawnNode();
    slots.push({ node, proxy: await startChaosProxy(node.port), stopped: false, busy: false });
  }
  const server = new Server({
    ncpus: 1,
    isolation: 'thread',
    ppservers: slots.map((s) => `127.0.0.1:${s.proxy.port}`),
    secret: SECRET,
    nodeTimeout: 1,
  });
  server.on('node-error', () => {}); // expected under chaos; the jobs are what is checked
  const events: string[] = [];
  const pending: Promise<void>[] = [];
  const calls = new Map<number, number>();
  const jobs: Array<Promise<number>> = [];
  try {
    const end = Date.now() + SECONDS * 1000;
    let chaosOver = false;
    // The stream: a few jobs every 20 ms, 0-5 ms each, as long as the chaos lasts.
    const stream = (async () => {
      let i = 0;
      while (!chaosOver) {
        for (let k = 0; k < 8; k++, i++) {
          const id = i;
          jobs.push(
            server.submit(work, [id, between(0, 6)], {
              callback: () => calls.set(id, (calls.get(id) ?? 0) + 1),
            }),
          );
        }
        await sleep(20);
      }
    })();
    // The chaos.
    while (Date.now() < end || events.length < MIN_EVENTS) {
      await sleep(between(150, 600));
      const slot = slots[between(0, NODES)]!;
      const action = ['kill', 'stop', 'drop', 'reset'][between(0, 4)]!;
      const tag = `${(SECONDS * 1000 - (end - Date.now())).toFixed(0)} ms ${action} ${slots.indexOf(slot)}`;
      if (slot.busy) continue;
      if (action === 'stop' && !slot.stopped) {
        events.push(tag);
        slot.stopped = true;
        signalGroup(slot.node, 'SIGSTOP');
        const ms = between(200, 1500);
        pending.push(
          sleep(ms).then(() => {
            signalGroup(slot.node, 'SIGCONT');
            slot.stopped = false;
          }),
        );
      } else if ((action === 'drop' || action === 'reset') && slot.proxy.state === 'up') {
        events.push(tag);
        slot.proxy.cut(action);
        const ms = between(200, 2000);
        pending.push(sleep(ms).then(() => slot.proxy.heal()));
      } else if (action === 'kill' && !slot.stopped) {
        events.push(tag);
        slot.busy = true;
        signalGroup(slot.node, 'SIGKILL');
        const ms = between(200, 1000);
        pending.push(
          sleep(ms)
            .then(() => spawnNode())
            .then((n) => {
              slot.node = n;
              slot.proxy.retarget(n.port);
              slot.busy = false;
            }),
        );
      }
    }
    chaosOver = true;
    await stream;
    await Promise.all(pending);
    for (const s of slots) {
      signalGroup(s.node, 'SIGCONT');
      s.proxy.heal();
    }
    let timer: NodeJS.Timeout | undefined;
    const results = await Promise.race([
      Promise.all(jobs),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `not every job settled within 60 s after the chaos (${server.progress().pending} pending); events: ${events.join(', ')}`,
              ),
            ),
          60_000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    results.forEach((r, i) => {
      assert.equal(r, i * 7 + 1, `job ${i}`);
    });
  } finally {
    await server.close();
    await Promise.allSettled(pending);
    for (const s of slots) await s.proxy.close();
  }
  // After close no callback can come: each ran exactly once.
  for (let i = 0; i < jobs.length; i++) assert.equal(calls.get(i), 1, `callback of job ${i}`);
  const remote = server.getStats().nodes.filter((n) => n.node !== 'local' && n.jobs > 0);
  console.log(
    `chaos (seed ${SEED}, ${SECONDS} s): ${jobs.length} jobs, ${events.length} events (${events.join(', ')}); ` +
      `jobs per node: ${server
        .getStats()
        .nodes.map((n) => `${n.node} ${n.jobs}`)
        .join(', ')}`,
  );
  assert.ok(events.length >= MIN_EVENTS, `chaos happened: ${events.join(', ')}`);
  assert.ok(remote.length > 0, 'remote nodes ran jobs');
});
