/**
 * A pp-node: accepts authenticated clients over WebSockets and runs their jobs on this
 * machine's workers (the same pool and worker runtime as a local Server), sharing the CPUs
 * fairly between clients.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server as HttpServer, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import { formatStats, type NodeStats } from '../api/stats.ts';
import type { Logger } from '../log.ts';
import type { DispatchJob, RefData } from '../nodes/compute-node.ts';
import { wholeArgs } from '../nodes/job-args.ts';
import { LocalPool } from '../nodes/local-pool.ts';
import { encode } from '../protocol/codec.ts';
import { PROTOCOL_VERSION, STEALING_PROTOCOL } from '../protocol/handshake.ts';
import {
  decodeMessage,
  encodeMessage,
  type FunctionDefinition,
  JobStatus,
  type Message,
  MessageError,
  type NodeInfo,
  type ResultEntry,
  receivedBlob,
} from '../protocol/messages.ts';
import { FailureLimiter } from '../protocol/rate-limit.ts';
import { localRuntime, type RuntimeInfo } from '../protocol/runtime-info.ts';
import { HOLD_NEXT_BELOW_MS } from '../scheduler/depth.ts';
import { FairQueue } from '../scheduler/fair-queue.ts';
import { DurationEstimate } from '../scheduler/policy.ts';
import {
  CloseCode,
  type HandshakeFailure,
  MAX_WS_PAYLOAD,
  type SecureSocket,
  serverHandshake,
} from '../transport/secure-socket.ts';
import { VERSION } from '../version.ts';
import {
  addressKey,
  MAX_CONNECTIONS,
  MAX_PREAUTH_CONNECTIONS,
  MAX_PREAUTH_PER_ADDRESS,
  PREAUTH_MAX_PAYLOAD,
  type PreauthEntry,
  PreauthTracker,
  raiseMaxPayload,
  refuseUpgrade,
  ShedLog,
  UPGRADE_TIMEOUT_MS,
} from './admission.ts';
import { type PackageGate, packageGate } from './packages.ts';

export interface DaemonOptions {
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Address to listen on; default all interfaces. */
  host?: string;
  /** Workers (CPUs) to run jobs on. */
  workers: number;
  secret: Uint8Array;
  name: string;
  /** Stable id of this machine (see nodeIdentity). */
  id: string;
  logger: Logger;
  /** Exit after this many seconds without any client (0: never). */
  idleTimeoutS?: number;
  /** Called when the idle timeout passes. */
  onIdle?: () => void;
  /** nice value for worker processes (default 10: the desk owner's programs come first). */
  niceness?: number;
  /** A client silent for this long is dropped (default 10 s; clients ping every 0.5 s). */
  clientTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  limiter?: FailureLimiter;
  /** TCP connections at once, authenticated clients included (default MAX_CONNECTIONS, 1024). */
  maxConnections?: number;
  /** WebSockets still in the handshake at once (default MAX_PREAUTH_CONNECTIONS, 256); the oldest is dropped. */
  maxPreauthConnections?: number;
  /** Of those, from one address or IPv6 /64 (default MAX_PREAUTH_PER_ADDRESS, 8); the oldest is dropped. */
  maxPreauthPerAddress?: number;
  /** A connection that has not asked for its WebSocket by then is closed (default UPGRADE_TIMEOUT_MS, 3 s). */
  upgradeTimeoutMs?: number;
  /** Module cache folder (`--cache-dir`; default ~/.cache/pp-node) and its cap in MiB (`--cache-max-mb`). */
  cacheDir?: string;
  cacheMaxMb?: number;
  /** What this node says it runs (default: this process's); tests make it say another. */
  runtime?: RuntimeInfo;
}

interface NodeJob {
  session: ClientSession;
  clientId: number;
  dispatch: DispatchJob;
}

let nextInternalId = 1;

