/**
 * What a node lets a peer hold before it has proved the secret: TCP connections, HTTP upgrades,
 * WebSockets in the handshake, and the bytes of their messages. Everything here is bounded, and
 * every connection shed is counted in one aggregated log line.
 *
 * The phases of a connection and their limits:
 * - TCP accepted, HTTP upgrade not finished: at most MAX_CONNECTIONS connections in all (the
 *   http server's `maxConnections`, authenticated clients included), each closed after
 *   UPGRADE_TIMEOUT_MS if its upgrade has not come.
 * - The upgrade: a host whose handshakes are slowed down beyond the limiter's longest wait
 *   (HandshakeLimiter, protocol/rate-limit.ts), a browser (an Origin header) or a stopping
 *   node is refused with an HTTP status and the socket destroyed, before any WebSocket exists.
 * - WebSocket, handshake not done: at most MAX_PREAUTH_CONNECTIONS in all and
 *   MAX_PREAUTH_PER_ADDRESS per address (an IPv6 /64 counts as one address); at either cap the
 *   oldest such connection is dropped. Messages are limited to PREAUTH_MAX_PAYLOAD bytes (protocol/preauth-payload.ts), refused
 *   by ws when a frame's header announces more; the handshake timeout ends the phase.
 * - Authenticated: the limit becomes MAX_WS_PAYLOAD (raiseMaxPayload).
 */
import type { Socket } from 'node:net';
import { isIPv4, isIPv6 } from 'node:net';
import type { Logger } from '../log.ts';

/** WebSockets in the handshake at once, all addresses together: a LAN's clients connect in far fewer. */
export const MAX_PREAUTH_CONNECTIONS = 256;
/** WebSockets in the handshake at once from one address (IPv6: one /64): one machine's clients need a few. */
export const MAX_PREAUTH_PER_ADDRESS = 8;
/** TCP connections at once, authenticated ones included: far below the fds a node may open (its workers need some). */
export const MAX_CONNECTIONS = 1024;
/** A connection that has not asked for its WebSocket within this time is closed: a LAN client does in milliseconds. */
export const UPGRADE_TIMEOUT_MS = 3000;
/** Connections shed are logged at most once per this interval, as counts: a flood must not flood the log too. */
export const SHED_LOG_INTERVAL_MS = 5000;

/** Why a connection was shed (the fields of the aggregated log line). */
export type ShedReason =
  | 'maxConnections'
  | 'upgradeTimeout'
  | 'preauthPerAddress'
  | 'preauthTotal'
  | 'rateLimited'
  | 'origin'
  | 'stopping';

/**
 * The key under which an address's pre-auth connections are counted: IPv4 as is (also when
 * IPv4-mapped), IPv6 by its /64, which one host (or one LAN) holds whole.
 */
