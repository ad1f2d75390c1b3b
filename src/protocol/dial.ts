/**
 * Dialing a node: its address as `host:port`, the WebSocket options every client connection
 * uses (a client's RemoteNode, `pp-node ls`, `top` and `doctor` alike), and parsing addresses users give.
 */
import { WebSocket } from 'ws';
import { PPError } from '../errors.ts';
import { MAX_WS_PAYLOAD, zeroMask } from './secure-socket.ts';

/**
 * Opens the WebSocket to the node at `host`:`port`; the handshake (clientHandshake) follows.
 * `maxPayload`: the largest message read (a client reads little until the node has proved the
 * secret, then raises it).
 */
export function dialNode(
  host: string,
  port: number,
  connectTimeoutMs: number,
  maxPayload: number = MAX_WS_PAYLOAD,
): WebSocket {
  return new WebSocket(`ws://${formatAddress(host, port)}/`, {
    maxPayload,
    perMessageDeflate: false,
    generateMask: zeroMask,
    handshakeTimeout: connectTimeoutMs,
  });
}

/**
 * Resolves when `ws` (from dialNode) is open; rejects with the connection's error, or with
 * 'connection closed' when it closed first. The caller terminates the socket on a rejection.
 */
export function opened(ws: WebSocket): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('close', () => reject(new Error('connection closed')));
  });
}

/** `host:port`, with brackets around IPv6 addresses (a scope id's `%` escaped for URLs). */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host.replace('%', '%25')}]:${port}` : `${host}:${port}`;
}

/** Parses `'host'`, `'host:port'`, `'[v6]:port'` (default port 60000). */
export function parseAddress(spec: string, defaultPort = 60000): { host: string; port: number } {
  const s = spec.trim();
  let host = s;
  let port = defaultPort;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (v6) {
    host = v6[1]!;
    if (v6[2]) port = Number(v6[2]);
  } else if (/^[^:]+:\d+$/.test(s)) {
    const i = s.lastIndexOf(':');
    host = s.slice(0, i);
    port = Number(s.slice(i + 1));
  } else if (s.includes(':') && !/^[0-9a-fA-F:]+$/.test(s)) {
    throw new PPError(`bad node address '${spec}': use 'host', 'host:port' or '[ipv6]:port'`);
  }
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new PPError(`bad node address '${spec}': use 'host', 'host:port' or '[ipv6]:port' (port 1-65535)`);
  }
  return { host, port };
}
