import { printable } from '../log.ts';
import { dialNode, formatAddress, opened } from '../protocol/dial.ts';
import { STATUS_PROTOCOL } from '../protocol/handshake.ts';
import { decodeMessage, encodeMessage, type Message, type NodeInfo } from '../protocol/messages.ts';
import { PREAUTH_MAX_PAYLOAD, raiseMaxPayload } from '../protocol/preauth-payload.ts';
import {
  clientHandshake,
  type HandshakeFailure,
  MAX_WS_PAYLOAD,
  type SecureSocket,
} from '../protocol/secure-socket.ts';
import type { NodeStatus } from '../protocol/status.ts';

/**
 * Why a probe failed:
 * - 'unreachable': no TCP connection or no HTTP answer (nothing listens, host down or cut off, firewall);
 * - 'rejected': the node rejected this machine's secret (or failed to prove it knows it);
 * - 'refused': the node refused the connection (429: too many failed handshakes from here; 503: stopping);
 * - 'version': no protocol version in common;
 * - 'error': anything else (a broken peer, a timeout after the handshake).
 */
export type ProbeFailureKind = 'unreachable' | 'rejected' | 'refused' | 'version' | 'error';

export class ProbeError extends Error {
  override name = 'ProbeError';
  constructor(
    readonly kind: ProbeFailureKind,
    message: string,
  ) {
    super(message);
  }
}

/** One answer to 'status', with what the round trip tells about the link and the node's clock. */
export interface StatusSample {
  status: NodeStatus;
  rttMs: number;
  /** The node's clock minus ours, at the middle of the round trip (± rttMs / 2). */
  clockSkewMs: number;
}

export interface ProbeOptions {
  /** For the TCP connection and HTTP upgrade, then again for the handshake (default 3000 ms). */
  timeoutMs?: number;
}

/** Words for a failed WebSocket connection (before any handshake). */
function unreachable(error: Error, where: string, port: number, timeoutMs: number): ProbeError {
  const code = (error as NodeJS.ErrnoException).code;
  const said = printable(error.message);
  const status = /Unexpected server response: (\d+)/.exec(error.message)?.[1];
  if (status === '429')
    return new ProbeError(
      'refused',
      `${where}: the node refuses this address for a while after too many failed handshakes (a wrong secret?); wait a minute`,
    );
  if (status === '503') return new ProbeError('refused', `${where}: the node is stopping`);
  if (status) return new ProbeError('error', `${where}: not a pp-node (HTTP ${status})`);
  if (code === 'ECONNREFUSED')
    return new ProbeError(
      'unreachable',
      `${where}: connection refused: nothing listens on port ${port} (is npx pp-node running there?)`,
    );
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH')
    return new ProbeError(
      'unreachable',
      `${where}: host unreachable (${code}): down, or not on this network`,
    );
  if (/timed out/i.test(error.message) || code === 'ETIMEDOUT')
    return new ProbeError(
      'unreachable',
      `${where}: no answer within ${timeoutMs / 1000} s (host down or cut off, or a firewall drops TCP port ${port})`,
    );
  return new ProbeError('unreachable', `${where}: ${said}`);
}

/** An open, authenticated monitor connection. Make one with {@link NodeProbe.connect}. */
export class NodeProbe {
  #closed = false;
  #waiting: Array<{ resolve: (m: Message) => void; reject: (e: Error) => void; type: string }> = [];
  readonly #onClose: Array<(why: string) => void> = [];

  private constructor(
    readonly address: string,
    readonly info: NodeInfo,
    private readonly socket: SecureSocket,
  ) {
    socket.on('message', (data) => {
      let msg: Message;
      try {
        msg = decodeMessage(data);
      } catch (error) {
        this.#end(`bad message from the node: ${printable((error as Error).message)}`);
        socket.close(1002, 'bad message');
        return;
      }
      if (msg.type === 'ping') {
        socket.send(encodeMessage({ type: 'pong', t: msg.t }));
        return;
      }
      if (msg.type === 'bye') {
        this.#end(`the node said goodbye: ${printable(msg.reason)}`);
        return;
      }
      const i = this.#waiting.findIndex((w) => w.type === msg.type);
      if (i >= 0) this.#waiting.splice(i, 1)[0]!.resolve(msg);
    });
    socket.on('close', (code, reason) =>
      this.#end(`connection closed (${code}${reason ? `: ${printable(reason)}` : ''})`),
    );
  }

  /** The protocol version of this connection (the lower of both sides' highest). */
  get protocol(): number {
    return this.socket.session.version;
  }

