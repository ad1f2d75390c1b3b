import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { getBundle } from '../src/functions/bundle.ts';
import { JobSetupError, Server } from '../src/index.ts';
import { decode, encode } from '../src/protocol/codec.ts';
import { ClientHandshake, PROTOCOL_VERSION } from '../src/protocol/handshake.ts';
import {
  decodeMessage,
  encodeMessage,
  HEAD_LIMITS,
  JobStatus,
  type Message,
  receivedBlob,
  runMessage,
} from '../src/protocol/messages.ts';
import { LIMITER_DEFAULTS } from '../src/protocol/rate-limit.ts';
import { clientHandshake, serverHandshake } from '../src/protocol/secure-socket.ts';
import { type NodeProcess, startNode } from './helpers/nodes.ts';

const SECRET = 'test-secret-0123456789abcdef0123456789';
const nodes: NodeProcess[] = [];
after(async () => {
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
});
async function node(opts: Parameters<typeof startNode>[0]): Promise<NodeProcess> {
  const n = await startNode(opts);
  nodes.push(n);
  return n;
}
/**
 * One node (2 workers) for the tests that neither stop it nor count its log lines: started
 * once, by the first that needs it (each spawn is a process and its workers).
 */
let shared: Promise<NodeProcess> | undefined;
const sharedNode = (): Promise<NodeProcess> => (shared ??= node({ secret: SECRET, workers: 2 }));

function square(x: number): number {
  const end = Date.now() + 2;
  while (Date.now() < end);
  return x * x;
}

const waitFor = async (cond: () => boolean, ms: number, what: string) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** Two nodes and a client (ncpus: 0) connected to both. */
async function twoNodes(): Promise<{ a: NodeProcess; b: NodeProcess; server: Server }> {
  const [a, b] = await Promise.all([node({ secret: SECRET }), node({ secret: SECRET })]);
  const server = new Server({
    ncpus: 0,
    ppservers: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
    secret: SECRET,
  });
  // Both connected, with all their workers started (a node counts only workers that are ready).
  await waitFor(
    () => server.getActiveNodes().filter((n) => n.ncpus === 2).length === 2,
    15_000,
    'both nodes and their workers',
  );
  return { a, b, server };
}

