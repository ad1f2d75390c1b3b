/**
 * A remote `pp-node` as a compute node of the client's Server: one authenticated, encrypted
 * WebSocket connection, kept alive by a heartbeat and re-made with backoff when it drops.
 *
 * Exactly once: every job sent on a connection is either answered on that connection or, if
 * the connection is lost, handed back to the scheduler to run elsewhere. Answers arriving on
 * an old connection are never read, so a node that comes back cannot deliver a second result.
 */
import { Backoff } from '../backoff.ts';
import { PPError } from '../errors.ts';
import { printable } from '../log.ts';
import { packByHash } from '../modules/pack.ts';
import { unreachableHint } from '../platform.ts';
import { decode } from '../protocol/codec.ts';
import { dialNode, formatAddress, opened } from '../protocol/dial.ts';
import { STEALING_PROTOCOL } from '../protocol/handshake.ts';
import {
  decodeMessage,
  encodeMessage,
  type Message,
  type NodeInfo,
  runMessage,
} from '../protocol/messages.ts';
import { PREAUTH_MAX_PAYLOAD, raiseMaxPayload } from '../protocol/preauth-payload.ts';
import { runtimeKey } from '../protocol/runtime-info.ts';
import {
  CHUNK_BYTES,
  CloseCode,
  clientHandshake,
  HandshakeFailure,
  MAX_WS_PAYLOAD,
  type SecureSocket,
} from '../protocol/secure-socket.ts';
import { linkDepth, targetDepth } from '../scheduler/depth.ts';
import type { ComputeNode, DispatchJob, NodeEvents } from './compute-node.ts';
import { argsParts } from './job-args.ts';
import { PeerCache } from './peer-cache.ts';

/** Job bytes per run message, leaving room for its head within one chunk. */
const RUN_MESSAGE_BYTES = CHUNK_BYTES - 64 * 1024;
/** Weight of each new round-trip sample in the smoothed round trip. */
const RTT_WEIGHT = 0.25;

/** Where a remote node's connection stands. A refusal is never final: see {@link RemoteNode.refused}. */
export type RemoteState = 'connecting' | 'ready' | 'backoff' | 'closed';

/** Where a node may answer: one of its addresses and its port. */
export interface Endpoint {
  host: string;
  port: number;
}

/**
 * Runs one pre-authentication dial (connect + handshake); the server bounds how many run at
 * once. `proven`: the node has authenticated before (its dials go first: a flood of fake
 * announcements must not keep a known node waiting behind them).
 */
export type DialGate = <T>(attempt: () => Promise<T>, proven: boolean) => Promise<T>;

export interface RemoteNodeOptions {
  host: string;
  port: number;
  /** More addresses of the same node, tried in order after `host` (a discovered node's addresses). */
  alternates?: readonly string[];
  /** Where the node may answer, tried in order (discovered nodes); replaces host/alternates/port when given. */
  endpoints?: readonly Endpoint[];
  /** Label for stats and messages; default `host:port`. */
  label?: string;
  /**
   * The node id this entry stands for (discovered nodes): the id the node says after it has
   * authenticated must be this one; an address where another node answers is not used again
   * for `otherNodeMs`.
   */
  expectId?: string;
  /**
   * How long an address where another node answered is not tried again (default 60000 ms).
   * Not for ever: on a LAN an address moves from one machine to another (DHCP), and this node
   * may come back at it.
   */
  otherNodeMs?: number;
  /** Bounds concurrent pre-authentication dials (default: none). */
  dial?: DialGate;
  /** First wait after an unauthenticated refusal (default 5000 ms; doubles up to maxBackoffMs). */
  refusedBackoffMs?: number;
  secret: Uint8Array;
  /** Ping period (default 500 ms); the node is declared dead after `deadAfterMs` (default 2000) without any message. */
  heartbeatMs?: number;
  deadAfterMs?: number;
  connectTimeoutMs?: number;
  /** Longest wait between reconnection attempts. */
  maxBackoffMs?: number;
  /**
   * Hold enough jobs to cover the link's round trip (default true). False: one job per CPU
   * more than a local worker holds, whatever the link (the pull-based policy before work
   * stealing, kept for comparison in the scheduling benchmark).
   */
  sizeByLink?: boolean;
}