  /** False for a node older than protocol 3: it has no status to give. */
  get hasStatus(): boolean {
    return this.protocol >= STATUS_PROTOCOL;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Called once when the connection ends (the node stopped, vanished, or `close()`). */
  onClose(fn: (why: string) => void): void {
    if (this.#closed) fn('closed');
    else this.#onClose.push(fn);
  }

  /**
   * Connects to the first of `hosts` that answers on `port` and proves the secret. Rejects with a
   * ProbeError saying why when none does (the failure of the last host tried).
   */
  static async connect(
    hosts: readonly string[],
    port: number,
    secret: Uint8Array,
    opts: ProbeOptions = {},
  ): Promise<NodeProbe> {
    const timeoutMs = opts.timeoutMs ?? 3000;
    let last = new ProbeError('unreachable', 'no address to try');
    for (const host of hosts) {
      const where = formatAddress(host, port);
      // Anyone may answer at a node's address: little is read until it has proved the secret.
      const ws = dialNode(host, port, timeoutMs, PREAUTH_MAX_PAYLOAD);
      ws.on('error', () => {});
      try {
        await opened(ws);
      } catch (error) {
        ws.terminate();
        last = unreachable(error as Error, where, port, timeoutMs);
        if (last.kind === 'refused') throw last;
        continue;
      }
      let socket: SecureSocket;
      try {
        socket = await clientHandshake(ws, secret, timeoutMs, () => raiseMaxPayload(ws, MAX_WS_PAYLOAD));
      } catch (error) {
        ws.terminate();
        const f = error as HandshakeFailure;
        const said = printable(f.message);
        if (f.handshakeCode === 'rejected' && /too many failed/.test(f.message))
          throw new ProbeError('refused', `${where}: ${said}`);
        if (f.handshakeCode === 'rejected' || f.handshakeCode === 'bad-proof')
          throw new ProbeError(
            'rejected',
            `${where}: the node rejected this machine's secret: copy the cluster's secret file (~/.config/pp-node/secret, mode 600) here, or set the same PP_SECRET on both`,
          );
        if (f.handshakeCode === 'version') throw new ProbeError('version', `${where}: ${said}`);
        throw new ProbeError('error', `${where}: handshake failed: ${said}`);
      }
      // The welcome comes first, at once after the handshake.
      const info = await new Promise<NodeInfo>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new ProbeError('error', `${where}: no welcome from the node`)),
          timeoutMs,
        );
        socket.on('message', function first(data) {
          try {
            const msg = decodeMessage(data);
            if (msg.type !== 'welcome') return;
            socket.off('message', first);
            clearTimeout(timer);
            resolve(msg.info);
          } catch (error) {
            clearTimeout(timer);
            reject(new ProbeError('error', `${where}: bad message: ${printable((error as Error).message)}`));
          }
        });
        socket.on('close', () => {
          clearTimeout(timer);
          reject(new ProbeError('error', `${where}: the node closed the connection after the handshake`));
        });
        socket.resume();
      }).catch((error) => {
        socket.terminate();
        throw error;
      });
      return new NodeProbe(where, info, socket);
    }
    throw last;
  }

  /** Asks for the node's status; rejects after `timeoutMs` (then the connection is dropped) or on close. */
  status(timeoutMs = 2000): Promise<StatusSample> {
    if (this.#closed) return Promise.reject(new ProbeError('error', 'connection closed'));
    if (!this.hasStatus)
      return Promise.reject(
        new ProbeError(
          'version',
          `pp-node ${printable(this.info.version)} (protocol ${this.protocol}) has no status: upgrade it`,
        ),
      );
    const sent = Date.now();
    return new Promise<StatusSample>((resolve, reject) => {
      const timer = setTimeout(() => {
        const why = `no answer within ${timeoutMs / 1000} s`;
        this.#end(why);
        this.socket.terminate();
        reject(new ProbeError('unreachable', why));
      }, timeoutMs);
      this.#waiting.push({
        type: 'status-report',
        resolve: (m) => {
          clearTimeout(timer);
          const got = Date.now();
          const status = (m as Extract<Message, { type: 'status-report' }>).status;
          resolve({ status, rttMs: got - sent, clockSkewMs: status.time - (sent + got) / 2 });
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.send(encodeMessage({ type: 'status' }));
    });
  }

  close(): void {
    if (this.#closed) return;
    this.socket.send(encodeMessage({ type: 'bye', reason: 'pp-node top' }));
    this.socket.close(1000, 'monitor done');
    this.#end('closed');
  }

  #end(why: string): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#waiting.splice(0)) w.reject(new ProbeError('unreachable', why));
    for (const fn of this.#onClose.splice(0)) fn(why);
  }
}