describe('remote nodes on 127.0.0.1', () => {
  test('jobs run on two nodes; one killed with SIGKILL mid-run loses nothing and nothing arrives twice', async () => {
    const { a, b, server } = await twoNodes();
    try {
      assert.deepEqual(
        server.getActiveNodes().map((n) => n.ncpus),
        [2, 2],
      );
      const deliveries = new Map<number, number>();
      const jobs = Array.from({ length: 1000 }, (_, i) =>
        server.submit(square, [i], {
          callback: (r: number) => deliveries.set(r, (deliveries.get(r) ?? 0) + 1),
        }),
      );
      await waitFor(() => jobs.filter((j) => j.finished).length >= 200, 20_000, '200 results');
      const t0 = Date.now();
      a.child.kill('SIGKILL');
      const down = new Promise<number>((resolve) => server.once('node-down', () => resolve(Date.now() - t0)));
      const results = await Promise.all(jobs);
      assert.deepEqual(
        results,
        Array.from({ length: 1000 }, (_, i) => i * i),
      );
      for (let i = 0; i < 1000; i++) assert.equal(deliveries.get(i * i), 1, `job ${i} delivered once`);
      assert.ok((await down) < 3000, 'the dead node is noticed within 3 s');
      const stats = server.getStats();
      assert.equal(stats.totalJobs >= 1000, true);
      const rows = Object.fromEntries(stats.nodes.map((n) => [n.node, n.jobs]));
      assert.ok(rows[`127.0.0.1:${a.port}`]! > 0 && rows[`127.0.0.1:${b.port}`]! > 0, JSON.stringify(rows));

      // Restarted on its port, the node is used again.
      const a2 = await node({ secret: SECRET, port: a.port });
      await waitFor(() => server.getActiveNodes().length === 2, 40_000, 'the restarted node');
      const before = rows[`127.0.0.1:${a2.port}`]!;
      await Promise.all(Array.from({ length: 200 }, (_, i) => server.submit(square, [i])));
      const after = server.getStats().nodes.find((n) => n.node === `127.0.0.1:${a2.port}`)!.jobs;
      assert.ok(after > before, 'the restarted node ran jobs');
    } finally {
      await server.close();
    }
  });

  test('a node that goes silent (SIGSTOP) is dropped within 3 s; its late results are never delivered', async () => {
    const { a, server } = await twoNodes();
    try {
      const deliveries = new Map<number, number>();
      const jobs = Array.from({ length: 300 }, (_, i) =>
        server.submit(square, [i], {
          callback: (r: number) => deliveries.set(r, (deliveries.get(r) ?? 0) + 1),
        }),
      );
      await waitFor(() => jobs.filter((j) => j.finished).length >= 50, 20_000, '50 results');
      a.child.kill('SIGSTOP');
      const t0 = Date.now();
      const downAfter = await new Promise<number>((resolve) =>
        server.once('node-down', () => resolve(Date.now() - t0)),
      );
      assert.ok(downAfter < 3000, `silent node dropped after ${downAfter} ms`);
      a.child.kill('SIGCONT');
      await Promise.all(jobs);
      await new Promise((r) => setTimeout(r, 500));
      for (let i = 0; i < 300; i++) assert.equal(deliveries.get(i * i), 1, `job ${i} delivered once`);
    } finally {
      await server.close();
    }
  });

  test('SIGTERM: the node hands back queued jobs, finishes running ones, and exits 0; SIGUSR1 prints its stats', async () => {
    const { a, server } = await twoNodes();
    try {
      const ref = server.put(new Float64Array(1000).fill(2));
      const scaled = (arr: Float64Array, i: number) => {
        const end = Date.now() + 3;
        while (Date.now() < end);
        return arr[0]! * i;
      };
      const deliveries = new Map<number, number>();
      const jobs = Array.from({ length: 400 }, (_, i) =>
        server.submit(scaled, [ref, i], {
          callback: (r: number) => deliveries.set(r, (deliveries.get(r) ?? 0) + 1),
        }),
      );
      await waitFor(() => jobs.filter((j) => j.finished).length >= 60, 20_000, '60 results');
      a.child.kill('SIGUSR1');
      await waitFor(
        () => a.text.some((l) => l.startsWith('Job execution statistics')),
        10_000,
        'the stats table SIGUSR1 prints',
      );
      a.child.kill('SIGTERM');
      assert.equal(await a.exited, 0, 'the node exits cleanly');
      assert.deepEqual(
        await Promise.all(jobs),
        Array.from({ length: 400 }, (_, i) => 2 * i),
      );
      for (let i = 0; i < 400; i++) assert.equal(deliveries.get(2 * i), 1, `job ${i} delivered once`);
      assert.ok(a.logs.some((l) => l.msg === 'stopped'));
    } finally {
      await server.close();
    }
  });

  test("SIGTERM: jobs waiting inside the node's workers come back at once instead of running first", async () => {
    const [a, b] = await Promise.all([
      node({ secret: SECRET, workers: 1 }),
      node({ secret: SECRET, workers: 1 }),
    ]);
    const server = new Server({
      ncpus: 0,
      ppservers: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
      secret: SECRET,
    });
    try {
      await waitFor(() => server.getActiveNodes().length === 2, 15_000, 'both nodes');
      const work = (ms: number) => {
        const end = Date.now() + ms;
        while (Date.now() < end);
        return process.ppid; // the node
      };
      // Measured as tiny, so that each node's worker takes several of the slow ones at once.
      await Promise.all(Array.from({ length: 40 }, () => server.submit(work, [0])));
      const jobs = Array.from({ length: 16 }, () => server.submit(work, [400]));
      await waitFor(() => jobs.some((j) => j.finished), 10_000, 'a first result');
      const t0 = Date.now();
      a.child.kill('SIGTERM');
      assert.equal(await a.exited, 0, 'the node exits cleanly');
      const took = Date.now() - t0;
      const ranOn = await Promise.all(jobs); // every job still gets its result
      const onA = ranOn.filter((pid) => pid === a.child.pid).length;
      // Its worker held about 8 of them (3 s of work): it runs at most the one it had started.
      assert.ok(took < 2000, `the node took ${took} ms to stop: it ran jobs it could have handed back`);
      assert.ok(onA <= 3, `the stopping node ran ${onA} of the jobs`);
    } finally {
      await server.close();
    }
  });

  test('a wrong secret is a clear error on both sides, and is not retried in a loop', async () => {
    const a = await node({ secret: SECRET });
    const server = new Server({
      ncpus: 0,
      ppservers: [`127.0.0.1:${a.port}`],
      secret: 'another-secret-entirely-0000000',
    });
    try {
      const error = await new Promise<Error>((resolve) => server.once('node-error', (_n, e) => resolve(e)));
      assert.match(error.message, /rejected our secret/);
      assert.match(error.message, new RegExp(`127.0.0.1:${a.port}`));
      await a.waitLog((l) => l.msg === 'client rejected: wrong secret' && typeof l.peer === 'string');
      // Queued jobs fail: nothing can run them.
      await assert.rejects(server.submit((x: number) => x, [1]).result(), /rejected our secret/);
      await new Promise((r) => setTimeout(r, 1500));
      const attempts = a.logs.filter((l) => l.msg === 'client rejected: wrong secret').length;
      assert.equal(attempts, 1, 'no retry after a rejection');
    } finally {
      await server.close();
    }
  });

  test('failed handshakes slow down the address (not a ban), and are logged as counts', async () => {
    const a = await node({ secret: SECRET });
    const spacing = 60_000 / LIMITER_DEFAULTS.perMinute;
    /** One handshake with a wrong secret: its close code (or HTTP status) and how long it took. */
    const attempt = async (): Promise<{ code: number; ms: number }> => {
      const t0 = Date.now();
      const ws = new WebSocket(`ws://127.0.0.1:${a.port}/`);
      ws.on('error', () => {});
      const refused = await new Promise<number>((r) => {
        ws.once('open', () => r(0));
        ws.once('unexpected-response', (_req, res) => r(res.statusCode ?? -1));
      });
      if (refused) return { code: refused, ms: Date.now() - t0 };
      const hs = new ClientHandshake(new TextEncoder().encode('not-the-secret-at-all-000000'));
      ws.on('message', (data: Buffer) => {
        const step = hs.receive(data);
        if (step.send) ws.send(step.send);
      });
      ws.send(hs.start());
      const code = await new Promise<number>((r) => ws.once('close', (c) => r(c)));
      return { code, ms: Date.now() - t0 };
    };
    const t0 = Date.now();
    const burst: number[] = [];
    for (let i = 0; i < LIMITER_DEFAULTS.burst; i++) burst.push((await attempt()).code);
    assert.deepEqual(burst, Array(LIMITER_DEFAULTS.burst).fill(4001), 'wrong secret');
    // Beyond the burst: still answered (slowed down, not banned), but the bucket empties at
    // one per spacing: the second after the burst cannot be answered before two spacings.
    for (let i = 0; i < 2; i++) assert.equal((await attempt()).code, 4001);
    const ms = Date.now() - t0;
    assert.ok(ms >= 2 * spacing - 100, `${LIMITER_DEFAULTS.burst + 2} answers in ${ms} ms`);
    // Many at once: those that would wait too long are refused, at the upgrade (429) or at the
    // HELLO (4004), and never answered faster.
    const together = await Promise.all(Array.from({ length: 4 }, attempt));
    assert.ok(
      together.some((t) => t.code === 429 || t.code === 4004),
      JSON.stringify(together),
    );
    const line = await a.waitLog((l) => l.msg === 'failed handshakes (counts over the last 5 s at most)');
    assert.ok(Number(line.wrongSecret) >= 2, JSON.stringify(line));
    // One line on its own per interval, the rest counted.
    assert.ok(a.logs.filter((l) => l.msg === 'client rejected: wrong secret').length <= 3);
  });

  test('large arguments and results cross exactly, interleaved with small jobs, both ways', async () => {
    const a = await sharedNode();
    const server = new Server({ ncpus: 0, ppservers: [`127.0.0.1:${a.port}`], secret: SECRET });
    try {
      await waitFor(() => server.getActiveNodes().length === 1, 15_000, 'connection');
      // 3 MiB crosses the 2 MiB chunk size; the result comes back as large as it went.
      const reversed = (v: Float64Array, k: number) => v.map((x) => x * k).reverse();
      const inc = (x: number) => x + 1;
      const sizes = [70_000, 131_072, 393_216, 10];
      const jobs: Array<PromiseLike<unknown>> = [];
      const want: unknown[] = [];
      for (let k = 0; k < 24; k++) {
        const v = Float64Array.from({ length: sizes[k % sizes.length]! }, (_, i) => i + k);
        jobs.push(server.submit(reversed, [v, k]));
        want.push(v.map((x) => x * k).reverse());
        jobs.push(server.submit(inc, [k]));
        want.push(k + 1);
      }
      assert.deepEqual(await Promise.all(jobs), want);
    } finally {
      await server.close();
    }
  });

  test('one array sent with many jobs and changed now and then: each job sees it as at submit', async () => {
    const a = await sharedNode();
    const server = new Server({ ncpus: 0, ppservers: [`127.0.0.1:${a.port}`], secret: SECRET });
    try {
      await waitFor(() => server.getActiveNodes().length === 1, 15_000, 'connection');
      const first = (v: Float64Array) => v[0]! + v[v.length - 1]!;
      const v = new Float64Array(50_000);
      const jobs: Array<PromiseLike<number>> = [];
      const want: number[] = [];
      for (let k = 0; k < 40; k++) {
        if (k % 10 === 0) v[v.length - 1] = k; // stored parts are shared until the bytes change
        jobs.push(server.submit(first, [v]));
        want.push(v[v.length - 1]!);
      }
      assert.deepEqual(await Promise.all(jobs), want);
    } finally {
      await server.close();
    }
  });

  test('two clients share one node fairly', async () => {
    const a = await sharedNode();
    const big = new Server({ ncpus: 0, ppservers: [`127.0.0.1:${a.port}`], secret: SECRET });
    const small = new Server({ ncpus: 0, ppservers: [`127.0.0.1:${a.port}`], secret: SECRET });
    try {
      await waitFor(
        () => big.getActiveNodes().length === 1 && small.getActiveNodes().length === 1,
        15_000,
        'connections',
      );
      const slow = (x: number) => {
        const end = Date.now() + 5;
        while (Date.now() < end);
        return x;
      };
      // FIFO would finish all of the big client's jobs first; shared fairly, the small one's
      // 10 jobs finish while the big one has done about as many.
      const many = Array.from({ length: 600 }, (_, i) => big.submit(slow, [i]));
      await waitFor(() => many.some((j) => j.finished), 5000, 'first big result');
      const few = await Promise.all(Array.from({ length: 10 }, (_, i) => small.submit(slow, [i])));
      assert.deepEqual(few, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      const doneBig = many.filter((j) => j.finished).length;
      assert.ok(doneBig < 300, `the small client finished when the big one had done ${doneBig} of 600`);
      await Promise.all(many);
    } finally {
      await Promise.all([big.close(), small.close()]);
    }
  });

  test('a tampered frame and a malformed handshake close the connection; the node keeps serving', async () => {
    const a = await sharedNode();
    // Malformed handshake: garbage instead of a hello.
    const junk = new WebSocket(`ws://127.0.0.1:${a.port}/`);
    await new Promise((r) => junk.once('open', r));
    junk.send(Buffer.from('hello, is this the node?'));
    const junkClose = await new Promise<number>((r) => junk.once('close', (code) => r(code)));
    assert.ok(junkClose >= 4000, `closed with protocol code ${junkClose}`);

    // Proper handshake, then one tampered encrypted frame.
    const ws = new WebSocket(`ws://127.0.0.1:${a.port}/`);
    await new Promise((r) => ws.once('open', r));
    const hs = new ClientHandshake(new TextEncoder().encode(SECRET));
    const session = await new Promise<any>((resolve, reject) => {
      ws.on('message', (data: Buffer) => {
        const step = hs.receive(data);
        if (step.send) ws.send(step.send);
        if (step.error) reject(step.error);
        if (step.session) resolve(step.session);
      });
      ws.send(hs.start());
    });
    ws.removeAllListeners('message');
    const frame = session.seal([Buffer.from([1]), ...encodeMessage({ type: 'ping', t: 1 })]);
    frame[frame.length - 3] ^= 0x55;
    ws.send(frame);
    const code = await new Promise<number>((r) => ws.once('close', (c) => r(c)));
    assert.equal(code, 4003);
    await a.waitLog((l) => /bad|authentication/.test(String(l.msg) + String(l.reason ?? '')));

    const server = new Server({ ncpus: 0, ppservers: [`127.0.0.1:${a.port}`], secret: SECRET });
    try {
      assert.equal(await server.submit((x: number) => x * 2, [21]), 42);
    } finally {
      await server.close();
    }
  });

  test('a definition the node cannot read within the head limits: its jobs fail with why; the connection stays', {
    timeout: 30_000,
  }, async () => {
    const a = await sharedNode();
    // A client that skipped submit's check: globals nested past what heads allow.
    const ws = new WebSocket(`ws://127.0.0.1:${a.port}/`);
    await new Promise((r) => ws.once('open', r));
    const socket = await clientHandshake(ws, new TextEncoder().encode(SECRET));
    const got: Message[] = [];
    let closed = '';
    socket.on('message', (data) => got.push(decodeMessage(data)));
    socket.on('close', (code, reason) => (closed = `${code} ${reason}`));
    socket.resume();
    try {
      let deep: unknown = 0;
      for (let i = 0; i < HEAD_LIMITS.maxDepth; i++) deep = { deep };
      const { code, bindings, modules } = getBundle({ fn: (x: number) => x + 1 });
      const def = {
        hash: 'h-deep',
        name: 'deep',
        code,
        bindings: [...bindings, 'G'],
        modules,
        globals: { G: deep },
      };
      socket.send(encodeMessage({ type: 'define', defs: [def] }));
      socket.send(encodeMessage(runMessage([{ id: 5, hash: 'h-deep', blob: encode([undefined, [1]]) }])));
      const failed = () => got.find((m) => m.type === 'failed');
      for (const end = Date.now() + 10_000; !failed() && !closed && Date.now() < end; )
        await new Promise((r) => setTimeout(r, 20));
      assert.equal(closed, '', 'the node kept the connection');
      const f = failed();
      assert.ok(f?.type === 'failed', `a 'failed' answer; got ${JSON.stringify(got.map((m) => m.type))}`);
      assert.deepEqual(f.ids, [5]);
      const error = decode(receivedBlob(f.blobs[0]!)) as Error;
      assert.match(
        error.message,
        /could not read the definition of deep: .*nesting deeper than maxDepth \(16\)/,
      );
    } finally {
      ws.close();
    }
  });

  test('a result the client cannot handle from a node settles its job with an error', {
    timeout: 30_000,
  }, async () => {
    // A node that answers every job as 'could not start', with an outcome that does not read:
    // a null-prototype object (no toString), then bytes that do not decode.
    const secret = new TextEncoder().encode(SECRET);
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((r) => wss.once('listening', r));
    const payloads = [encode(Object.create(null)), new Uint8Array([0xff, 0xff])];
    let answered = 0;
    wss.on('connection', async (ws) => {
      const socket = await serverHandshake(ws, secret);
      socket.on('message', (data) => {
        const msg = decodeMessage(data);
        if (msg.type === 'ping') socket.send(encodeMessage({ type: 'pong', t: msg.t }));
        if (msg.type !== 'run') return;
        for (const [id] of msg.jobs) {
          const blob = payloads[answered++ % payloads.length]!;
          socket.send(
            encodeMessage({ type: 'done', results: [[id, JobStatus.SetupFailed, 0]], blobs: [blob] }),
          );
        }
      });
      socket.resume();
      const info = { id: 'fake', name: 'fake', ncpus: 1, version: '0', protocol: PROTOCOL_VERSION };
      socket.send(encodeMessage({ type: 'welcome', info }));
      socket.send(encodeMessage({ type: 'ncpus', ncpus: 1 })); // protocol 2: its ready workers
    });
    const port = (wss.address() as { port: number }).port;
    const server = new Server({ ncpus: 0, ppservers: [`127.0.0.1:${port}`], secret: SECRET });
    try {
      await waitFor(() => server.getActiveNodes().length === 1, 10_000, 'the fake node');
      const first = server.submit((x: number) => x, [1]);
      await assert.rejects(
        first,
        (e: any) => e instanceof JobSetupError && /could not start/.test(e.message),
      );
      const second = server.submit((x: number) => x, [2]);
      await assert.rejects(
        second,
        (e: any) => e instanceof JobSetupError && /could not be decoded/.test(e.message),
      );
      assert.equal(answered, 2, 'each job was answered once, and never sent again');
    } finally {
      await server.close();
      await new Promise((r) => wss.close(r));
    }
  });
});
