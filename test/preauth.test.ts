/**
 * What a peer without the secret can make a node hold before it authenticates (issue 13, items 1,
 * 2 and 13): memory, connections, file descriptors, and web pages. Real pp-node processes on
 * 127.0.0.1; the attackers are raw sockets from other loopback addresses (127.0.0.0/8 all reach
 * 127.0.0.1 on Linux), so that the limiter's bans of one test never touch another's.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import {
  addressKey,
  MAX_PREAUTH_CONNECTIONS,
  MAX_PREAUTH_PER_ADDRESS,
  UPGRADE_TIMEOUT_MS,
} from '../src/daemon/admission.ts';
import { decodeMessage, encodeMessage } from '../src/protocol/messages.ts';
import { PREAUTH_MAX_PAYLOAD, raiseMaxPayload } from '../src/protocol/preauth-payload.ts';
import { clientHandshake, MAX_WS_PAYLOAD, zeroMask } from '../src/protocol/secure-socket.ts';
import { type NodeProcess, startNode } from './helpers/nodes.ts';

const SECRET = 'preauth-secret-0123456789abcdef01234567';
const nodes: NodeProcess[] = [];
after(async () => {
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
});
async function node(args: string[] = []): Promise<NodeProcess> {
  const n = await startNode({ secret: SECRET, workers: 1, args, logLevel: 'info' });
  nodes.push(n);
  return n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what()}`);
    await sleep(20);
  }
}

/** A raw TCP connection whose state the test can read. */
interface Raw {
  socket: Socket;
  closed: boolean;
  closedAt: number;
  /** Bytes received so far (the HTTP response, then frames). */
  received: Buffer;
}

function rawConnect(port: number, localAddress: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    const raw: Raw = { socket, closed: false, closedAt: 0, received: Buffer.alloc(0) };
    socket.on('data', (d) => {
      raw.received = Buffer.concat([raw.received, d]);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      raw.closed = true;
      raw.closedAt = Date.now();
    });
    socket.once('connect', () => resolve(raw));
    socket.once('error', reject);
  });
}

