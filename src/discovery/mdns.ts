/**
 * One mDNS socket (a bonjour-service instance, multicast-dns underneath) kept alive through network
 * trouble. Internal to src/discovery.
 *
 * bonjour-service is loaded lazily, on the first start(): importing this module (or announce.ts,
 * browse.ts) does not load it, so code that only needs the pure helpers never gets near an mDNS stack.
 *
 * Error handling, from the sources of bonjour-service 1.4 and multicast-dns 7.2:
 * - multicast-dns emits 'error' (EACCES, EADDRINUSE, a failed bind) and 'warning' (everything else:
 *   addMembership / setMulticastInterface failures, undecodable packets). bonjour-service adds no
 *   'error' listener, so an 'error' would crash the process: we listen to both.
 * - bonjour-service's default error callback (a failed response) rethrows: we pass our own.
 * - send callbacks carry no-route / no-interface errors: we pass callbacks and report.
 * A fatal error closes the socket and we retry with backoff (1 s .. 30 s). The `interface` option is
 * re-resolved every second: an interface that goes away (or down: Node lists only interfaces that are up
 * with carrier) closes the socket, and one that appears or changes address starts a new one at once.
 */
import type { RemoteInfo } from 'node:dgram';
import { createRequire } from 'node:module';
import { type NetworkInterfaceInfo, networkInterfaces } from 'node:os';
import { Backoff } from '../backoff.ts';
import { printable } from '../log.ts';
import {
  announceAddresses,
  normalizeAddress,
  onLink4,
  type ResolvedInterface,
  resolveInterface,
} from './addresses.ts';

export interface DnsRecord {
  name: string;
  type: string;
  ttl?: number;
  class?: string;
  flush?: boolean;
  data?: any;
}

export interface DnsQuestion {
  name: string;
  type: string;
}

export interface DnsPacket {
  type?: 'query' | 'response';
  questions?: DnsQuestion[];
  answers?: DnsRecord[];
  additionals?: DnsRecord[];
}

type Listener = (...args: any[]) => void;

/** The parts of a multicast-dns instance we use. */
export interface MulticastDns {
  on(event: string, fn: Listener): unknown;
  once(event: string, fn: Listener): unknown;
  removeListener(event: string, fn: Listener): unknown;
  emit(event: string, ...args: unknown[]): boolean;
  query(q: DnsPacket, cb?: (err?: Error | null) => void): void;
  respond(res: DnsPacket, cb?: (err?: Error | null) => void): void;
}

/**
 * The (TypeScript-private) parts of a bonjour-service instance we use: its public API has no way to
 * the multicast-dns socket (for our probes, queries, raw responses, the on-link filter and send
 * errors) nor to the responder without its `publish()` (see announce.ts and browse.ts for why that
 * and `find()` do not serve). bonjour-service is pinned exactly in package.json, and
 * test/bonjour-internals.test.ts fails when these parts are gone or behave otherwise.
 */
interface BonjourInternals {
  server: { mdns: MulticastDns; register(r: DnsRecord[]): void; unregister(r: DnsRecord[]): void };
  destroy(cb?: () => void): void;
}

type BonjourCtor = new (opts?: object, errorCallback?: (err: Error) => void) => unknown;

const requireCjs = createRequire(import.meta.url);
let bonjourCtor: BonjourCtor | undefined;

function loadBonjour(): BonjourCtor {
  if (!bonjourCtor) {
    const mod = requireCjs('bonjour-service');
    bonjourCtor = (mod.Bonjour ?? mod.default ?? mod) as BonjourCtor;
  }
  return bonjourCtor;
}

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;
const WATCH_MS = 1000;
const CLOSE_TIMEOUT_MS = 1000;
/** The same error (code + message) is reported at most once in this period. */
const REPORT_EVERY_MS = 10 * 60_000;

/** One live socket. Replaced by a new one after a fatal error or an interface change. */
export class MdnsSession {
  ready = false;
  closed = false;
  /** Key of the address set last announced / seen, for change detection. */
  addrKey = '';
  readonly mdns: MulticastDns;
  readonly server: BonjourInternals['server'];
  readonly #bonjour: BonjourInternals;
  readonly #report: (e: Error) => void;