export class Daemon {
  readonly info: NodeInfo;
  private readonly pool: LocalPool;
  /** Modules clients send (packages.ts). */
  private readonly packages: PackageGate;
  private wss: WebSocketServer | null = null;
  private http: HttpServer | null = null;
  private readonly shed: ShedLog;
  private readonly preauth: PreauthTracker;
  private readonly sessions = new Map<string, ClientSession>();
  private readonly jobs = new Map<number, NodeJob>();
  private readonly queue = new FairQueue<number>();
  private readonly estimates = new Map<string, DurationEstimate>();
  private readonly stats = new Map<string, { jobs: number; timeMs: number }>();
  private readonly limiter: FailureLimiter;
  private readonly created = performance.now();
  private drainScheduled = false;
  private idleTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private nextSession = 1;
  /** Ready workers as last told to clients. */
  private toldReady = -1;

  constructor(private readonly opts: DaemonOptions) {
    this.info = {
      id: opts.id,
      name: opts.name,
      ncpus: opts.workers,
      version: VERSION,
      protocol: PROTOCOL_VERSION,
      runtime: opts.runtime ?? localRuntime(),
    };
    this.packages = packageGate(opts.logger, opts.cacheDir, opts.cacheMaxMb);
    this.limiter = opts.limiter ?? new FailureLimiter();
    this.shed = new ShedLog(opts.logger);
    this.preauth = new PreauthTracker(
      opts.maxPreauthConnections ?? MAX_PREAUTH_CONNECTIONS,
      opts.maxPreauthPerAddress ?? MAX_PREAUTH_PER_ADDRESS,
      (reason, key) => this.shed.count(reason, key),
    );
    this.pool = new LocalPool(
      {
        ncpus: opts.workers,
        isolation: 'process',
        niceness: opts.niceness ?? 10,
        cacheDir: this.packages.store.cacheDir,
      },
      {
        onResult: (_n, job, status, durationMs, bytes, start, end) =>
          this.onResult(job.id, status, durationMs, bytes.subarray(start, end)),
        onJobFailed: (_n, job, error) => this.onJobFailed(job.id, error),
        onRequeue: (_n, jobs) => this.onRequeue(jobs.map((j) => j.id)),
        onCapacity: () => {
          this.scheduleDrain();
          this.tellReadyWorkers();
        },
      },
    );
    this.pool.onFatal = (error) => {
      opts.logger.error('workers cannot start; stopping the node', { error });
      void this.close();
    };
  }