/** An HTTP upgrade to WebSocket over a raw socket; resolves with the status line's code (0: closed first). */
async function rawUpgrade(
  port: number,
  localAddress: string,
  headers: Record<string, string> = {},
): Promise<Raw & { status: number }> {
  const raw = await rawConnect(port, localAddress);
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  raw.socket.write(
    `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
  );
  await waitFor(
    () => raw.closed || raw.received.includes('\r\n\r\n'),
    5000,
    () => `the answer to an upgrade from ${localAddress}`,
  );
  const head = raw.received.toString('latin1');
  const status = head.startsWith('HTTP/1.1 ') ? Number(head.slice(9, 12)) : 0;
  const end = raw.received.indexOf('\r\n\r\n');
  raw.received = end >= 0 ? raw.received.subarray(end + 4) : Buffer.alloc(0);
  return Object.assign(raw, { status });
}

/** The header of a masked (zero key) binary client frame announcing `length` payload bytes. */
function frameHeader(length: number): Buffer {
  const h = Buffer.alloc(14);
  h[0] = 0x82;
  h[1] = 0x80 | 127;
  h.writeBigUInt64BE(BigInt(length), 2);
  return h; // the last 4 bytes: the mask key, zeros
}

/** A whole masked (zero key) binary client frame. */
function frame(payload: Buffer): Buffer {
  return Buffer.concat([frameHeader(payload.length), payload]);
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** Authenticates as a real client would, from 127.0.0.1; resolves with the socket. */
async function authenticate(port: number) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, {
    maxPayload: MAX_WS_PAYLOAD,
    perMessageDeflate: false,
    generateMask: zeroMask,
  });
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return clientHandshake(ws, Buffer.from(SECRET));
}

/** After authentication a message far larger than the pre-auth limit goes through (a 1 MiB `put`, then a ping). */
async function bigMessageGoesThrough(port: number): Promise<void> {
  const socket = await authenticate(port);
  const got: string[] = [];
  socket.on('message', (data) => got.push(decodeMessage(data).type));
  let closed = '';
  socket.on('close', (code, reason) => {
    closed = `${code} ${reason}`;
  });
  socket.resume();
  socket.send(encodeMessage({ type: 'put', refs: ['r1'], blobs: [new Uint8Array(1 << 20)] }));
  socket.send(encodeMessage({ type: 'ping', t: 1 }));
  await waitFor(
    () => got.includes('pong') || closed !== '',
    5000,
    () => 'a pong after a 1 MiB message',
  );
  assert.equal(closed, '', `the node closed an authenticated connection: ${closed}`);
  socket.close();
}

const isOpen = (r: Raw) => !r.closed;

describe('before authentication', () => {
  test('a message larger than any handshake message is refused when its header arrives, not buffered', async () => {
    const n = await node();
    const t0 = Date.now();
    const raw = await rawUpgrade(n.port, '127.0.0.2');
    assert.equal(raw.status, 101);
    raw.socket.write(frameHeader(2 << 20));
    raw.socket.write(Buffer.alloc(64 * 1024));
    // The handshake timeout is 5 s: well before it, the node must have dropped the connection.
    await waitFor(
      () => raw.closed,
      1500,
      () => 'the node to drop a pre-auth connection that started a 2 MiB message',
    );
    assert.ok(raw.closedAt - t0 < 1500);
    await bigMessageGoesThrough(n.port);
  });

  test('400 connections each sending most of a 2 MiB message barely move the node’s memory', async () => {
    const n = await node();
    const pid = n.child.pid!;
    // Settled: workers started and the first client served.
    await bigMessageGoesThrough(n.port);
    const before = rssKiB(pid);
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssKiB(pid));
    }, 25);
    const payload = Buffer.alloc((2 << 20) - 64, 0x41);
    const conns: Array<Raw & { status: number; written: boolean }> = [];
    try {
      // 50 source addresses, 8 connections each (the per-address cap), in batches.
      for (let batch = 0; batch < 8; batch++) {
        const opened = await Promise.all(
          Array.from({ length: 50 }, (_, i) => rawUpgrade(n.port, `127.0.1.${i + 1}`)),
        );
        for (const c of opened) {
          const conn = Object.assign(c, { written: false });
          conns.push(conn);
          if (c.status !== 101) continue;
          c.socket.write(frameHeader(2 << 20));
          c.socket.write(payload, () => {
            conn.written = true;
          });
        }
      }
      await waitFor(
        () => conns.every((c) => c.closed || c.written),
        15_000,
        () =>
          `every connection closed or its 2 MiB written (${conns.filter((c) => c.closed || c.written).length}/400)`,
      );
      peak = Math.max(peak, rssKiB(pid));
    } finally {
      clearInterval(sampler);
      for (const c of conns) c.socket.destroy();
    }
    const grewMiB = (peak - before) / 1024;
    console.log(
      `node RSS: ${(before / 1024).toFixed(0)} MiB before, peak ${(peak / 1024).toFixed(0)} MiB under 400 ` +
        `pre-auth connections each sending ${(payload.length / 2 ** 20).toFixed(2)} MiB of a 2 MiB message ` +
        `(+${grewMiB.toFixed(0)} MiB); ${conns.filter((c) => c.written).length} of them wrote it all`,
    );
    assert.ok(grewMiB < 48, `node RSS grew by ${grewMiB.toFixed(0)} MiB`);
    await bigMessageGoesThrough(n.port);
  });

  test(`at most ${MAX_PREAUTH_PER_ADDRESS} pre-auth connections per address: the oldest are dropped`, async () => {
    const n = await node();
    const conns: Raw[] = [];
    for (let i = 0; i < 20; i++) {
      const c = await rawUpgrade(n.port, '127.0.0.3');
      assert.equal(c.status, 101);
      conns.push(c);
    }
    const keep = conns.slice(-MAX_PREAUTH_PER_ADDRESS);
    const dropped = conns.slice(0, -MAX_PREAUTH_PER_ADDRESS);
    await waitFor(
      () => dropped.every((c) => c.closed),
      1500,
      () => `the oldest to be dropped (${conns.filter(isOpen).length} of 20 open)`,
    );
    assert.ok(keep.every(isOpen), 'the newest stay');
    // Another address is not affected.
    const other = await rawUpgrade(n.port, '127.0.0.13');
    assert.equal(other.status, 101);
    await sleep(0);
    assert.ok(!other.closed && keep.every(isOpen));
    for (const c of [...conns, other]) c.socket.destroy();
    await bigMessageGoesThrough(n.port);
  });

  test(`at most ${MAX_PREAUTH_CONNECTIONS} pre-auth connections in all: the oldest are dropped`, async () => {
    const n = await node();
    const conns: Raw[] = [];
    // 400 from 100 addresses (4 each, under the per-address cap), in order.
    for (let batch = 0; batch < 4; batch++) {
      const opened = await Promise.all(
        Array.from({ length: 100 }, (_, i) => rawUpgrade(n.port, `127.0.2.${i + 1}`)),
      );
      for (const c of opened) assert.equal(c.status, 101);
      conns.push(...opened);
    }
    await waitFor(
      () => conns.filter(isOpen).length <= MAX_PREAUTH_CONNECTIONS,
      1500,
      () => `at most ${MAX_PREAUTH_CONNECTIONS} open (${conns.filter(isOpen).length})`,
    );
    // The last batch (100) all stay: they are the newest.
    assert.ok(conns.slice(-100).every(isOpen), 'the newest stay');
    // An authenticated client still gets in, and is not counted against the cap once in.
    await bigMessageGoesThrough(n.port);
    for (const c of conns) c.socket.destroy();
  });

  test('a host whose handshakes would wait too long is refused at the upgrade, its connection closed at once', async () => {
    const n = await node();
    // Malformed first messages count as HELLOs. After the burst, they are held; once the wait
    // would pass the limiter's longest, the host is refused at the upgrade.
    let refused: (Raw & { status: number }) | null = null;
    const t0 = Date.now();
    for (let i = 0; i < 40 && !refused; i++) {
      const c = await rawUpgrade(n.port, '127.0.0.4');
      if (c.status === 429) refused = c;
      else {
        assert.equal(c.status, 101);
        c.socket.write(frame(Buffer.from('not a hello')));
        // The first ones are answered (closed) at once; later ones are held: not waited for.
        await waitFor(
          () => c.closed || Date.now() - t0 > 500,
          3000,
          () => 'the node to close after a malformed handshake',
        );
      }
    }
    assert.ok(refused, 'refused at the upgrade');
    const t1 = Date.now();
    await waitFor(
      () => refused.closed,
      500,
      () => 'the node to close the refused connection',
    );
    assert.ok(Date.now() - t1 < 500);
    // Slowed down, not banned: a client with the secret, from the same host (all of 127/8 is
    // one), gets in once the host's bucket has room again (a few seconds).
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        await bigMessageGoesThrough(n.port);
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(500);
      }
    }
  });

  test('a request from a web page (with an Origin header) is refused with 403', async () => {
    const n = await node();
    const c = await rawUpgrade(n.port, '127.0.0.5', { Origin: 'https://example.com' });
    assert.equal(c.status, 403);
    await waitFor(
      () => c.closed,
      500,
      () => 'the node to close the refused connection',
    );
    const d = await rawUpgrade(n.port, '127.0.0.5', { Origin: 'null' });
    assert.equal(d.status, 403);
    const ok = await rawUpgrade(n.port, '127.0.0.5');
    assert.equal(ok.status, 101);
    ok.socket.destroy();
  });
});

describe('before the upgrade', () => {
  test(`idle TCP connections, and ones that never finish the upgrade, are closed after ${UPGRADE_TIMEOUT_MS} ms`, async () => {
    const n = await node();
    const idle = await Promise.all(Array.from({ length: 50 }, () => rawConnect(n.port, '127.0.0.6')));
    const partial = await Promise.all(Array.from({ length: 50 }, () => rawConnect(n.port, '127.0.0.6')));
    for (const p of partial) p.socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
    const t0 = Date.now();
    await waitFor(
      () => [...idle, ...partial].every((c) => c.closed),
      UPGRADE_TIMEOUT_MS + 2000,
      () => `idle connections to be closed (${[...idle, ...partial].filter(isOpen).length} of 100 open)`,
    );
    assert.ok(Date.now() - t0 >= UPGRADE_TIMEOUT_MS - 1000, 'not before the timeout');
    await bigMessageGoesThrough(n.port);
  });

  test('beyond --max-connections, connections are dropped and that is logged once, aggregated', async () => {
    const n = await node(['--max-connections', '40']);
    const conns = await Promise.all(Array.from({ length: 100 }, () => rawConnect(n.port, '127.0.0.7')));
    await waitFor(
      () => conns.filter(isOpen).length <= 40,
      1000,
      () => `at most 40 connections (${conns.filter(isOpen).length} open)`,
    );
    const line = await n.waitLog((l) => typeof l.msg === 'string' && l.msg.startsWith('shedding'), 12_000);
    assert.ok(Number(line.maxConnections) >= 60, JSON.stringify(line));
    assert.equal(n.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('shedding')).length, 1);
    for (const c of conns) c.socket.destroy();
    await waitFor(
      () => conns.every((c) => c.closed),
      1000,
      () => 'the test to close its connections',
    );
    await bigMessageGoesThrough(n.port);
  });
});

describe('raiseMaxPayload (ws internals, pinned)', () => {
  test('a socket accepted with a small maxPayload takes large messages once raised, and only then', async () => {
    const http = createHttpServer();
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: PREAUTH_MAX_PAYLOAD,
      perMessageDeflate: false,
    });
    http.on('upgrade', (req, socket, head) => {
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on('error', () => {}); // the message over the limit; 'close' (1009) follows
        let n = 0;
        ws.on('message', (data: Buffer) => {
          n++;
          ws.send(String(data.length));
          if (n === 1) raiseMaxPayload(ws, 4 << 20);
        });
      });
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const port = (http.address() as { port: number }).port;
    try {
      const client = async (sizes: number[]) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
        await new Promise((r) => ws.once('open', r));
        const answers: string[] = [];
        let code = 0;
        ws.on('message', (d) => answers.push(String(d)));
        ws.on('close', (c) => {
          code = c;
        });
        // All at once: the server raises the limit while handling the first, and the next
        // frame (often in the same read) must already be judged by the new limit.
        for (const s of sizes) ws.send(Buffer.alloc(s));
        await waitFor(
          () => answers.length === sizes.length || code !== 0,
          3000,
          () => 'the answers',
        );
        ws.terminate();
        return { answers, code };
      };
      // Not raised yet: a message over the limit closes the connection (1009).
      assert.deepEqual(await client([PREAUTH_MAX_PAYLOAD + 1]), { answers: [], code: 1009 });
      // Raised after the first message: 3 MiB go through.
      assert.deepEqual(await client([10, 3 << 20]), { answers: ['10', String(3 << 20)], code: 0 });
    } finally {
      await new Promise((r) => http.close(r));
    }
  });

  test('it refuses a socket without the internals it expects, instead of silently doing nothing', () => {
    assert.throws(() => raiseMaxPayload({} as WebSocket, 1 << 20), /ws/);
  });
});

test('pre-auth connections are counted per IPv4 address and per IPv6 /64', () => {
  assert.equal(addressKey('192.168.1.20'), '192.168.1.20');
  assert.equal(addressKey('::ffff:192.168.1.20'), '192.168.1.20');
  assert.equal(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(addressKey('::1'), '0:0:0:0::/64');
  assert.equal(addressKey('::'), '0:0:0:0::/64');
});