/** What the Server hears about a remote node's life. */
export interface RemoteNodeListener {
  onUp(node: RemoteNode): void;
  onDown(node: RemoteNode, reason: string): void;
  /** A problem worth telling the user once (unreachable, wrong secret, version mismatch). */
  onProblem(node: RemoteNode, error: Error): void;
}

/** A connection that lasted this long resets the reconnection backoff. */
const STABLE_AFTER_MS = 10_000;
/** Added to four round trips: how long an unanswered steal keeps this node from another. */
const STEAL_ANSWER_GRACE_MS = 100;
/** Default of RemoteNodeOptions.otherNodeMs. */
const OTHER_NODE_MS = 60_000;

/**
 * Whoever answered at the node's address refused the handshake (REJECTED, a bad proof, a version
 * mismatch). Unauthenticated, so never final: reported once, retried with backoff.
 */
export class NodeRejectedError extends PPError {}

export class RemoteNode implements ComputeNode {
  readonly id: string;
  state: RemoteState = 'connecting';
  /** The node handed jobs back: it is shutting down, so it gets no more (until it says welcome again). */
  private stopping = false;
  info: NodeInfo | null = null;

  /** A refusal is never final (see {@link RemoteNode.refused}): usable unless it refused the last round. */
  get usable(): boolean {
    return !this.refused;
  }

  private socket: SecureSocket | null = null;
  /** Jobs sent and not answered, oldest first (a Map keeps insertion order). */
  private readonly placed = new Map<number, DispatchJob>();
  /** Placed jobs this client asked the node to give back, not answered yet. */
  private readonly asked = new Set<number>();
  /** Until then, a steal asked of this node is taken as unanswered (performance.now() ms). */
  private stealPendingUntil = 0;
  /** Smoothed over the pongs; undefined until the first (then rttMs is the handshake's). */
  private rtt: number | undefined = undefined;
  /** Workers the node says can run jobs now ('ncpus'; protocol 2+). */
  private readyCpus: number | undefined = undefined;
  /** Welcomed by a node that has yet to say how many workers are ready: not up yet. */
  private awaitingCpus = false;
  /** The function definitions and Refs the node holds on this connection. */
  private readonly cache = new PeerCache();
  private heartbeat: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Reconnection waits: 250 ms doubling up to maxBackoffMs, ±25 % so that clients spread out. */
  private readonly backoff: Backoff;
  private lastHeard = 0;
  private readyAt = 0;
  private reportedUnreachable = false;
  private reportedRefusal = false;
  /** The last round of dials ended in a refusal (no authenticated connection since). */
  private refusal: NodeRejectedError | null = null;
  /** Rounds of dials that failed since the last authenticated connection (or since the start). */
  private failedRounds = 0;
  private authenticatedOnce = false;
  private endpoints: Endpoint[];
  /** Endpoints where another node (authenticated, another id) answered, and when. */
  private readonly otherNode = new Map<string, number>();
  /** The endpoint of the current or last authenticated connection: tried first. */
  private lastGood: string | null = null;
  private current: Endpoint | null = null;
  private readonly heartbeatMs: number;
  private readonly deadAfterMs: number;

  constructor(
    private readonly opts: RemoteNodeOptions,
    private readonly events: NodeEvents,
    private readonly listener: RemoteNodeListener,
  ) {
    // Labels may come from LAN discovery: printable, whatever the caller did (messages carry it).
    this.id = printable(opts.label ?? formatAddress(opts.host, opts.port));
    this.backoff = new Backoff(250, opts.maxBackoffMs ?? 30_000, 0.25);
    this.endpoints = opts.endpoints?.length
      ? opts.endpoints.map((e) => ({ host: e.host, port: e.port }))
      : [opts.host, ...(opts.alternates ?? [])].map((host) => ({ host, port: opts.port }));
    this.heartbeatMs = opts.heartbeatMs ?? 500;
    this.deadAfterMs = opts.deadAfterMs ?? 2000;
    void this.connect();
  }

