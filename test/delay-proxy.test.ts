import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import { type DelayProxy, startDelayProxy } from './helpers/delay-proxy.ts';

const servers: net.Server[] = [];
const proxies: DelayProxy[] = [];
after(async () => {
  await Promise.all(proxies.map((p) => p.close()));
  for (const s of servers) s.close();
});

/** A TCP server that echoes what it reads, and ends its side when the client ends its own. */
async function echoServer(port = 0): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port };
}

async function proxy(opts: Parameters<typeof startDelayProxy>[0]): Promise<DelayProxy> {
  const p = await startDelayProxy(opts);
  proxies.push(p);
  return p;
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Everything the socket reads until its peer ends. */
function readAll(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

describe('delay proxy', () => {
  test('bytes arrive intact and in order, both ways, and a half-close travels after the data', async () => {
    const { port } = await echoServer();
    const p = await proxy({ targetPort: port, oneWayMs: 5 });
    const socket = await connect(p.port);
    const received = readAll(socket);
    // Many writes of different sizes, some large: chunk boundaries change on the way.
    const parts = Array.from({ length: 200 }, (_, i) => randomBytes(1 + ((i * 7919) % 70_000)));
    for (const part of parts) socket.write(part);
    socket.end(); // half-close: the echo server ends its side once it has read everything
    const echoed = await received;
    assert.equal(echoed.length, Buffer.concat(parts).length);
    assert.ok(echoed.equals(Buffer.concat(parts)), 'the echoed bytes differ from the sent ones');
    await new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once('close', resolve)));
  });

  test('a round trip takes at least twice the one-way delay', async () => {
    const { port } = await echoServer();
    const oneWayMs = 40;
    const p = await proxy({ targetPort: port, oneWayMs });
    const socket = await connect(p.port);
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const answer = new Promise<Buffer>((resolve) => socket.once('data', resolve));
      socket.write(`ping ${i}`);
      assert.equal((await answer).toString(), `ping ${i}`);
      times.push(performance.now() - t0);
    }
    for (const t of times) assert.ok(t >= 2 * oneWayMs, `round trip ${t.toFixed(1)} ms < ${2 * oneWayMs} ms`);
    socket.destroy();
  });

  test('a reset of the target ends the client side, and close() ends every connection', async () => {
    let serverSide: net.Socket | undefined;
    const server = net.createServer((s) => {
      serverSide = s;
      s.on('error', () => {});
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const p = await proxy({ targetPort: (server.address() as net.AddressInfo).port, oneWayMs: 1 });
    const a = await connect(p.port);
    a.on('error', () => {});
    while (!serverSide) await new Promise((r) => setTimeout(r, 5));
    const aClosed = new Promise<void>((resolve) => a.once('close', () => resolve()));
    serverSide.resetAndDestroy();
    await aClosed;

    const b = await connect(p.port);
    b.on('error', () => {});
    while (p.connections < 1) await new Promise((r) => setTimeout(r, 5));
    const bClosed = new Promise<void>((resolve) => b.once('close', () => resolve()));
    await p.close();
    await bClosed;
    assert.equal(p.connections, 0);
  });

  test('waitForTarget holds a connection until the target starts listening', async () => {
    // A free port, taken later by the echo server.
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const p = await proxy({ targetPort: port, oneWayMs: 0, waitForTarget: true });
    const socket = await connect(p.port);
    const received = readAll(socket);
    socket.end('sent before the target existed');
    await new Promise((r) => setTimeout(r, 100));
    await echoServer(port);
    assert.equal((await received).toString(), 'sent before the target existed');
  });
});
