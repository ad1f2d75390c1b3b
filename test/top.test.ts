/**
 * `pp-node top` and `doctor` without a LAN: the table layout (width fitting), the node's status
 * answer (protocol 3) and who may have it, and the commands against real nodes on 127.0.0.1 with
 * --no-mdns (nothing mDNS runs here; the lab tests in test/top-lab.test.ts do that in namespaces).
 * Needs a built dist/ (`npm run build`).
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer } from 'ws';
import { Server } from '../src/api/server.ts';
import { parseCli, UsageError } from '../src/cli/args.ts';
import { formatChecks } from '../src/cli/doctor.ts';
import { NodeProbe, ProbeError } from '../src/cli/probe.ts';
import { formatBytes, formatTop, formatUptime, type TopRow, totalsRow } from '../src/cli/top.ts';
import { ClusterWatch } from '../src/cli/watch.ts';
import { StatusBook } from '../src/daemon/status.ts';
import { NodeHandshake } from '../src/protocol/handshake.ts';
import { decodeMessage, encodeMessage, JobStatus } from '../src/protocol/messages.ts';
import { SecureSocket } from '../src/protocol/secure-socket.ts';
import { isNodeStatus } from '../src/protocol/status.ts';
import { startDelayProxy } from './helpers/delay-proxy.ts';
import { BIN, type NodeProcess, startNode } from './helpers/nodes.ts';
import { pollUntil } from './helpers/poll.ts';

const SECRET = randomBytes(32).toString('hex');
const OTHER = randomBytes(32).toString('hex');

const up = (name: string, over: Partial<TopRow> = {}): TopRow => ({
  name,
  address: '10.0.0.1:60000',
  state: 'up',
  cpus: 8,
  busy: 3,
  queued: 12,
  clients: 1,
  jobsPerSecond: 1234.5,
  jobsDone: 123_456,
  failures: 2,
  load: 1.5,
  freeMemory: 3 * 2 ** 30,
  version: '0.1.0',
  uptimeS: 4000,
  note: '',
  ...over,
});
const rejected = (name: string): TopRow => ({
  ...up(name),
  state: 'rejected',
  cpus: null,
  busy: null,
  queued: null,
  clients: null,
  jobsPerSecond: null,
  jobsDone: null,
  failures: null,
  load: null,
  freeMemory: null,
  uptimeS: null,
  note: "the node rejected this machine's secret: copy the cluster's secret file",
});

describe('top: the table', () => {
  const rows = [up('alpha'), up('beta-with-a-rather-long-name', { cpus: 4, busy: 1 }), rejected('rogue')];

  it('fits every width: no line longer, NAME and STATE always there, a row per node and a totals row', () => {
    for (let width = 16; width <= 220; width++) {
      const lines = formatTop(rows, width);
      assert.equal(lines.length, 1 + rows.length + 1, `width ${width}`);
      for (const l of lines) assert.ok(l.length <= width, `width ${width}: ${JSON.stringify(l)}`);
      assert.match(lines[0]!, /^NAME +STATE/, `width ${width}`);
      assert.match(lines.at(-1)!, /^TOTAL +2\/3 up/, `width ${width}`);
      assert.match(lines[3]!, /rejected/, `width ${width}: the state says the secret was rejected`);
    }
  });

  it('drops the columns that matter least first, and shortens names last', () => {
    const wide = formatTop(rows, 220)[0]!;
    for (const h of ['ADDRESS', 'DONE', 'VERSION', 'UPTIME', 'FREE MEM', 'LOAD', 'NOTE'])
      assert.ok(wide.includes(h), h);
    const mid = formatTop(rows, 100);
    assert.ok(!mid[0]!.includes('VERSION') && !mid[0]!.includes('DONE'), mid[0]);
    for (const h of ['CPUS', 'BUSY', 'JOBS/S', 'NOTE'])
      assert.ok(mid[0]!.includes(h), `${h} kept at 100: ${mid[0]}`);
    assert.match(mid[3]!, /the node rejected this/, 'the reason is shown');
    assert.ok(mid[2]!.includes('beta-with-a-rather-long-name'), 'names are whole while other columns can go');
    const narrow = formatTop(rows, 24);
    assert.match(narrow[2]!, /^beta-\S*… +up$/, narrow[2]);
  });

  it('sums the nodes that are up in the totals', () => {
    const t = totalsRow(rows);
    assert.equal(t.cpus, 12);
    assert.equal(t.busy, 4);
    assert.equal(t.jobsPerSecond, 2469);
    assert.equal(t.state, '2/3 up');
  });

  it('shows control characters of a forged name escaped', () => {
    const lines = formatTop([up('evil\x1b[2J\nrow')], 200);
    assert.equal(lines.length, 3);
    assert.ok(!lines.join('').includes('\x1b'), 'no raw escape');
    assert.match(lines[1]!, /evil\\u001b\[2J\\u000arow/);
  });

  it('formats units', () => {
    assert.equal(formatUptime(42), '42s');
    assert.equal(formatUptime(312), '5m12s');
    assert.equal(formatUptime(7500), '2h05m');
    assert.equal(formatUptime(3 * 86400 + 4 * 3600), '3d04h');
    assert.equal(formatBytes(812 * 2 ** 20), '812M');
    assert.equal(formatBytes(3.2 * 2 ** 30), '3.2G');
  });
});

describe('status book', () => {
  it('counts jobs done and failures, and jobs/s over the last seconds', () => {
    let now = 10_000;
    const book = new StatusBook(() => now);
    for (let i = 0; i < 50; i++) {
      now += 20; // 50 jobs/s for 1 s
      book.finished(JobStatus.Ok);
    }
    book.finished(JobStatus.Threw);
    book.finished(JobStatus.Cancelled);
    book.failed();
    assert.equal(book.done, 52);
    assert.equal(book.failures, 2);
    assert.ok(Math.abs(book.jobsPerSecond() - 52) < 1, `${book.jobsPerSecond()}`);
    now += 10_000; // quiet for longer than the window
    assert.equal(book.jobsPerSecond(), 0);
  });

  it('reports a status that the receiving side accepts, and refuses a malformed one', () => {
    const book = new StatusBook();
    const s = book.report({
      id: 'x',
      name: 'n',
      version: '1',
      protocol: 3,
      ncpus: 2,
      ready: 2,
      busy: 0,
      queued: 0,
      clients: 0,
      monitors: 1,
    });
    assert.ok(isNodeStatus(s));
    assert.ok(isNodeStatus({ ...s, addedLater: 'fine' }), 'a newer node may say more');
    assert.ok(!isNodeStatus({ ...s, busy: -1 }));
    assert.ok(!isNodeStatus({ ...s, load: [1, 2] }));
    assert.ok(!isNodeStatus({ ...s, name: 5 }));
  });
});

describe('cli: top and doctor options', () => {
  it('parses --nodes, --once, --no-mdns, and refuses what does not belong', () => {
    const c = parseCli(['top', '--once', '--json', '--no-mdns', '--nodes', 'a,b:61000,[fe80::1]:60001']);
    assert.equal(c.command, 'top');
    assert.deepEqual(c.command === 'top' && c.nodes, [
      { host: 'a', port: 60000 },
      { host: 'b', port: 61000 },
      { host: 'fe80::1', port: 60001 },
    ]);
    assert.ok(c.command === 'top' && c.once && c.json && !c.mdns);
    const d = parseCli(['doctor']);
    assert.ok(d.command === 'doctor' && d.mdns && d.nodes.length === 0 && d.timeoutS === 3);
    for (const bad of [
      ['top', '--no-mdns'],
      ['top', '--nodes', 'host:port:x'],
      ['doctor', '--once'],
      ['top', '--port', '1'],
      ['ls', '--nodes', 'a'],
      ['--once'],
    ]) {
      assert.throws(() => parseCli(bad), UsageError, bad.join(' '));
    }
  });
});

describe('a node of protocol 2 (an older release)', () => {
  it('is up without a status, is never asked for one, and says to upgrade it', async () => {
    const secret = Buffer.from(SECRET);
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((r) => wss.once('listening', r));
    const received: string[] = [];
    wss.on('connection', (ws) => {
      const hs = new NodeHandshake(secret, { maxVersion: 2 });
      const onMessage = (data: Buffer) => {
        const step = hs.receive(new Uint8Array(data));
        if (step.send) ws.send(step.send);
        if (!step.session) return;
        ws.off('message', onMessage);
        const socket = new SecureSocket(ws, step.session);
        socket.on('message', (m) => received.push(decodeMessage(m).type));
        socket.resume();
        const info = { id: 'old', name: 'old-node', ncpus: 2, version: '0.0.9', protocol: 2 };
        socket.send(encodeMessage({ type: 'welcome', info }));
      };
      ws.on('message', onMessage);
    });
    const port = (wss.address() as { port: number }).port;
    try {
      const probe = await NodeProbe.connect(['127.0.0.1'], port, secret);
      assert.equal(probe.protocol, 2);
      assert.equal(probe.hasStatus, false);
      await assert.rejects(probe.status(), (e: unknown) => e instanceof ProbeError && e.kind === 'version');
      probe.close();
      const watch = new ClusterWatch(
        {
          json: true,
          secretFile: undefined,
          timeoutS: 1,
          interface: undefined,
          nodes: [{ host: '127.0.0.1', port }],
          mdns: false,
          allowWeakSecret: false,
        },
        secret,
      );
      await watch.start();
      const deadline = Date.now() + 10_000;
      while (!watch.settled && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      watch.tick();
      await watch.idle();
      const [n] = watch.nodes;
      assert.equal(n?.state, 'up');
      assert.equal(n?.name, 'old-node');
      assert.equal(n?.sample, null);
      assert.match(n!.why, /0\.0\.9 has no status: upgrade it/);
      await watch.stop();
      assert.ok(!received.includes('status'), `a node of protocol 2 would close on it: ${received}`);
    } finally {
      await new Promise((r) => wss.close(r));
    }
  });
});

describe('status over the network (127.0.0.1, no mDNS)', { timeout: 120_000 }, () => {
  let node: NodeProcess;
  let port: number;

  before(async () => {
    node = await startNode({ secret: SECRET, workers: 1 });
    port = node.port;
  });
  after(async () => {
    await node?.stop();
  });

  it('answers an authenticated monitor: counts, clients, failures; nothing without the secret', async () => {
    const probe = await NodeProbe.connect(['127.0.0.1'], port, Buffer.from(SECRET));
    try {
      assert.equal(probe.protocol, 3);
      const first = await probe.status();
      assert.equal(first.status.ncpus, 1);
      assert.equal(first.status.monitors, 1);
      assert.equal(first.status.clients, 0);
      assert.ok(Math.abs(first.clockSkewMs) < 1000 + first.rttMs, `same clock: ${first.clockSkewMs}`);
      const before = first.status.jobsDone;

      const server = new Server({ ncpus: 0, ppservers: [`127.0.0.1:${port}`], secret: SECRET });
      try {
        const ok = Array.from({ length: 20 }, (_, i) => server.submit((x: number) => x * 2, [i]));
        const bad = server.submit(() => {
          throw new Error('boom');
        }, []);
        assert.deepEqual(
          await Promise.all(ok),
          Array.from({ length: 20 }, (_, i) => i * 2),
        );
        await assert.rejects(bad, /boom/);
        const during = await probe.status();
        assert.equal(during.status.clients, 1, 'the job server counts as a client, the monitor does not');
        assert.equal(during.status.jobsDone, before + 21);
        assert.equal(during.status.failures, first.status.failures + 1);
        assert.ok(during.status.jobsPerSecond > 0);
      } finally {
        await server.close();
      }
    } finally {
      probe.close();
    }
    await assert.rejects(NodeProbe.connect(['127.0.0.1'], port, Buffer.from(OTHER)), (e: unknown) => {
      assert.ok(e instanceof ProbeError);
      assert.equal(e.kind, 'rejected');
      assert.match(e.message, /rejected this machine's secret/);
      return true;
    });
  });

  it('before the node proves the secret, a monitor reads at most 128 bytes a message', async () => {
    // Whatever answers at a node's address: here, a peer that sends 2 MiB at once.
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((r) => wss.once('listening', r));
    const closed = new Promise<number>((resolve) =>
      wss.on('connection', (ws) => {
        ws.on('close', resolve);
        ws.send(Buffer.alloc(2 << 20, 1));
      }),
    );
    try {
      const port = (wss.address() as { port: number }).port;
      await assert.rejects(
        NodeProbe.connect(['127.0.0.1'], port, Buffer.from(SECRET), { timeoutMs: 5000 }),
        ProbeError,
      );
      assert.equal(await closed, 1009, 'message too big: closed before the payload was read');
    } finally {
      await new Promise((r) => wss.close(r));
    }
  });

  it('a node listed twice (two addresses) is one row', async () => {
    const other = await startDelayProxy({ targetPort: port, oneWayMs: 0 }); // a second way in
    const watch = new ClusterWatch(
      {
        json: true,
        secretFile: undefined,
        timeoutS: 1,
        interface: undefined,
        nodes: [
          { host: '127.0.0.1', port },
          { host: '127.0.0.1', port: other.port },
        ],
        mdns: false,
        allowWeakSecret: false,
      },
      Buffer.from(SECRET),
    );
    try {
      await watch.start();
      await pollUntil(() => watch.settled, { what: 'both entries probed' });
      const rows = watch.nodes;
      assert.equal(rows.length, 1, JSON.stringify(rows.map((r) => r.key)));
      assert.equal(rows[0]!.state, 'up');
    } finally {
      await watch.stop();
      await other.close();
    }
  });

  it('a monitor does not keep a node from its --idle-timeout', async () => {
    const idle = await startNode({ secret: SECRET, workers: 1, args: ['--idle-timeout', '2'] });
    const probe = await NodeProbe.connect(['127.0.0.1'], idle.port, Buffer.from(SECRET));
    const t0 = Date.now();
    let exited = false;
    void idle.exited.then(() => (exited = true));
    while (!exited && Date.now() - t0 < 15_000) {
      await probe.status().catch(() => {});
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.ok(exited, 'the node stopped with a monitor connected');
    await idle.waitLog((l) => String(l.msg).includes('--idle-timeout'), 1000);
    probe.close();
  });

  it('a node that stops is down at once for a live monitor', async () => {
    const other = await startNode({ secret: SECRET, workers: 1 });
    const probe = await NodeProbe.connect(['127.0.0.1'], other.port, Buffer.from(SECRET));
    const closed = new Promise<string>((r) => probe.onClose(r));
    other.child.kill('SIGKILL');
    const t0 = Date.now();
    const why = await closed;
    assert.ok(Date.now() - t0 < 1500, `noticed after ${Date.now() - t0} ms`);
    assert.match(why, /closed/);
    await other.exited;
  });

  const cli = (args: string[], secret = SECRET) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, ...args], {
        env: { ...process.env, PP_SECRET: secret },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });

  it('top --once (piped) prints one table; --json one document; a closed port is down', async () => {
    const nodes = `127.0.0.1:${port},127.0.0.1:1`;
    const table = await cli(['top', '--once', '--no-mdns', '--nodes', nodes]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 4, table.stdout);
    assert.match(lines[0]!, /^NAME +STATE +ADDRESS +CPUS +BUSY/);
    assert.match(table.stdout, /127\.0\.0\.1:1 +down .*connection refused/);
    assert.match(table.stdout, new RegExp(`\\n\\S+ +up +127\\.0\\.0\\.1:${port} +1 +`));
    const json = await cli(['top', '--once', '--json', '--no-mdns', '--nodes', nodes]);
    assert.equal(json.code, 0, json.stderr);
    const docs = json.stdout.trim().split('\n');
    assert.equal(docs.length, 1);
    const doc = JSON.parse(docs[0]!);
    const states = Object.fromEntries(doc.nodes.map((n: { key: string; state: string }) => [n.key, n.state]));
    assert.deepEqual(states, { [`127.0.0.1:${port}`]: 'up', '127.0.0.1:1': 'down' });
    const upNode = doc.nodes.find((n: { state: string }) => n.state === 'up');
    assert.ok(isNodeStatus(upNode.status));
    assert.equal(doc.totals.up, 1);
    assert.equal(doc.totals.cpus, 1);
  });

  it('doctor: exit 0 when the nodes are fine, 1 with what to do when one is not', async () => {
    const good = await cli(['doctor', '--no-mdns', '--nodes', `127.0.0.1:${port}`]);
    assert.equal(good.code, 0, good.stdout);
    assert.match(good.stdout, /all is well/);
    const bad = await cli(['doctor', '--json', '--no-mdns', '--nodes', `127.0.0.1:${port}`], OTHER);
    assert.equal(bad.code, 1, bad.stdout);
    const report = JSON.parse(bad.stdout);
    assert.equal(report.ok, false);
    const node = report.checks.find((c: { check: string }) => c.check.startsWith('node '));
    assert.equal(node.verdict, 'fail');
    assert.match(node.detail, /rejects this machine's secret/);
    assert.match(node.fix, /copy the cluster's secret file/);
  });

  it('formats the doctor report with a fix under each problem', () => {
    const text = formatChecks([
      { check: 'secret', verdict: 'ok', detail: 'from PP_SECRET' },
      { check: 'node x', verdict: 'fail', detail: 'x: no answer', fix: 'start it' },
    ]);
    assert.match(text, /^ok {4}secret {2}from PP_SECRET$/m);
    assert.match(text, /^FAIL {2}node x {2}x: no answer\n +-> start it$/m);
    assert.match(text, /1 problem: node x\n$/);
  });
});
