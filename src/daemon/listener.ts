/**
 * Admission: the daemon's listening socket, from TCP connection through HTTP upgrade to an
 * authenticated SecureSocket (the limits of each phase: admission.ts).
 */
import { createServer, type Server as HttpServer, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Logger } from '../log.ts';
import { PREAUTH_MAX_PAYLOAD, raiseMaxPayload } from '../protocol/preauth-payload.ts';
import type { HandshakeLimiter } from '../protocol/rate-limit.ts';
import {
  CloseCode,
  type HandshakeFailure,
  MAX_WS_PAYLOAD,
  type SecureSocket,
  serverHandshake,
} from '../protocol/secure-socket.ts';
import {
  addressKey,
  hostKey,
  MAX_CONNECTIONS,
  MAX_PREAUTH_CONNECTIONS,
  MAX_PREAUTH_PER_ADDRESS,
  type PreauthEntry,
  PreauthTracker,
  RefusalLog,
  type RefusalReason,
  refuseUpgrade,
  ShedLog,
  UPGRADE_TIMEOUT_MS,
} from './admission.ts';

/** The listener's part of DaemonOptions. */
export interface ListenerOptions {
  port: number;
  host?: string;
  secret: Uint8Array;
  logger: Logger;
  handshakeTimeoutMs?: number;
  maxConnections?: number;
  maxPreauthConnections?: number;
  maxPreauthPerAddress?: number;
  upgradeTimeoutMs?: number;
}

export class Listener {
  private wss: WebSocketServer | null = null;
  private http: HttpServer | null = null;
  private readonly shed: ShedLog;
  private readonly refusals: RefusalLog;
  private readonly preauth: PreauthTracker;

  /**
   * @param stopping true once the daemon stops: upgrades are refused (503), and a client that
   *   finishes its handshake then is closed
   * @param onClient an authenticated client, `peer` its address:port
   */
  constructor(
    private readonly opts: ListenerOptions,
    private readonly limiter: HandshakeLimiter,
    private readonly stopping: () => boolean,
    private readonly onClient: (socket: SecureSocket, peer: string) => void,
  ) {
    this.shed = new ShedLog(opts.logger);
    this.refusals = new RefusalLog(opts.logger);
    this.preauth = new PreauthTracker(
      opts.maxPreauthConnections ?? MAX_PREAUTH_CONNECTIONS,
      opts.maxPreauthPerAddress ?? MAX_PREAUTH_PER_ADDRESS,
      (reason, key) => this.shed.count(reason, key),
    );
  }

  /** Starts listening; resolves with the bound port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      // Until a peer has proved the secret, ws takes messages of PREAUTH_MAX_PAYLOAD bytes;
      // raised to MAX_WS_PAYLOAD for that connection once it has.
      const wss = new WebSocketServer({
        noServer: true,
        maxPayload: PREAUTH_MAX_PAYLOAD,
        perMessageDeflate: false,
        clientTracking: false,
      });
      const http = createServer((_req, res) => {
        res.writeHead(426, { Connection: 'close', 'Content-Type': 'text/plain' });
        res.end('Upgrade Required');
      });
      http.maxConnections = this.opts.maxConnections ?? MAX_CONNECTIONS;
      this.wss = wss;
      this.http = http;
      const upgradeTimeoutMs = this.opts.upgradeTimeoutMs ?? UPGRADE_TIMEOUT_MS;
      const upgradeTimers = new WeakMap<Socket, NodeJS.Timeout>();
      http.on('connection', (socket: Socket) => {
        const timer = setTimeout(() => {
          this.shed.count('upgradeTimeout', addressKey(socket.remoteAddress ?? 'unknown'));
          socket.destroy();
        }, upgradeTimeoutMs);
        timer.unref();
        upgradeTimers.set(socket, timer);
        socket.once('close', () => clearTimeout(timer));
      });
      http.on('drop', (data) =>
        this.shed.count('maxConnections', addressKey(data?.remoteAddress ?? 'unknown')),
      );
      http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
        clearTimeout(upgradeTimers.get(socket));
        this.onUpgrade(req, socket, head);
      });
      http.once('error', reject);
      http.listen(this.opts.port, this.opts.host, () => {
        http.off('error', reject);
        http.on('error', (error) => this.opts.logger.error('listener error', { error }));
        const address = http.address();
        resolve(typeof address === 'object' && address ? address.port : this.opts.port);
      });
    });
  }

  /** Stops accepting; resolves once the listening socket is closed. */
  close(): Promise<void> {
    this.shed.flush();
    this.refusals.flush();
    this.wss?.close();
    return new Promise<void>((resolve) => (this.http ? this.http.close(() => resolve()) : resolve()));
  }