  /** Starts listening; resolves with the bound port. Admission before authentication: see admission.ts. */
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
        this.armIdleTimer();
      });
    });
  }

  /**
   * An HTTP upgrade: refused before any WebSocket exists when the node stops, the request
   * comes from a web page (browsers send Origin; our clients never do) or the address is
   * banned; otherwise counted as a connection in the handshake (the oldest dropped at a cap).
   */
  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const ip = req.socket.remoteAddress ?? 'unknown';
    const key = addressKey(ip);
    if (this.stopping) {
      this.shed.count('stopping', key);
      refuseUpgrade(socket, 503, 'Service Unavailable');
      return;
    }
    if (req.headers.origin !== undefined) {
      this.shed.count('origin', key);
      refuseUpgrade(socket, 403, 'Forbidden');
      return;
    }
    if (!this.limiter.allowed(ip)) {
      this.shed.count('banned', key);
      const wait = Math.ceil(this.limiter.retryAfterMs(ip) / 1000);
      refuseUpgrade(socket, 429, 'Too Many Requests', { 'Retry-After': wait });
      return;
    }
    const entry = this.preauth.admit(key, () => socket.destroy());
    socket.once('close', () => this.preauth.done(entry));
    this.wss!.handleUpgrade(req, socket, head, (ws) => void this.onConnection(ws, req, entry));
  }

  /** Clients connected right now. */
  get clients(): number {
    return this.sessions.size;
  }

  /** Stops: queued jobs go back to their clients, running ones finish (up to `graceMs`), then all closes. */
  async close(graceMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.shed.flush();
    this.wss?.close();
    const closing = new Promise<void>((resolve) =>
      this.http ? this.http.close(() => resolve()) : resolve(),
    );
    for (const s of this.sessions.values()) {
      const ids = this.queue.removeOwner(s.id).map((id) => this.forget(id)?.clientId);
      s.send({ type: 'requeue', ids: ids.filter((x): x is number => x !== undefined) });
    }
    // Jobs queued inside the workers go back too, as each worker ends the job it runs.
    this.pool.withdrawQueued();
    const deadline = Date.now() + graceMs;
    while (this.pool.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const s of this.sessions.values()) {
      const running = [...this.jobs.values()].filter((j) => j.session === s).map((j) => j.clientId);
      if (running.length > 0) s.send({ type: 'requeue', ids: running });
      s.send({ type: 'bye', reason: 'node shutting down' });
      s.socket.close(CloseCode.GoingAway, 'node shutting down');
    }
    await this.pool.close();
    await closing;
  }

  /** pp's stats table, a row per client address. */
  statsTable(): string {
    let total = 0;
    for (const s of this.stats.values()) total += s.jobs;
    const rows: NodeStats[] = [...this.stats].map(([peer, s]) => ({
      node: peer,
      jobs: s.jobs,
      percent: total ? (100 * s.jobs) / total : 0,
      jobTimeSum: s.timeMs / 1000,
      timePerJob: s.jobs ? s.timeMs / 1000 / s.jobs : 0,
      ncpus: this.info.ncpus,
      speed: 1,
    }));
    return formatStats({
      nodes: rows,
      uptime: (performance.now() - this.created) / 1000,
      activeJobs: this.jobs.size,
      ncpus: this.info.ncpus,
      totalJobs: total,
    });
  }

  private async onConnection(ws: WebSocket, req: IncomingMessage, entry: PreauthEntry): Promise<void> {
    const ip = req.socket.remoteAddress ?? 'unknown';
    const peer = `${ip}:${req.socket.remotePort}`;
    const log = this.opts.logger;
    // A frame over the pre-auth limit, or any other protocol error before authentication: ws
    // would send a close frame and wait for the peer's answer (30 s), reading on. Not for a
    // peer that has proved nothing: its connection ends now.
    const preauthError = () => ws.terminate();
    ws.once('error', preauthError);
    let socket: SecureSocket;
    try {
      socket = await serverHandshake(ws, this.opts.secret, this.opts.handshakeTimeoutMs ?? 5000, () => {
        ws.off('error', preauthError);
        this.preauth.done(entry);
        try {
          raiseMaxPayload(ws, MAX_WS_PAYLOAD);
        } catch (error) {
          log.error('cannot accept clients', { error });
          ws.terminate();
        }
      });
    } catch (error) {
      const f = error as HandshakeFailure;
      this.preauth.done(entry);
      // Dropped to make room for newer connections: not this peer's failure.
      if (entry.evicted) return;
      this.limiter.failed(ip);
      if (f.handshakeCode === 'bad-proof') log.warn('client rejected: wrong secret', { peer });
      else log.warn('handshake failed', { peer, reason: f.message });
      return;
    }
    this.limiter.succeeded(ip);
    if (this.stopping) {
      ws.close(CloseCode.GoingAway, 'node shutting down');
      return;
    }
    const id = `c${this.nextSession++}`;
    const s = new ClientSession(id, peer, socket, this);
    socket.resume();
    this.sessions.set(id, s);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    log.info('client connected', { peer, session: socket.session.id, clients: this.sessions.size });
    s.send({ type: 'welcome', info: this.info });
    this.tellReadyWorkers(s);
  }

  /**
   * Tells clients how many workers can run jobs now, when it changed (or to one that just
   * came: its welcome said how many this node has). A node that just started, or lost a
   * worker, has fewer than it says; clients place work by this number. Protocol 2+.
   */
  private tellReadyWorkers(only?: ClientSession): void {
    // (Also called while the pool is being made, from its constructor.)
    const ready = (this.pool as LocalPool | undefined)?.readyWorkers;
    if (ready === undefined || (!only && ready === this.toldReady)) return;
    this.toldReady = ready;
    for (const s of only ? [only] : this.sessions.values())
      if (s.socket.session.version >= STEALING_PROTOCOL) s.send({ type: 'ncpus', ncpus: ready });
  }

  /** @internal */
  sessionClosed(s: ClientSession, code: number, reason: string): void {
    if (!this.sessions.delete(s.id)) return;
    for (const id of this.queue.removeOwner(s.id)) this.jobs.delete(id);
    // Jobs already in the pool finish; their results are dropped.
    this.opts.logger.info('client disconnected', { peer: s.peer, code, reason: reason || undefined });
    this.armIdleTimer();
  }

  /**
   * @internal A message whose head broke the head limits (HEAD_LIMITS; a client checks them at
   * submit, so this takes one that did not). Read again within the codec's own limits, it tells
   * what it was about: a definition's jobs then fail as they come, a run's jobs at once, instead
   * of the connection closing and the client sending the same message again forever. Returns
   * false when the message is none of those (the caller closes the connection).
   */
  refused(s: ClientSession, frame: Uint8Array, error: Error): boolean {
    let msg: Message;
    try {
      msg = decodeMessage(frame, {});
    } catch {
      return false;
    }
    this.opts.logger.warn('could not read a message within the limits: failing its jobs', {
      peer: s.peer,
      type: msg.type,
      error,
    });
    if (msg.type === 'define') {
      for (const def of msg.defs) {
        s.defs.delete(def.hash);
        s.unreadable.set(
          def.hash,
          new Error(`the node could not read the definition of ${def.name}: ${error.message}`),
        );
      }
      return true;
    }
    if (msg.type === 'run') {
      for (const [clientId] of msg.jobs)
        s.sendFailed(clientId, new Error(`the node could not read the job it was sent: ${error.message}`));
      return true;
    }
    return false;
  }

  /** @internal A decoded message from an authenticated client. */
  handle(s: ClientSession, msg: Message): void {
    if (
      this.packages.intercept(
        s,
        msg,
        (m) => this.handle(s, m),
        (def, e) => s.refuseDefinition(def, e),
      )
    )
      return;
    switch (msg.type) {
      case 'define':
        for (const def of msg.defs) {
          s.defs.set(def.hash, { ...def, hash: contentHash(def) });
          s.unreadable.delete(def.hash);
        }
        return;
      case 'put':
        msg.refs.forEach((ref, i) => {
          s.refs.set(ref, { id: ref, blob: Uint8Array.prototype.slice.call(msg.blobs[i]!) });
        });
        return;
      case 'release':
        for (const ref of msg.refs) s.refs.delete(ref);
        this.pool.release(msg.refs);
        return;
      case 'run':
        // Arena slots name this machine's memory: a client must never be able to point at it.
        if (msg.slots) throw new MessageError(`a client may not send shared-memory slots`);
        if (this.stopping) {
          // Sent before the client heard that we stop: back at once, to run elsewhere.
          s.send({ type: 'requeue', ids: msg.jobs.map(([clientId]) => clientId) });
          return;
        }
        msg.jobs.forEach(([clientId, fn, timeoutMs, refIds], i) => {
          this.accept(s, clientId, msg.fns[fn]!, timeoutMs, refIds, receivedBlob(msg.blobs[i]!));
        });
        this.scheduleDrain();
        return;
      case 'cancel':
        for (const clientId of msg.ids) this.cancel(s, clientId);
        return;
      case 'withdraw':
        s.send({ type: 'withdrawn', ids: this.withdraw(s, msg.ids) });
        return;
      case 'ping':
        s.send({ type: 'pong', t: msg.t });
        return;
      case 'pong':
        return;
      case 'bye':
        s.socket.close(CloseCode.Normal, 'bye');
        return;
      default:
        throw new MessageError(`a client may not send '${msg.type}'`);
    }
  }

  private accept(
    s: ClientSession,
    clientId: number,
    hash: string,
    timeoutMs: number,
    refIds: string[],
    blob: Uint8Array,
  ): void {
    const def = s.defs.get(hash);
    const refs: RefData[] = [];
    for (const r of refIds) {
      const data = s.refs.get(r);
      if (data) refs.push(data);
    }
    if (!def || refs.length !== refIds.length) {
      const unreadable = def ? undefined : s.unreadable.get(hash);
      const what = def ? 'a Ref it was never sent' : `function ${hash.slice(0, 12)} it was never sent`;
      s.sendFailed(clientId, unreadable ?? new Error(`protocol error: the node got a job for ${what}`));
      return;
    }
    const id = nextInternalId++;
    this.jobs.set(id, {
      session: s,
      clientId,
      dispatch: {
        id,
        hash: def.hash,
        name: def.name,
        // A view into the received message (no copy): it lives as long as the message's jobs.
        args: wholeArgs(blob),
        timeoutMs: timeoutMs > 0 ? timeoutMs : undefined,
        estimatedMs: this.estimates.get(def.hash)?.value,
        refs,
        definition: () => def,
      },
    });
    s.byClientId.set(clientId, id);
    this.queue.push(s.id, id);
  }

  private cancel(s: ClientSession, clientId: number): void {
    const id = s.byClientId.get(clientId);
    if (id === undefined) return;
    if (this.queue.remove(s.id, (x) => x === id) !== undefined) {
      this.forget(id);
      s.queueResult([clientId, JobStatus.Cancelled, 0], encode(undefined));
      return;
    }
    this.pool.cancel(id);
  }

  /**
   * A client takes back jobs of its own that have not started, to run them elsewhere (work
   * stealing): those still in this node's queue are given up; those already in a worker run
   * here. Returns the client's ids of the ones given up.
   */
  private withdraw(s: ClientSession, clientIds: readonly number[]): number[] {
    const wanted = new Set<number>();
    for (const clientId of clientIds) {
      const id = s.byClientId.get(clientId);
      if (id !== undefined) wanted.add(id);
    }
    if (wanted.size === 0) return [];
    const given: number[] = [];
    for (const id of this.queue.removeAll(s.id, (id) => wanted.has(id))) {
      const job = this.forget(id);
      if (job) given.push(job.clientId);
    }
    return given;
  }

  private forget(id: number): NodeJob | undefined {
    const job = this.jobs.get(id);
    if (!job) return undefined;
    this.jobs.delete(id);
    job.session.byClientId.delete(job.clientId);
    return job;
  }

  // No closure here: it would be allocated on every call (one per result).
  private readonly drainTask = (): void => {
    this.drainScheduled = false;
    this.drain();
  };

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    queueMicrotask(this.drainTask);
  }

  private drain(): void {
    while (this.queue.size > 0) {
      const next = this.jobs.get(this.queue.peek()!);
      const estimate = next ? this.estimates.get(next.dispatch.hash)?.value : undefined;
      // A worker holds the next job behind the one it runs, so that it starts it without a
      // round trip through this process; the client already decided how many jobs this node
      // holds (and places the last ones of a burst itself). Very long jobs wait here instead,
      // where a client can still take them back for a CPU that would otherwise idle (see
      // scheduler/depth.ts).
      const waiting = estimate !== undefined && estimate >= HOLD_NEXT_BELOW_MS ? 0 : Number.POSITIVE_INFINITY;
      const free = this.pool.freeSlots(estimate, waiting);
      if (free <= 0) return;
      const batch: DispatchJob[] = [];
      for (const [, id] of this.queue.take(free)) {
        const job = this.jobs.get(id);
        if (job) batch.push({ ...job.dispatch, estimatedMs: this.estimates.get(job.dispatch.hash)?.value });
      }
      if (batch.length === 0) continue;
      this.pool.dispatch(batch);
    }
  }

  private onResult(id: number, status: JobStatus, durationMs: number, blob: Uint8Array): void {
    this.scheduleDrain();
    const job = this.forget(id);
    if (!job) return;
    let est = this.estimates.get(job.dispatch.hash);
    if (!est) this.estimates.set(job.dispatch.hash, (est = new DurationEstimate()));
    est.add(durationMs);
    const peerIp = job.session.peer.replace(/:\d+$/, '');
    let st = this.stats.get(peerIp);
    if (!st) this.stats.set(peerIp, (st = { jobs: 0, timeMs: 0 }));
    st.jobs++;
    st.timeMs += durationMs;
    if (job.session.open) job.session.queueResult([job.clientId, status, durationMs], blob);
  }

  private onJobFailed(id: number, error: Error): void {
    this.scheduleDrain();
    const job = this.forget(id);
    if (job?.session.open) job.session.sendFailed(job.clientId, error);
  }

  /**
   * Jobs that never started (their worker died, or gave them back when asked): they keep
   * their place in line, or, when stopping, go back to their clients at once to run elsewhere.
   */
  private onRequeue(ids: number[]): void {
    const bySession = new Map<ClientSession, number[]>();
    for (const id of ids) {
      const job = this.jobs.get(id);
      if (!job?.session.open) {
        this.forget(id);
        continue;
      }
      const list = bySession.get(job.session) ?? [];
      list.push(id);
      bySession.set(job.session, list);
    }
    for (const [s, list] of bySession) {
      if (this.stopping) s.send({ type: 'requeue', ids: list.map((id) => this.forget(id)!.clientId) });
      else this.queue.unshiftAll(s.id, list);
    }
    this.scheduleDrain();
  }

  private armIdleTimer(): void {
    const s = this.opts.idleTimeoutS ?? 0;
    if (s <= 0 || this.sessions.size > 0 || this.stopping) return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.opts.logger.info(`no client for ${s} s: stopping (--idle-timeout)`);
      this.opts.onIdle?.();
    }, s * 1000);
    this.idleTimer.unref();
  }

  /** @internal */
  get clientTimeoutMs(): number {
    return this.opts.clientTimeoutMs ?? 10_000;
  }

  /** @internal */
  get logger(): Logger {
    return this.opts.logger;
  }
}

