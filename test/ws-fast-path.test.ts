/**
 * The secure socket's fast path for large messages (writeMessage in src/protocol/secure-socket.ts)
 * reads ws's private `_socket`, `_sender._state` and `_sender._queue`; ws is pinned exactly in
 * package.json for that. These tests fail when the fast path is no longer taken (a ws release that
 * renames or reshapes those fields: writeMessage then falls back to ws.send, which still works but
 * costs a copy of every large message), and check that what it writes is a valid WebSocket message.
 * Loopback only.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import {
  clientHandshake,
  directWrites,
  MAX_WS_PAYLOAD,
  type SecureSocket,
  serverHandshake,
  writeMessage,
  zeroMask,
} from '../src/protocol/secure-socket.ts';

const SECRET = new TextEncoder().encode(randomBytes(16).toString('hex'));

/** A connected ws pair over 127.0.0.1: [client side, server side]. */
async function wsPair(wss: WebSocketServer): Promise<[WebSocket, WebSocket]> {
  const { port } = wss.address() as { port: number };
  const server = new Promise<WebSocket>((r) => wss.once('connection', r));
  const client = new WebSocket(`ws://127.0.0.1:${port}/`, {
    generateMask: zeroMask,
    maxPayload: MAX_WS_PAYLOAD,
  });
  await new Promise((r, j) => client.once('open', r).once('error', j));
  return [client, await server];
}

const nextMessage = (ws: WebSocket) =>
  new Promise<Buffer>((resolve, reject) =>
    ws.once('message', (data, isBinary) =>
      isBinary ? resolve(data as Buffer) : reject(new Error('a text message')),
    ),
  );

describe('ws fast path (private fields of the pinned ws)', () => {
  let wss: WebSocketServer;
  before(async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: MAX_WS_PAYLOAD });
    await new Promise((r) => wss.once('listening', r));
  });
  after(() => new Promise<void>((r) => wss.close(() => r())));

  it('package.json pins the installed ws exactly', () => {
    const require = createRequire(import.meta.url);
    const pkg = require('../package.json') as { dependencies: Record<string, string> };
    const installed = (require('ws/package.json') as { version: string }).version;
    assert.equal(pkg.dependencies.ws, installed, 'ws must be pinned to the exact version installed');
  });

  it('writeMessage writes straight to the socket both ways, and the peer reads the same bytes', async () => {
    const [client, server] = await wsPair(wss);
    try {
      for (const [from, to, masked, length] of [
        [client, server, true, 100],
        [client, server, true, 70_000],
        [server, client, false, 1 << 20],
      ] as const) {
        const pieces = [randomBytes(7), randomBytes(length - 7)];
        const got = nextMessage(to);
        const before = directWrites.count;
        assert.equal(writeMessage(from, pieces, length, masked), true, 'fast path not taken');
        assert.equal(directWrites.count, before + 1);
        assert.deepEqual(await got, Buffer.concat(pieces));
      }
      // while ws's sender has a message queued, the fast path must step aside (order)
      const sender = (client as unknown as { _sender: { _queue: unknown[] } })._sender;
      sender._queue.push(null);
      try {
        assert.equal(writeMessage(client, [randomBytes(10)], 10, true), false);
      } finally {
        sender._queue.pop();
      }
    } finally {
      client.terminate();
      server.terminate();
    }
  });

  it('a SecureSocket exchange of a large message takes the fast path', async () => {
    const [clientWs, serverWs] = await wsPair(wss);
    let a: SecureSocket | undefined;
    let b: SecureSocket | undefined;
    try {
      [a, b] = await Promise.all([clientHandshake(clientWs, SECRET), serverHandshake(serverWs, SECRET)]);
      const received = new Promise<Buffer>((r) => b!.once('message', r));
      b.resume();
      a.resume();
      const body = randomBytes(512 * 1024);
      const before = directWrites.count;
      a.send([body.subarray(0, 1000), body.subarray(1000)]);
      assert.deepEqual(await received, body);
      assert.equal(directWrites.count, before + 1, 'the large message went through ws.send');
    } finally {
      a?.terminate();
      b?.terminate();
      clientWs.terminate();
      serverWs.terminate();
    }
  });
});
