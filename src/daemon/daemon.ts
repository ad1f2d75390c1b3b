/**
 * A pp-node: accepts authenticated clients over WebSockets and runs their jobs on this
 * machine's workers (the same pool and worker runtime as a local Server), sharing the CPUs
 * fairly between clients.
 *
 * This file wires the parts, one concern each: admission (listener.ts, admission.ts), the
 * client session (session.ts), the job table and its dispatch (jobs.ts), outcome routing
 * (outcomes.ts), statistics (stats.ts) and shutdown (shutdown.ts). The messages a client may
 * send are handled here (handle).
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../log.ts';
import { LocalPool } from '../nodes/local-pool.ts';
import { encode } from '../protocol/codec.ts';
import { PROTOCOL_VERSION, STEALING_PROTOCOL } from '../protocol/handshake.ts';
import {
  decodeMessage,
  type FunctionDefinition,
  type Message,
  MessageError,
  type NodeInfo,
  receivedBlob,
} from '../protocol/messages.ts';
import { HandshakeLimiter } from '../protocol/rate-limit.ts';
import { localRuntime, type RuntimeInfo } from '../protocol/runtime-info.ts';
import { CloseCode, type SecureSocket } from '../protocol/secure-socket.ts';
import { VERSION } from '../version.ts';
import { JobTable } from './jobs.ts';
import { Listener } from './listener.ts';
import { OutcomeRouter } from './outcomes.ts';
import { type PackageGate, packageGate } from './packages.ts';
import { ClientSession, type SessionOwner } from './session.ts';
import { shutdown } from './shutdown.ts';
import { PeerStats } from './stats.ts';
import { StatusBook } from './status.ts';

/**
 * The nice value of a node's workers unless told (`pp-node --nice`): the programs of the
 * machine's owner come first, and the jobs take the CPU time they leave.
 */
export const DEFAULT_NICE = 10;

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
  /** nice value for worker processes (default {@link DEFAULT_NICE}). */
  niceness?: number;
  /** A client silent for this long is dropped (default 10 s; clients ping every 0.5 s). */
  clientTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  /** How many handshakes are answered, per host and in all (default: protocol/rate-limit.ts's defaults). */
  limiter?: HandshakeLimiter;
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

export class Daemon implements SessionOwner {
  readonly info: NodeInfo;
  private readonly pool: LocalPool;
  /** Modules clients send (packages.ts). */
  private readonly packages: PackageGate;
  private readonly listener: Listener;
  private readonly sessions = new Map<string, ClientSession>();
  private readonly table = new JobTable();
  private readonly stats = new PeerStats();
  private readonly outcomes: OutcomeRouter;
  private idleTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private nextSession = 1;
  /** Ready workers as last told to clients. */
  private toldReady = -1;
  /** Counts for 'status' (status.ts). */
  private readonly statusBook = new StatusBook();

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
    this.listener = new Listener(
      opts,
      opts.limiter ?? new HandshakeLimiter(),
      () => this.stopping,
      (socket, peer) => this.onClient(socket, peer),
    );
    this.outcomes = new OutcomeRouter(this.table, this.stats, () => this.stopping);
    this.pool = new LocalPool(
      {
        ncpus: opts.workers,
        isolation: 'process',
        niceness: opts.niceness ?? DEFAULT_NICE,
        cacheDir: this.packages.store.cacheDir,
      },
      {
        onResult: (_n, job, status, durationMs, bytes, start, end) => {
          this.statusBook.finished(status);
          this.outcomes.result(job.id, status, durationMs, bytes.subarray(start, end));
        },
        onJobFailed: (_n, job, error) => {
          this.statusBook.failed();
          this.outcomes.failed(job.id, error);
        },
        onRequeue: (_n, jobs) => this.outcomes.requeue(jobs.map((j) => j.id)),
        onCapacity: () => {
          this.table.scheduleDrain();
          this.tellReadyWorkers();
        },
      },
    );
    this.table.runner = this.pool;
    this.pool.onFatal = (error) => {
      opts.logger.error('workers cannot start; stopping the node', { error });
      void this.close();
    };
  }

  /** Starts listening; resolves with the bound port. Admission before authentication: see admission.ts. */
  async listen(): Promise<number> {
    const port = await this.listener.listen();
    this.armIdleTimer();
    return port;
  }

  /** Clients connected right now. */
  get clients(): number {
    return this.sessions.size;
  }

  /** Jobs of its clients it holds right now: queued here, or in its workers. */
  get jobs(): number {
    return this.table.size;
  }

  /** Stops: queued jobs go back to their clients, running ones finish (up to `graceMs`), then all closes. */
  async close(graceMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    await shutdown(
      { listener: this.listener, sessions: this.sessions, table: this.table, pool: this.pool },
      graceMs,
    );
  }

  /** pp's stats table, a row per client address. */
  statsTable(): string {
    return this.stats.table(this.info.ncpus, this.table.size);
  }

  private onClient(socket: SecureSocket, peer: string): void {
    const id = `c${this.nextSession++}`;
    const s = new ClientSession(id, peer, socket, this);
    socket.resume();
    this.sessions.set(id, s);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.opts.logger.info('client connected', {
      peer,
      session: socket.session.id,
      clients: this.sessions.size,
    });
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
    // Jobs already in the pool finish; their results are dropped.
    this.table.dropQueued(s);
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
        (def, e) => refuseDefinition(s, def, e),
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
          this.table.accept(s, clientId, msg.fns[fn]!, timeoutMs, refIds, receivedBlob(msg.blobs[i]!));
        });
        this.table.scheduleDrain();
        return;
      case 'cancel':
        for (const clientId of msg.ids) this.table.cancel(s, clientId);
        return;
      case 'withdraw':
        s.send({ type: 'withdrawn', ids: this.table.withdraw(s, msg.ids) });
        return;
      case 'status':
        // A monitor (pp-node top) is no client: it does not keep the node from its idle timeout.
        if (!s.monitor) {
          s.monitor = true;
          this.armIdleTimer();
        }
        s.send({ type: 'status-report', status: this.statusBook.report(this.statusFacts()) });
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

  /** What a 'status' report needs from here (see status.ts). */
  private statusFacts() {
    let monitors = 0;
    for (const s of this.sessions.values()) if (s.monitor) monitors++;
    const busy = this.pool.busyWorkers;
    return {
      ...this.info,
      ready: this.pool.readyWorkers,
      busy,
      queued: this.table.queue.size + Math.max(0, this.pool.inFlight - busy),
      clients: this.sessions.size - monitors,
      monitors,
    };
  }

  private armIdleTimer(): void {
    const s = this.opts.idleTimeoutS ?? 0;
    if (s <= 0 || this.stopping) return;
    for (const c of this.sessions.values()) if (!c.monitor) return;
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

/** The node's own key for a definition: a client cannot make another client's jobs run its code. */
function contentHash(def: FunctionDefinition): string {
  const bytes = encode([def.name, def.code, def.bindings, def.modules, def.globals, def.packages ?? []]);
  return createHash('sha256').update(bytes).digest('hex');
}

/** A definition this node cannot run (its modules could not be had): its jobs fail with `error`. */
function refuseDefinition(s: ClientSession, def: FunctionDefinition, error: Error): void {
  s.defs.delete(def.hash);
  s.unreadable.set(def.hash, error);
}