  constructor(
    public iface: ResolvedInterface | null,
    report: (e: Error) => void,
    onError: (e: Error) => void,
  ) {
    this.#report = report;
    const Bonjour = loadBonjour();
    // With an interface: bind 0.0.0.0 (a socket bound to a unicast address gets no multicast on
    // Linux), join the group and send on that interface only.
    const opts = iface ? { interface: iface.ipv4, bind: '0.0.0.0' } : {};
    this.#bonjour = new Bonjour(opts, (err: Error) => this.closed || report(err)) as BonjourInternals;
    this.server = this.#bonjour.server;
    this.mdns = this.server.mdns;
    this.mdns.on('error', (err: Error) => this.closed || onError(err));
    this.mdns.on('warning', (err: Error) => this.closed || report(err));
    if (iface) {
      // The socket gets group traffic from every interface where any socket of the machine joined the
      // group; keep what comes from the chosen link (RFC 6762 §11: on-link sources only).
      const emit = this.mdns.emit;
      const mdns = this.mdns;
      mdns.emit = (event: string, ...args: unknown[]) => {
        if (
          (event === 'packet' || event === 'query' || event === 'response') &&
          !this.accepts(args[1] as RemoteInfo)
        ) {
          return false;
        }
        return emit.call(mdns, event, ...args);
      };
    }
  }

  /** Is a packet from this source on our link? (Always true without the interface option.) */
  accepts(rinfo: RemoteInfo | undefined): boolean {
    if (!this.iface) return true;
    if (!rinfo || typeof rinfo.address !== 'string') return false;
    const from = normalizeAddress(rinfo.address);
    return (
      onLink4(from, this.iface.addresses) ||
      this.iface.addresses.some((a) => normalizeAddress(a.address) === from)
    );
  }

  query(packet: DnsPacket): Promise<void> {
    return this.#send('query', packet);
  }

  respond(packet: DnsPacket): Promise<void> {
    return this.#send('respond', packet);
  }

  #send(kind: 'query' | 'respond', packet: DnsPacket): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed) return resolve();
      try {
        this.mdns[kind](packet, (err) => {
          if (err && !this.closed) this.#report(err);
          resolve();
        });
      } catch (err) {
        if (!this.closed) this.#report(err as Error);
        resolve();
      }
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      try {
        this.#bonjour.destroy(done);
      } catch {
        done();
      }
    });
  }
}

export interface MdnsLinkOptions {
  /** Interface name or local address (see resolveInterface); all interfaces when absent. */
  interface?: string | undefined;
  /** 'announce' or 'browse', for messages. */
  what: string;
  report: (e: Error) => void;
  /** A session is bound and usable. */
  onUp: (s: MdnsSession) => void;
  /** A usable session went away (fatal error, interface change). Not called by close(). */
  onDown?: (s: MdnsSession) => void;
  /** The addresses to announce changed (same socket). */
  onAddressesChanged?: (s: MdnsSession) => void;
}

/** Keeps one MdnsSession alive: retries after errors, follows the interface. */
export class MdnsLink {
  readonly #opts: MdnsLinkOptions;
  #current: MdnsSession | null = null;
  #started = false;
  #closed = false;
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #backoff = new Backoff(RETRY_MIN_MS, RETRY_MAX_MS);
  /** The interface is missing (or down): the watcher starts a session when it is back. */
  #waitingForInterface = false;
  #watchTimer: NodeJS.Timeout | undefined;
  readonly #reported = new Map<string, number>();

  constructor(opts: MdnsLinkOptions) {
    this.#opts = opts;
  }

