// The dashboard without a browser: who may load the page and open its socket (token, Origin,
// address), its options, what the updates carry (aggregated, sampled, never one per job),
// and that Server.close() shuts it. The page itself is tested in Chromium (dashboard-browser.test.ts).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { createInterface } from 'node:readline';
import { after, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import {
  Collector,
  type DashboardSource,
  MAX_BARS_PER_UPDATE,
  MAX_ERRORS_PER_UPDATE,
  RING_SIZE,
  type Update,
} from '../src/dashboard/collector.ts';
import { dashboardOptions, UPDATES_PER_SECOND } from '../src/dashboard/dashboard.ts';
import { Server, type ServerOptions } from '../src/index.ts';

const servers: Server[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function withDashboard(dashboard: ServerOptions['dashboard']) {
  const server = new Server({ ncpus: 1, dashboard });
  servers.push(server);
  const url = await server.dashboardUrl();
  assert.ok(url, 'the dashboard serves');
  return { server, url: new URL(url) };
}

function get(
  url: string,
  opts: { method?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A socket to the dashboard, with every message it got, parsed, and when. */
type Page = WebSocket & { received: Array<Update & { type: string; at: number }> };

/** Opens the socket; resolves with it once open, or with the HTTP status it was refused with. */
function openSocket(url: string, origin?: string): Promise<Page | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, origin === undefined ? {} : { origin }) as Page;
    ws.received = [];
    ws.on('message', (m) => ws.received.push({ ...JSON.parse(String(m)), at: performance.now() }));
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode!);
      res.resume();
    });
    ws.once('error', reject);
  });
}

const socketUrl = (u: URL, token: string | null) =>
  `ws://${u.host}/ws${token === null ? '' : `?token=${encodeURIComponent(token)}`}`;