/** One authenticated client connection. */
class ClientSession {
  readonly defs = new Map<string, FunctionDefinition>();
  /** Why definitions this client sent could not be read, by its hash (see Daemon.refused). */
  readonly unreadable = new Map<string, Error>();
  readonly refs = new Map<string, RefData>();
  readonly byClientId = new Map<number, number>();
  open = true;
  private results: ResultEntry[] = [];
  private blobs: Uint8Array[] = [];
  private flushScheduled = false;
  private lastHeard = Date.now();
  private readonly watchdog: NodeJS.Timeout;

  constructor(
    readonly id: string,
    readonly peer: string,
    readonly socket: SecureSocket,
    node: Daemon,
  ) {
    socket.on('message', (data) => {
      this.lastHeard = Date.now();
      let msg: Message;
      try {
        try {
          msg = decodeMessage(data);
        } catch (error) {
          if (error instanceof MessageError && node.refused(this, data, error)) return;
          throw error;
        }
        node.handle(this, msg);
      } catch (error) {
        node.logger.warn('closing connection: bad message', { peer, error });
        socket.close(CloseCode.Protocol, `bad message: ${(error as Error).message}`);
      }
    });
    socket.on('close', (code, reason) => {
      this.open = false;
      clearInterval(this.watchdog);
      node.sessionClosed(this, code, reason);
    });
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastHeard > node.clientTimeoutMs) {
        node.logger.warn('client went silent: dropping it', { peer });
        socket.terminate();
      }
    }, 1000);
    this.watchdog.unref();
  }

  send(msg: Message): void {
    if (this.open) this.socket.send(encodeMessage(msg));
  }

  /** Results are coalesced: one message per turn of the event loop, not one per job. */
  queueResult(entry: ResultEntry, blob: Uint8Array): void {
    this.results.push(entry);
    this.blobs.push(blob);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const results = this.results;
      const blobs = this.blobs;
      this.results = [];
      this.blobs = [];
      this.send({ type: 'done', results, blobs });
    });
  }

  /** A definition this node cannot run (its modules could not be had): its jobs fail with `error`. */
  refuseDefinition(def: FunctionDefinition, error: Error): void {
    this.defs.delete(def.hash);
    this.unreadable.set(def.hash, error);
  }

  sendFailed(clientId: number, error: Error): void {
    this.send({ type: 'failed', ids: [clientId], blobs: [encode(error)] });
  }
}

/** The node's own key for a definition: a client cannot make another client's jobs run its code. */
function contentHash(def: FunctionDefinition): string {
  const bytes = encode([def.name, def.code, def.bindings, def.modules, def.globals, def.packages ?? []]);
  return createHash('sha256').update(bytes).digest('hex');
}