  get session(): MdnsSession | null {
    return this.#current?.ready ? this.#current : null;
  }

  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#watchTimer = setInterval(() => this.#watch(), WATCH_MS);
    this.#attempt();
  }

  /** Closes the socket for good; `before` runs first on a usable session (e.g. to send goodbyes). */
  async close(before?: (s: MdnsSession) => Promise<void>): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#watchTimer);
    const s = this.#current;
    this.#current = null;
    if (!s) return;
    if (s.ready && before) {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([before(s), new Promise((r) => (timer = setTimeout(r, CLOSE_TIMEOUT_MS)))]);
      } catch (err) {
        this.#report(err as Error);
      } finally {
        clearTimeout(timer);
      }
    }
    await s.close();
  }

  #report(error: Error): void {
    if (this.#closed) return;
    // socket errors ("bind EADDRINUSE 0.0.0.0:5353") get context; ours already start with "mDNS".
    // Printable: a packet's decode warning could quote what the LAN sent.
    const said = printable(error.message);
    const e =
      said === error.message && said.startsWith('mDNS')
        ? error
        : Object.assign(
            new Error(said.startsWith('mDNS') ? said : `mDNS ${this.#opts.what}: ${said}`, { cause: error }),
            { code: (error as { code?: unknown }).code },
          );
    const key = `${(e as { code?: unknown }).code ?? ''}|${e.message}`;
    const now = Date.now();
    const last = this.#reported.get(key);
    if (last !== undefined && now - last < REPORT_EVERY_MS) return;
    this.#reported.set(key, now);
    try {
      this.#opts.report(e);
    } catch {
      // an error handler that throws must not take the socket down
    }
  }

  #attempt(): void {
    this.#retryTimer = undefined;
    if (this.#closed) return;
    let iface: ResolvedInterface | null = null;
    if (this.#opts.interface !== undefined) {
      const r = resolveInterface(this.#opts.interface);
      if (r instanceof Error) {
        this.#report(r);
        this.#waitingForInterface = true;
        return;
      }
      iface = r;
    }
    this.#waitingForInterface = false;
    let s: MdnsSession;
    try {
      s = new MdnsSession(
        iface,
        (e) => this.#report(e),
        (e) => this.#fail(s, e),
      );
    } catch (err) {
      this.#report(err as Error);
      this.#scheduleRetry();
      return;
    }
    this.#current = s;
    s.mdns.once('ready', () => {
      if (this.#current !== s || s.closed || this.#closed) return;
      s.ready = true;
      s.addrKey = addressKey(s.iface);
      this.#backoff.reset();
      this.#reported.clear();
      this.#opts.onUp(s);
    });
  }

  #fail(s: MdnsSession, err: Error): void {
    if (this.#current !== s) return;
    this.#report(err);
    this.#drop(s);
    this.#scheduleRetry();
  }

  #drop(s: MdnsSession): void {
    this.#current = null;
    const wasUp = s.ready;
    void s.close();
    if (wasUp) this.#opts.onDown?.(s);
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retryTimer) return;
    this.#retryTimer = setTimeout(() => this.#attempt(), this.#backoff.next());
  }

  #watch(): void {
    if (this.#closed) return;
    const s = this.#current;
    if (this.#opts.interface !== undefined) {
      if (!s) {
        // back from a missing interface: start at once (a bind failure waits for its retry timer)
        if (this.#waitingForInterface && !(resolveInterface(this.#opts.interface) instanceof Error))
          this.#attempt();
        return;
      }
      const r = resolveInterface(this.#opts.interface);
      if (r instanceof Error) {
        // gone, or down (os.networkInterfaces() lists only interfaces that are up and have carrier)
        this.#report(r);
        this.#drop(s);
        this.#waitingForInterface = true;
        return;
      }
      if (r.ipv4 !== s.iface?.ipv4) {
        // multicast-dns fixes its interface at creation: start over on the new address
        this.#drop(s);
        this.#backoff.reset();
        this.#attempt();
        return;
      }
      s.iface = r;
    }
    if (!s?.ready) return;
    const key = addressKey(s.iface);
    // no address at all (every link down): keep announcing the last ones rather than none
    if (key !== s.addrKey && key !== '') {
      s.addrKey = key;
      this.#opts.onAddressesChanged?.(s);
    }
  }
}

function addressKey(iface: ResolvedInterface | null, ifaces?: NodeJS.Dict<NetworkInterfaceInfo[]>): string {
  return announceAddresses(iface, ifaces ?? networkInterfaces())
    .sort()
    .join(' ');
}