  /**
   * Its CPUs while it takes jobs: none while it connects, or once it said it stops; of its
   * workers, those it said are ready (a node that just started is still starting some).
   */
  get ncpus(): number {
    if (this.state !== 'ready' || !this.info || this.stopping) return 0;
    return Math.min(this.info.ncpus, this.readyCpus ?? this.info.ncpus);
  }

  /** The last round of dials ended in an (unauthenticated) refusal, and no connection since. */
  get refused(): boolean {
    return this.refusal !== null && this.state !== 'ready' && this.state !== 'closed';
  }

  /** Rounds of dials that failed in a row; 0 once connected. */
  get failures(): number {
    return this.failedRounds;
  }

  /** Has this node ever authenticated (and said the expected id)? */
  get proven(): boolean {
    return this.authenticatedOnce;
  }

  get inFlight(): number {
    return this.placed.size;
  }

  /** Smoothed round trip of the link, ms: the handshake's until the first pong, then the heartbeat's pings. */
  get rttMs(): number {
    return this.rtt ?? this.socket?.handshakeRttMs ?? 0;
  }

  get stealable(): number {
    if (
      this.state !== 'ready' ||
      this.stopping ||
      (this.socket?.session.version ?? 0) < STEALING_PROTOCOL ||
      performance.now() < this.stealPendingUntil
    )
      return 0;
    // Jobs beyond one per CPU may be queued at the node (it gives back those in its own queue;
    // those a worker holds next, or that start as we ask, run there).
    return Math.max(0, this.placed.size - this.ncpus - this.asked.size);
  }

  room(estimatedMs: number | undefined, waiting: number): number {
    if (this.state !== 'ready' || this.stopping) return 0;
    const depth =
      this.opts.sizeByLink === false
        ? targetDepth(estimatedMs) + 1
        : linkDepth(estimatedMs, this.rttMs, waiting / Math.max(1, this.ncpus));
    return Math.max(0, this.ncpus * depth - this.placed.size);
  }

  /**
   * Asks the node for the newest `count` jobs it holds unstarted. It answers with the ones it
   * gave up ('withdrawn', handed back through onRequeue) and runs the rest: only jobs the node
   * says it will not run move, so none runs twice.
   */
  steal(count: number): number {
    const socket = this.socket;
    if (!socket || !(count > 0) || this.stealable === 0) return 0;
    const ids: number[] = [];
    const all = [...this.placed.keys()];
    for (let i = all.length - 1; i >= this.ncpus && ids.length < count; i--) {
      const id = all[i]!;
      if (!this.asked.has(id)) ids.push(id);
    }
    if (ids.length === 0) return 0;
    for (const id of ids) this.asked.add(id);
    // The answer normally comes within a round trip; a lost one must not stop stealing for good.
    this.stealPendingUntil = performance.now() + 4 * this.rttMs + STEAL_ANSWER_GRACE_MS;
    socket.send(encodeMessage({ type: 'withdraw', ids }));
    return ids.length;
  }

  dispatch(jobs: DispatchJob[]): void {
    const socket = this.socket;
    if (this.state !== 'ready' || !socket) {
      this.events.onRequeue(this, jobs);
      return;
    }
    for (const job of jobs) this.placed.set(job.id, job);
    this.cache.sendMissing(jobs, socket);
    // Several run messages when the jobs are large: a message over CHUNK_BYTES travels in
    // chunks that the node has to join (a copy of the whole message) before decoding it.
    let batch: Parameters<typeof runMessage>[0][number][] = [];
    let batchBytes = 0;
    for (const j of jobs) {
      const blob = argsParts(j.args);
      let bytes = 0;
      for (const p of blob) bytes += p.byteLength;
      if (batch.length > 0 && batchBytes + bytes > RUN_MESSAGE_BYTES) {
        socket.send(encodeMessage(runMessage(batch)));
        batch = [];
        batchBytes = 0;
      }
      batch.push({ id: j.id, hash: j.hash, timeoutMs: j.timeoutMs, refs: j.refs, blob });
      batchBytes += bytes;
    }
    socket.send(encodeMessage(runMessage(batch)));
  }