describe('dashboard access', () => {
  test('the page and the socket need the token; another Origin is refused; 127.0.0.1 by default', async () => {
    const { url } = await withDashboard(0);
    const token = url.searchParams.get('token')!;
    assert.equal(url.hostname, '127.0.0.1');
    assert.match(token, /^[A-Za-z0-9_-]{22}$/, 'a random 128-bit token');

    const ok = await get(url.href);
    assert.equal(ok.status, 200);
    assert.match(ok.body, /<title>pp-node dashboard<\/title>/);
    assert.doesNotMatch(
      ok.body,
      /<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3)/,
      'nothing from elsewhere',
    );
    assert.match(String(ok.headers['content-security-policy']), /default-src 'none'/);

    const none = await get(`http://${url.host}/`);
    assert.equal(none.status, 403);
    assert.match(none.body, /token/, 'says what is missing');
    assert.equal((await get(`http://${url.host}/?token=${token.slice(0, -1)}x`)).status, 403);
    assert.equal((await get(`http://${url.host}/?token=${token}x`)).status, 403);
    assert.equal((await get(`http://${url.host}/other?token=${token}`)).status, 404);
    assert.equal((await get(url.href, { method: 'POST' })).status, 405);

    assert.equal(await openSocket(socketUrl(url, null)), 403);
    assert.equal(await openSocket(socketUrl(url, 'x'.repeat(22))), 403);
    assert.equal(await openSocket(socketUrl(url, token), 'http://evil.example'), 403);
    assert.equal(await openSocket(socketUrl(url, token), `http://127.0.0.1:${Number(url.port) + 1}`), 403);
    assert.equal(await openSocket(socketUrl(url, token), 'null'), 403);
    const ws = await openSocket(socketUrl(url, token), `http://${url.host}`);
    assert.ok(ws instanceof WebSocket, 'the page’s own origin connects');
    const deadline = Date.now() + 5000;
    while (ws.received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const hello = ws.received[0]!;
    assert.equal(hello.type, 'hello');
    assert.deepEqual(
      hello.nodes.map((n) => n.id),
      ['local'],
    );
    ws.close();
  });

  test('another address only when given, still with the token; a fixed token may be given', async () => {
    const token = 'my-own-token-0123456789';
    const { url } = await withDashboard({ port: 0, host: '127.0.0.2', token });
    assert.equal(url.hostname, '127.0.0.2');
    assert.equal(url.searchParams.get('token'), token);
    assert.equal((await get(`http://127.0.0.2:${url.port}/`)).status, 403);
    assert.equal((await get(url.href)).status, 200);
    // Not on 127.0.0.1: it listens on the address given, nowhere else.
    await assert.rejects(get(`http://127.0.0.1:${url.port}/?token=${token}`), /ECONNREFUSED/);
  });

  test('bad options throw at once with what to pass', () => {
    assert.throws(() => dashboardOptions(70000), /0 to 65535/);
    assert.throws(() => dashboardOptions(1.5), /whole number/);
    assert.throws(() => dashboardOptions({ token: 'short' }), /at least 16/);
    assert.throws(() => dashboardOptions({ token: 'has spaces in it, 12345' }), /at least 16/);
    assert.throws(() => dashboardOptions({ host: '' }), /address such as/);
    assert.equal(dashboardOptions(false), null);
    assert.deepEqual({ ...dashboardOptions(true), token: '' }, { port: 8787, host: '127.0.0.1', token: '' });
    // The server checks before it starts anything.
    assert.throws(() => new Server({ ncpus: 1, dashboard: -1 }), /0 to 65535/);
  });

  test('a port in use: said on stderr, the server runs on without it', async () => {
    const { url } = await withDashboard(0);
    const lines: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => {
      lines.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    let server: Server;
    try {
      server = new Server({ ncpus: 1, dashboard: Number(url.port) });
      servers.push(server);
      assert.equal(await server.dashboardUrl(), null);
    } finally {
      process.stderr.write = write;
    }
    assert.match(lines.join(''), /port \d+ is in use: pass another one .* or 0 for any free port/);
    assert.equal(await server.submit((x: number) => x + 1, [1]), 2);
  });

  test('the built package serves the page it ships (dist/ finds assets/)', async () => {
    const { Server: Built } = await import('pp-node'); // dist/, as installed (npm test builds first)
    const server = new Built({ ncpus: 0, dashboard: 0 });
    try {
      const r = await get((await server.dashboardUrl())!);
      assert.equal(r.status, 200);
      assert.match(r.body, /<title>pp-node dashboard<\/title>/);
    } finally {
      await server.close();
    }
  });

  test('neither the dashboard nor a connected page keeps the program alive', async () => {
    // A program that forgets close(): once its own work (a 3 s timer) is done, it must end
    // even though a page is connected.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const code = `import { Server } from ${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)};
      const server = new Server({ ncpus: 0, dashboard: 0 });
      console.log(await server.dashboardUrl());
      setTimeout(() => console.log('work done'), 3000);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      env,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const lines = createInterface({ input: child.stdout! });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const url = new URL(await new Promise<string>((resolve) => lines.once('line', resolve)));
    const ws = (await openSocket(socketUrl(url, url.searchParams.get('token')))) as Page;
    try {
      const deadline = Date.now() + 5000;
      while (ws.received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(ws.received[0]?.type, 'hello', 'the page is connected');
      let timer: NodeJS.Timeout | undefined;
      const exitCode = await Promise.race([
        exited,
        new Promise((r) => (timer = setTimeout(() => r('still running'), 20_000))),
      ]);
      clearTimeout(timer); // else it would hold this file open until 20 s after this test began
      assert.equal(exitCode, 0, 'it ended by itself');
    } finally {
      ws.terminate();
      child.kill();
    }
  });

  test('close() closes the page’s socket and stops serving', async () => {
    const server = new Server({ ncpus: 1, dashboard: 0 });
    const url = new URL((await server.dashboardUrl())!);
    const ws = (await openSocket(socketUrl(url, url.searchParams.get('token')))) as WebSocket;
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    await server.close();
    assert.equal(await closed, 1001);
    await assert.rejects(get(url.href), /ECONNREFUSED/);
  });
});

describe('dashboard updates', () => {
  test('a few updates a second whatever the job rate; every finished job is a bar or counted as sampled out', async () => {
    const { server, url } = await withDashboard(0);
    const ws = (await openSocket(socketUrl(url, url.searchParams.get('token')))) as Page;
    const updates = ws.received;
    const t0 = performance.now();
    const N = 20_000;
    const jobs = [];
    for (let i = 0; i < N; i++) jobs.push(server.submit((x: number) => x + 1, [i]));
    await Promise.all(jobs);
    // The last jobs reach the page with the next update.
    const deadline = Date.now() + 5000;
    const counted = () =>
      updates.reduce((s, u) => s + (u.type === 'update' ? u.bars.length / 5 + u.unsampled : 0), 0);
    while (counted() < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const seconds = (performance.now() - t0) / 1000;
    ws.close();

    assert.equal(counted(), N, 'each job once: a bar or sampled out');
    const ups = updates.filter((u) => u.type === 'update');
    assert.ok(
      ups.length <= Math.ceil(seconds * UPDATES_PER_SECOND) + 2,
      `${ups.length} updates in ${seconds.toFixed(1)} s`,
    );
    for (const u of ups) assert.ok(u.bars.length / 5 <= MAX_BARS_PER_UPDATE, 'bars per update are capped');
    const last = ups.at(-1)!;
    const group = last.groups.find((g) => g.name === 'default')!;
    assert.deepEqual([group.total, group.finished, group.failed, group.pending], [N, N, 0, 0]);
    assert.equal(last.nodes.find((n) => n.id === 'local')!.jobs, N);
    assert.deepEqual(last.fns.length, 1);
    // Bars carry sensible numbers: node 'local', a start before the update, a duration >= 0.
    const bars = ups.flatMap((u) => u.bars);
    for (let i = 0; i < bars.length; i += 5) {
      assert.equal(last.nodeIds[bars[i]!], 'local');
      assert.ok(bars[i + 3]! >= 0 && bars[i + 2]! <= last.t, `bar ${i / 5}`);
      assert.equal(bars[i + 4], 1);
    }
  });
});

describe('collector', () => {
  const source = (
    groups: Map<string, { total: number; finished: number; failed: number; pending: number }>,
  ) =>
    ({
      server: {
        getStats: () => ({ nodes: [], uptime: 1, activeJobs: 0, ncpus: 1, totalJobs: 0 }),
        getActiveNodes: () => [],
        on: () => undefined,
        off: () => undefined,
      },
      groups: () => groups,
    }) satisfies DashboardSource;

  test('the ring keeps the newest jobs; older ones are counted, not lost track of', () => {
    const c = new Collector(source(new Map()), performance.now());
    const n = RING_SIZE * 2 + 17;
    for (let i = 0; i < n; i++) c.ran(i % 2 ? 'a' : 'b', 'f', i % 10, true);
    const u = c.update();
    assert.equal(u.bars.length / 5 + u.unsampled, n);
    assert.equal(u.bars.length / 5, MAX_BARS_PER_UPDATE);
    assert.deepEqual(u.nodeIds, ['b', 'a']);
    const next = c.update();
    assert.equal(next.bars.length + next.unsampled, 0, 'each job in one update only');
  });

  test('job errors: the first few per update with their message, the rest counted', () => {
    const c = new Collector(source(new Map()), performance.now());
    for (let i = 0; i < 50; i++) c.failed(i, 'f', i % 2 ? 'local' : null, new RangeError(`bad ${i}`));
    const u = c.update();
    assert.equal(u.events.length, MAX_ERRORS_PER_UPDATE);
    assert.equal(u.moreErrors, 50 - MAX_ERRORS_PER_UPDATE);
    assert.deepEqual(u.events[1], {
      ...u.events[1],
      kind: 'job-error',
      subject: '#1 f on local',
      message: 'RangeError: bad 1',
    });
    c.failed(99, 'g', null, 'x'.repeat(10_000));
    const v = c.update();
    assert.equal(v.events.length, 1);
    assert.ok(v.events[0]!.message.length <= 300, 'long messages are clipped');
    assert.equal(v.moreErrors, 0);
  });

  test('rate and ETA per group', () => {
    const g = { total: 1000, finished: 0, failed: 0, pending: 1000 };
    const c = new Collector(source(new Map([['g', g]])), performance.now());
    c.update();
    const t = performance.now();
    while (performance.now() - t < 200);
    g.finished = 100;
    g.pending = 900;
    const row = c.update().groups[0]!;
    assert.ok(row.rate > 100 && row.rate < 600, `rate ${row.rate}`); // 100 jobs in 200+ ms
    assert.ok(Math.abs(row.eta! - 900 / row.rate) < 1e-9);
  });
});