export function addressKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!isIPv6(ip)) return ip;
  const [a = '', b] = ip.split('%')[0]!.split('::');
  const head = a ? a.split(':') : [];
  const tail = b ? b.split(':') : [];
  const groups =
    b === undefined
      ? head
      : [...head, ...Array<string>(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail];
  // Only the first four groups (the /64) are kept: an embedded IPv4 tail never reaches them.
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

/**
 * The host a peer address counts as for the handshake limiter (protocol/rate-limit.ts): IPv4 as
 * is (also IPv4-mapped), every 127.x.y.z as one (one machine, whose local users can send from
 * any of them), IPv6 by its /64. Not an IPv4 /24: on a LAN that is everyone, and the limiter's
 * global bucket already bounds an attacker with many addresses.
 */
export function hostKey(ip: string): string {
  const key = addressKey(ip);
  return key.startsWith('127.') && isIPv4(key) ? '127.0.0.0/8' : key;
}

/** One WebSocket in the handshake. */
export interface PreauthEntry {
  readonly key: string;
  /** Set when it was dropped to make room (not the peer's failure: the limiter is not told). */
  evicted: boolean;
}

interface Tracked extends PreauthEntry {
  readonly drop: () => void;
}

/** Connections in the handshake, oldest first, with the caps. */
export class PreauthTracker {
  readonly #all = new Set<Tracked>();
  readonly #byKey = new Map<string, Set<Tracked>>();

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerKey: number,
    private readonly onShed: (reason: ShedReason, key: string) => void,
  ) {}

  get size(): number {
    return this.#all.size;
  }

  /** A new connection from `key`; the oldest ones at a cap are dropped (`drop` called) first. */
  admit(key: string, drop: () => void): PreauthEntry {
    const mine = this.#byKey.get(key);
    while (mine && mine.size >= this.maxPerKey) this.#evict(mine.values().next().value!, 'preauthPerAddress');
    while (this.#all.size >= this.maxTotal) this.#evict(this.#all.values().next().value!, 'preauthTotal');
    const entry: Tracked = { key, evicted: false, drop };
    this.#all.add(entry);
    let set = this.#byKey.get(key);
    if (!set) this.#byKey.set(key, (set = new Set()));
    set.add(entry);
    return entry;
  }

  /** It authenticated, failed or closed: no longer counted. Idempotent. */
  done(entry: PreauthEntry): void {
    const e = entry as Tracked;
    if (!this.#all.delete(e)) return;
    const set = this.#byKey.get(e.key);
    set?.delete(e);
    if (set?.size === 0) this.#byKey.delete(e.key);
  }

  #evict(entry: Tracked, reason: ShedReason): void {
    entry.evicted = true;
    this.done(entry);
    this.onShed(reason, entry.key);
    entry.drop();
  }
}

/**
 * Counts events by reason and address, and says so in one warning per interval: how many for
 * each reason, from how many addresses, and the busiest address. A flood must not flood the log.
 */
export class CountLog<R extends string> {
  #counts: Partial<Record<R, number>> = {};
  #total = 0;
  #addresses = new Map<string, number>();
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly logger: Logger,
    private readonly message: string,
    private readonly intervalMs = SHED_LOG_INTERVAL_MS,
    /** Leave out a line that would count a single event (the caller logged it on its own). */
    private readonly skipSingle = false,
  ) {}

  /** Counts one; true when it is the first of an interval (the caller may log it on its own). */
  count(reason: R, address: string): boolean {
    this.#counts[reason] = (this.#counts[reason] ?? 0) + 1;
    this.#total++;
    // Bounded: past 10,000 addresses only the counts grow.
    if (this.#addresses.has(address) || this.#addresses.size < 10_000)
      this.#addresses.set(address, (this.#addresses.get(address) ?? 0) + 1);
    if (this.#timer) return false;
    this.#timer = setTimeout(() => this.flush(), this.intervalMs);
    this.#timer.unref();
    return true;
  }

  /** Logs what was counted since the last line (nothing if nothing was). */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const counts = this.#counts;
    const addresses = this.#addresses;
    const total = this.#total;
    this.#counts = {};
    this.#addresses = new Map();
    this.#total = 0;
    if (total === 0 || (this.skipSingle && total === 1)) return;
    let top = '';
    let most = 0;
    for (const [a, n] of addresses)
      if (n > most) {
        top = a;
        most = n;
      }
    this.logger.warn(`${this.message} (counts over the last ${this.intervalMs / 1000} s at most)`, {
      ...counts,
      addresses: addresses.size >= 10_000 ? '10000+' : addresses.size,
      busiest: top,
      fromBusiest: most,
    });
  }
}

/** Connections shed before authentication, counted (see CountLog). */
export class ShedLog extends CountLog<ShedReason> {
  constructor(logger: Logger, intervalMs = SHED_LOG_INTERVAL_MS) {
    super(logger, 'shedding connections', intervalMs);
  }
}

/** Why a handshake failed (the fields of the aggregated log line). */
export type RefusalReason = 'wrongSecret' | 'rateLimited' | 'version' | 'malformed' | 'timeout' | 'closed';

/**
 * Failed handshakes: the first of each interval is logged on its own (a misconfigured client
 * is seen at once, with its address), the rest as counts in one line per interval.
 */
export class RefusalLog extends CountLog<RefusalReason> {
  constructor(logger: Logger, intervalMs = SHED_LOG_INTERVAL_MS) {
    super(logger, 'failed handshakes', intervalMs, true);
  }
}

/** Answers an HTTP request on a raw socket and destroys it: nothing more is read or kept. */
export function refuseUpgrade(
  socket: Socket,
  status: number,
  text: string,
  headers: Record<string, string | number> = {},
): void {
  if (socket.destroyed) return;
  let head = `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  socket.on('error', () => {});
  // end(): the answer is handed to the kernel at once (a fresh connection's buffer is empty),
  // then the socket is destroyed, not left to a close handshake.
  socket.end(`${head}\r\n`, () => socket.destroy());
  if (socket.writableLength > 0) socket.destroy(); // could not be handed over at once: not waited for
}