  /**
   * An HTTP upgrade: refused before any WebSocket exists when the node stops, the request
   * comes from a web page (browsers send Origin; our clients never do) or the host's next
   * handshake would wait longer than the limiter holds one; otherwise counted as a connection in the handshake (the oldest dropped at a cap).
   */
  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const ip = req.socket.remoteAddress ?? 'unknown';
    const key = addressKey(ip);
    if (this.stopping()) {
      this.shed.count('stopping', key);
      refuseUpgrade(socket, 503, 'Service Unavailable');
      return;
    }
    if (req.headers.origin !== undefined) {
      this.shed.count('origin', key);
      refuseUpgrade(socket, 403, 'Forbidden');
      return;
    }
    const waitMs = this.limiter.waitMs(hostKey(ip));
    if (waitMs > this.limiter.maxWaitMs) {
      this.shed.count('rateLimited', key);
      refuseUpgrade(socket, 429, 'Too Many Requests', { 'Retry-After': Math.ceil(waitMs / 1000) });
      return;
    }
    const entry = this.preauth.admit(key, () => socket.destroy());
    socket.once('close', () => this.preauth.done(entry));
    this.wss!.handleUpgrade(req, socket, head, (ws) => void this.onConnection(ws, req, entry));
  }

  private async onConnection(ws: WebSocket, req: IncomingMessage, entry: PreauthEntry): Promise<void> {
    const ip = req.socket.remoteAddress ?? 'unknown';
    const host = hostKey(ip);
    const peer = `${ip}:${req.socket.remotePort}`;
    const log = this.opts.logger;
    // A frame over the pre-auth limit, or any other protocol error before authentication: ws
    // would send a close frame and wait for the peer's answer (30 s), reading on. Not for a
    // peer that has proved nothing: its connection ends now.
    const preauthError = () => ws.terminate();
    ws.once('error', preauthError);
    let counted = false;
    let socket: SecureSocket;
    try {
      socket = await serverHandshake(
        ws,
        this.opts.secret,
        this.opts.handshakeTimeoutMs ?? 5000,
        () => {
          ws.off('error', preauthError);
          this.preauth.done(entry);
          try {
            raiseMaxPayload(ws, MAX_WS_PAYLOAD);
          } catch (error) {
            log.error('cannot accept clients', { error });
            ws.terminate();
          }
        },
        // The first message, whatever it is, counts as a HELLO: answered now, later, or refused.
        () => {
          const verdict = this.limiter.hello(host);
          counted = verdict.retryAfterMs === undefined;
          return verdict;
        },
      );
    } catch (error) {
      this.preauth.done(entry);
      // Dropped to make room for newer connections: not this peer's doing.
      if (!entry.evicted) this.handshakeFailed(error as HandshakeFailure, peer, addressKey(ip));
      return;
    }
    if (counted) this.limiter.succeeded(host);
    if (this.stopping()) {
      ws.close(CloseCode.GoingAway, 'node shutting down');
      return;
    }
    this.onClient(socket, peer);
  }

  /** A failed handshake, for the log: the first of an interval on its own line, then counts (RefusalLog). */
  private handshakeFailed(f: HandshakeFailure, peer: string, key: string): void {
    const reason: RefusalReason =
      f.handshakeCode === 'bad-proof'
        ? 'wrongSecret'
        : f.handshakeCode === 'rate-limited'
          ? 'rateLimited'
          : f.handshakeCode === 'version' || f.handshakeCode === 'timeout' || f.handshakeCode === 'closed'
            ? f.handshakeCode
            : 'malformed';
    if (!this.refusals.count(reason, key)) return;
    if (reason === 'wrongSecret') this.opts.logger.warn('client rejected: wrong secret', { peer });
    else this.opts.logger.warn('handshake failed', { peer, reason: f.message });
  }
}