  cancel(jobId: number): void {
    if (this.placed.has(jobId)) this.send({ type: 'cancel', ids: [jobId] });
  }

  release(refIds: readonly string[]): void {
    this.cache.release(refIds, { send: (parts) => this.socket?.send(parts) });
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const socket = this.socket;
    this.state = 'closed';
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.stopHeartbeat();
    this.socket = null;
    if (socket) {
      socket.send(encodeMessage({ type: 'bye', reason: 'client closing' }));
      await new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.close(CloseCode.Normal, 'client closing');
        setTimeout(resolve, 1000).unref();
      });
    }
    this.handBack();
  }

  /**
   * Where the node may answer now (every announcement that names its id, each kept apart by the
   * caller: one never replaces another's addresses). `again`: it was announced again, so a node
   * waiting to retry (after a failure or a refusal) retries now, with its backoff reset (a
   * refusal already reported is not reported again until the node has authenticated).
   */
  rediscovered(endpoints: readonly Endpoint[], again = true): void {
    if (endpoints.length > 0) this.endpoints = endpoints.map((e) => ({ host: e.host, port: e.port }));
    if (again && this.state === 'backoff') {
      if (this.retryTimer) clearTimeout(this.retryTimer);
      this.backoff.reset();
      void this.connect();
    }
  }

  private send(msg: Message): void {
    this.socket?.send(encodeMessage(msg));
  }

  private async connect(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'connecting';
    const failures: Array<{ at: Endpoint; error: Error }> = [];
    for (const at of this.candidates()) {
      const socket = await this.dialOne(at).catch((error: Error) => {
        failures.push({ at, error });
        return null;
      });
      if ((this.state as RemoteState) === 'closed') {
        socket?.terminate();
        return;
      }
      if (!socket) continue;
      this.current = at;
      this.attach(socket);
      socket.resume();
      return;
    }
    this.connectFailed(failures);
  }

  /** The endpoints to try, the last one that authenticated first; none where another node answers. */
  private candidates(): Endpoint[] {
    // Node's URL parser refuses IPv6 zone ids (fe80::1%eth0): link-local addresses cannot be used.
    const now = Date.now();
    for (const [key, at] of this.otherNode)
      if (now - at >= (this.opts.otherNodeMs ?? OTHER_NODE_MS)) this.otherNode.delete(key);
    const all = this.endpoints.filter((e) => !this.otherNode.has(endpointKey(e)));
    const usable = all.filter((e) => !e.host.includes('%'));
    const list = usable.length > 0 ? usable : all;
    const i = list.findIndex((e) => endpointKey(e) === this.lastGood);
    if (i > 0) list.unshift(...list.splice(i, 1));
    return list;
  }

  /**
   * Opens a WebSocket to one endpoint and runs the handshake, within the dial gate. Until the
   * node has proved the secret, the socket reads messages of PREAUTH_MAX_PAYLOAD bytes
   * at most: whoever answers at an announced address may be anyone.
   */
  private dialOne(at: Endpoint): Promise<SecureSocket> {
    const attempt = async (): Promise<SecureSocket> => {
      if (this.state === 'closed') throw new Error('closed');
      const timeoutMs = this.opts.connectTimeoutMs ?? 5000;
      const ws = dialNode(at.host, at.port, timeoutMs, PREAUTH_MAX_PAYLOAD);
      ws.on('error', () => {}); // reported through 'close' / the handshake
      try {
        await opened(ws);
        return await clientHandshake(ws, this.opts.secret, timeoutMs, () =>
          raiseMaxPayload(ws, MAX_WS_PAYLOAD),
        );
      } catch (error) {
        ws.terminate();
        throw error;
      }
    };
    return this.opts.dial ? this.opts.dial(attempt, this.authenticatedOnce) : attempt();
  }

  /** Every endpoint failed: report once, and retry with backoff (longer after a refusal). */
  private connectFailed(failures: Array<{ at: Endpoint; error: Error }>): void {
    if (this.state === 'closed') return;
    this.failedRounds++;
    const refusal = failures.find((f) => refusalKind(f.error) !== null);
    if (refusal) {
      this.refusal = this.refusalError(refusal.at, refusal.error, failures.length);
      if (!this.reportedRefusal) {
        this.reportedRefusal = true;
        this.listener.onProblem(this, this.refusal);
      }
      this.backoff.atLeast(this.opts.refusedBackoffMs ?? 5000);
      this.scheduleRetry();
      return;
    }
    this.refusal = null;
    const first = failures[0];
    if (first && !this.reportedUnreachable) {
      this.reportedUnreachable = true;
      const error = first.error;
      // Whoever answered (not necessarily the node) may have written part of the message (a close reason).
      const said = printable(error.message);
      // The node answers the upgrade with an HTTP status when it refuses before any
      // handshake (daemon/admission.ts): it is there, so a firewall hint would mislead.
      const status = /Unexpected server response: (\d+)/.exec(error.message)?.[1];
      const rateLimited =
        error instanceof HandshakeFailure &&
        (error.code === CloseCode.RateLimited || error.rejectReason === 'rate-limited');
      const hint =
        rateLimited || status === '429'
          ? ' The node refuses this address for a while after too many failed handshakes (a wrong secret nearby?).'
          : status === '503'
            ? ' The node is stopping.'
            : status
              ? ''
              : ` ${unreachableHint((error as NodeJS.ErrnoException).code)}`;
      this.listener.onProblem(
        this,
        new PPError(`cannot reach node ${this.id}: ${said}.${hint} Retrying with backoff.`),
      );
    }
    this.scheduleRetry();
  }

  /** What is known about a refusal: who answered where, and that the answer is not authenticated. */
  private refusalError(at: Endpoint, error: Error, tried: number): NodeRejectedError {
    const where = `whoever answered at ${formatAddress(at.host, at.port)}${tried > 1 ? ` (of ${tried} addresses tried)` : ''}`;
    const said = printable(error.message);
    const retry = 'Retrying with backoff.';
    switch (refusalKind(error)) {
      case 'bad-secret':
        return new NodeRejectedError(
          `node ${this.id}: ${where} rejected our secret. That answer is not authenticated: the node may use ` +
            'another secret (then copy its ~/.config/pp-node/secret here, or set the same PP_SECRET on both), or ' +
            `another program answered at its address. ${retry}`,
        );
      case 'bad-proof':
        return new NodeRejectedError(
          `node ${this.id}: ${where} could not prove it knows our secret: a node with another secret, or an impostor. ${retry}`,
        );
      case 'version':
        return new NodeRejectedError(
          `node ${this.id}: ${where} speaks another protocol version: ${said}. Unauthenticated: if it is the node, run the same pp-node version on both sides. ${retry}`,
        );
      default:
        return new NodeRejectedError(`node ${this.id}: ${where} refused the handshake: ${said}. ${retry}`);
    }
  }

  private scheduleRetry(): void {
    if (this.state === 'closed') return;
    this.state = 'backoff';
    this.retryTimer = setTimeout(() => void this.connect(), this.backoff.next());
    this.retryTimer.unref();
  }

  private attach(socket: SecureSocket): void {
    this.socket = socket;
    this.lastHeard = Date.now();
    socket.on('message', (data) => {
      if (this.socket !== socket) return;
      this.lastHeard = Date.now();
      let msg: Message;
      try {
        msg = decodeMessage(data);
        this.handle(msg);
      } catch (error) {
        socket.close(CloseCode.Protocol, `bad message: ${(error as Error).message}`);
        this.lost(socket, `bad message from the node: ${(error as Error).message}`);
      }
    });
    socket.on('close', (code, reason) => {
      // A close code is not authenticated (it is plain WebSocket): never final.
      this.lost(socket, reason || `connection closed (${code})`);
    });
    this.startHeartbeat(socket);
  }

  /** Packs sent to this node (modules it lacked) and their bytes, over all connections. */
  readonly modulesSent = { packs: 0, bytes: 0 };

  /** What a native addon needs (protocol/runtime-info.ts); '' for a node that does not say; undefined until welcomed. */
  get runtimeKey(): string | undefined {
    if (!this.info) return undefined;
    return this.info.runtime ? runtimeKey(this.info.runtime) : '';
  }

  /** The node lacks these packs (modules/pack.ts): each goes in a message of its own. */
  private sendPacks(hashes: readonly string[]): void {
    for (const hash of hashes) {
      const pack = packByHash(hash);
      // Unknown here (not ours): an empty pack, which the node refuses, failing its jobs.
      if (!pack) {
        this.send({ type: 'pack', hash, entry: '', paths: [], blobs: [] });
        continue;
      }
      const blobs = pack.files.map((f) => f.bytes);
      this.send({ type: 'pack', hash, entry: pack.entry, paths: pack.files.map((f) => f.path), blobs });
      this.modulesSent.packs++;
      this.modulesSent.bytes += pack.bytes;
    }
  }

  private handle(msg: Message): void {
    switch (msg.type) {
      case 'welcome': {
        if (this.opts.expectId !== undefined && msg.info.id !== this.opts.expectId) {
          // Another node (it proved the secret) answers at this endpoint: it has its own entry
          // if it is announced; this one does not try the endpoint again for a while.
          if (this.current) this.otherNode.set(endpointKey(this.current), Date.now());
          this.socket?.close(CloseCode.Normal, 'not the node we were looking for');
          return;
        }
        this.info = msg.info;
        this.authenticatedOnce = true;
        this.failedRounds = 0;
        this.refusal = null;
        this.reportedRefusal = false;
        if (this.current) this.lastGood = endpointKey(this.current);
        this.state = 'ready';
        this.stopping = false;
        this.readyAt = Date.now();
        this.reportedUnreachable = false;
        this.send({ type: 'ping', t: performance.now() }); // the link's round trip, at once
        // A node of protocol 2+ says next how many of its workers are ready: it is up once
        // that is more than none, with those CPUs; an older one is up now, with all it has.
        if ((this.socket?.session.version ?? 0) >= STEALING_PROTOCOL) {
          this.readyCpus = 0;
          this.awaitingCpus = true;
          return;
        }
        this.readyCpus = undefined;
        this.listener.onUp(this);
        this.events.onCapacity(this);
        return;
      }
      case 'done':
        msg.results.forEach(([id, status, durationMs], i) => {
          const job = this.take(id);
          const blob = msg.blobs[i]!;
          if (job) this.events.onResult(this, job, status, durationMs, blob, 0, blob.byteLength);
        });
        this.events.onCapacity(this);
        return;
      case 'failed':
        msg.ids.forEach((id, i) => {
          const job = this.take(id);
          if (!job) return;
          let error: Error;
          try {
            error = decode(msg.blobs[i]!) as Error;
          } catch {
            error = new PPError(`job ${id} failed on node ${this.id}`);
          }
          this.events.onJobFailed(this, job, error);
        });
        this.events.onCapacity(this);
        return;
      case 'withdrawn': {
        // The answer to steal(): these never started there and never will.
        this.stealPendingUntil = 0;
        const jobs: DispatchJob[] = [];
        for (const id of msg.ids) {
          const job = this.take(id);
          if (job) jobs.push(job);
        }
        if (jobs.length > 0) this.events.onRequeue(this, jobs, true);
        return;
      }
      case 'requeue': {
        this.stopping = true; // only a node that shuts down hands jobs back unasked
        this.events.onCapacity(this); // it takes no more: what waited for it goes elsewhere
        const jobs: DispatchJob[] = [];
        for (const id of msg.ids) {
          const job = this.take(id);
          if (job) jobs.push(job);
        }
        if (jobs.length > 0) this.events.onRequeue(this, jobs);
        return;
      }
      case 'ping':
        this.send({ type: 'pong', t: msg.t });
        return;
      case 'ncpus':
        this.readyCpus = msg.ncpus;
        // Up once it can run something: a node still starting its workers says 0 first.
        if (this.awaitingCpus && msg.ncpus > 0) {
          this.awaitingCpus = false;
          this.listener.onUp(this);
        }
        this.events.onCapacity(this);
        return;
      case 'pong': {
        const sample = performance.now() - msg.t;
        // Our own pings carry performance.now(); anything else is not a round trip of ours.
        if (sample >= 0 && sample < 60_000)
          this.rtt = this.rtt === undefined ? sample : this.rtt + (sample - this.rtt) * RTT_WEIGHT;
        return;
      }
      case 'bye':
        return;
      case 'need':
        this.sendPacks(msg.hashes);
        return;
      default:
        throw new Error(`a node may not send '${msg.type}'`);
    }
  }

  /**
   * Pings every `heartbeatMs` and checks for silence four times as often, so a dead node is
   * declared between `deadAfterMs` and `deadAfterMs + heartbeatMs / 4` after its last word.
   */
  private startHeartbeat(socket: SecureSocket): void {
    this.stopHeartbeat();
    const tick = Math.max(10, Math.floor(this.heartbeatMs / 4));
    let lastTick = Date.now();
    let lastPing = 0;
    this.heartbeat = setInterval(() => {
      const now = Date.now();
      // Our own event loop was blocked: the node's pongs may be waiting unread. Don't judge.
      if (now - lastTick > 2 * this.heartbeatMs) this.lastHeard = now;
      lastTick = now;
      if (now - this.lastHeard > this.deadAfterMs) {
        socket.terminate();
        this.lost(socket, `no heartbeat for ${now - this.lastHeard} ms`);
        return;
      }
      if (now - lastPing >= this.heartbeatMs) {
        lastPing = now;
        socket.send(encodeMessage({ type: 'ping', t: performance.now() }));
      }
    }, tick);
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  /** The connection is gone: everything it carried runs elsewhere; try again later. */
  private lost(socket: SecureSocket, peerReason: string): void {
    if (this.socket !== socket) return;
    const reason = printable(peerReason); // a close reason is the peer's own text
    this.socket = null;
    this.stopHeartbeat();
    const wasReady = this.state === 'ready' && !this.awaitingCpus; // said up to the listener
    this.awaitingCpus = false;
    this.cache.clear();
    this.rtt = undefined;
    this.handBack();
    if (this.state === 'closed') return;
    this.state = 'backoff';
    if (wasReady) this.listener.onDown(this, reason);
    // A connection that lasted reconnects quickly; one that breaks at once backs off further.
    if (wasReady && Date.now() - this.readyAt > STABLE_AFTER_MS) this.backoff.reset();
    this.scheduleRetry();
  }

  private handBack(): void {
    if (this.placed.size === 0) return;
    const jobs = [...this.placed.values()];
    this.placed.clear();
    this.asked.clear();
    this.events.onRequeue(this, jobs);
  }

  /** The job placed here under this id, no longer placed; undefined if there is none. */
  private take(id: number): DispatchJob | undefined {
    const job = this.placed.get(id);
    if (job) {
      this.placed.delete(id);
      this.asked.delete(id);
    }
    return job;
  }
}

function endpointKey(e: Endpoint): string {
  return `${e.host}|${e.port}`;
}

/** Is this failure a refusal by whoever answered (and which), or something else (null)? */
function refusalKind(error: Error): 'bad-secret' | 'bad-proof' | 'version' | 'other' | null {
  if (!(error instanceof HandshakeFailure)) return null;
  switch (error.handshakeCode) {
    case 'rejected':
      if (error.rejectReason === 'rate-limited') return null; // "come back later": not a refusal
      return error.rejectReason === 'bad-secret' ? 'bad-secret' : 'other';
    case 'bad-proof':
      return 'bad-proof';
    case 'version':
      return 'version';
    default:
      return null;
  }
}
