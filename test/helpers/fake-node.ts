/**
 * A node that speaks the protocol from inside the test process, on 127.0.0.1: it completes the
 * handshake with the secret it is given (so it may be a hostile node that has the secret, or a
 * peer that refuses), says welcome with the id it is given, and answers each job as the test
 * says. Counts the connections it saw, so tests can assert how often a client dialled.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { PROTOCOL_VERSION } from '../../src/protocol/handshake.ts';
import { decodeMessage, encodeMessage, type Message } from '../../src/protocol/messages.ts';
import { type SecureSocket, serverHandshake } from '../../src/protocol/secure-socket.ts';

export interface FakeNodeOptions {
  secret: string;
  /** The id it says in its welcome (authenticated). Default 'fake'. */
  id?: string;
  ncpus?: number;
  host?: string;
  port?: number;
  /** Answers a 'run' message; default: nothing (jobs stay placed). */
  onRun?: (msg: Extract<Message, { type: 'run' }>, socket: SecureSocket) => void;
}

export interface FakeNode {
  port: number;
  host: string;
  /** WebSocket connections accepted so far. */
  connections: number;
  /** Handshakes completed so far. */
  authenticated: number;
  /** Ends every connection (a blip); keeps listening. */
  dropAll(): void;
  close(): Promise<void>;
}

export async function startFakeNode(opts: FakeNodeOptions): Promise<FakeNode> {
  const host = opts.host ?? '127.0.0.1';
  const wss = new WebSocketServer({ port: opts.port ?? 0, host });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const secret = new TextEncoder().encode(opts.secret);
  const sockets = new Set<SecureSocket>();
  const fake: FakeNode = {
    port: (wss.address() as AddressInfo).port,
    host,
    connections: 0,
    authenticated: 0,
    dropAll: () => {
      for (const c of wss.clients) c.terminate();
    },
    close: async () => {
      for (const s of sockets) s.terminate();
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => wss.close(r));
    },
  };
  wss.on('connection', async (ws) => {
    fake.connections++;
    let socket: SecureSocket;
    try {
      socket = await serverHandshake(ws, secret);
    } catch {
      ws.terminate();
      return;
    }
    fake.authenticated++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('message', (data) => {
      const msg = decodeMessage(data);
      if (msg.type === 'ping') socket.send(encodeMessage({ type: 'pong', t: msg.t }));
      else if (msg.type === 'run') opts.onRun?.(msg, socket);
    });
    socket.resume();
    const ncpus = opts.ncpus ?? 1;
    const info = { id: opts.id ?? 'fake', name: 'fake', ncpus, version: '0', protocol: PROTOCOL_VERSION };
    socket.send(encodeMessage({ type: 'welcome', info }));
    socket.send(encodeMessage({ type: 'ncpus', ncpus }));
  });
  return fake;
}
