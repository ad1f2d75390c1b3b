/**
 * How many handshakes a node answers, per host and in all: what bounds the secrets an attacker
 * can try online, and the CPU a flood of HELLOs costs. Pure (the clock is injected) and bounded.
 *
 * Every HELLO (the first message of a handshake, whatever it is) is counted when it arrives,
 * not when it fails: an attacker gets no answer faster than the limiter allows, however many
 * handshakes it keeps open at once. A handshake that succeeds gives its count back, so clients
 * that have the secret never use up anything.
 *
 * Counting is a leaky bucket per host: it holds `burst` HELLOs and empties at `perMinute`. A
 * HELLO that finds the bucket full is not refused but answered late, when the bucket has room
 * (slow down, not ban: the other users of a shared address, behind a NAT or on a multi-user
 * host, get in a little later instead of being locked out); when that would take more than
 * `maxWaitMs`, it is refused with the time to retry. A second bucket of the same kind counts
 * every host together (`globalBurst`, `globalPerMinute`): an attacker with many addresses gets
 * no more than that in all. Hosts that completed a handshake within `trustedMs` skip that one
 * (a LAN's clients keep connecting while someone floods the node from elsewhere).
 *
 * The caller chooses the key of a host: the node uses hostKey (daemon/admission.ts), one IPv4
 * address, all of 127.0.0.0/8, or one IPv6 /64.
 *
 * Memory: at most `maxTracked` hosts are remembered. A host whose bucket has emptied (and that
 * is not trusted) is the same as one never seen, and is forgotten first; a host with HELLOs in
 * its bucket is never forgotten to make room (so new addresses cannot erase what an attacker
 * owes): when every record holds some, a new host is not recorded and only the global bucket
 * applies to it.
 */

import { PPError } from '../errors.ts';

export interface HandshakeLimiterOptions {
  /** HELLOs one host may send at once before answers slow down (default 8, MAX_PREAUTH_PER_ADDRESS). */
  burst?: number;
  /** How fast a host's bucket empties: its HELLOs answered per minute in the long run (default 30). */
  perMinute?: number;
  /** HELLOs of all untrusted hosts together at once (default 64). */
  globalBurst?: number;
  /** All untrusted hosts together, per minute in the long run (default 120). */
  globalPerMinute?: number;
  /** Longest a HELLO is held before its answer; a longer wait is refused with a retry time (default 3 s). */
  maxWaitMs?: number;
  /** A host that completed a handshake skips the global bucket for this long (default 1 h). */
  trustedMs?: number;
  /** Most hosts remembered at once (default 10,000). */
  maxTracked?: number;
  /** Clock in ms (default Date.now). */
  now?: () => number;
}

/** What to do with a HELLO: answer it after `delayMs` (0: at once), or refuse it (`retryAfterMs`). */
export type HelloVerdict = { delayMs: number; retryAfterMs?: undefined } | { retryAfterMs: number };

interface Bucket {
  /** HELLOs in the bucket at time `at` (leaks continuously). */
  level: number;
  at: number;
}

interface Host extends Bucket {
  trustedUntil: number;
}

/** The defaults, for the README and the tests. */
export const LIMITER_DEFAULTS = {
  burst: 8,
  perMinute: 30,
  globalBurst: 64,
  globalPerMinute: 120,
  maxWaitMs: 3000,
  trustedMs: 3_600_000,
  maxTracked: 10_000,
} as const;

function positive(name: string, value: number, integer: boolean): number {
  if (!(value > 0) || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new PPError(
      `HandshakeLimiter: ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${value}`,
    );
  }
  return value;
}

export class HandshakeLimiter {
  readonly #burst: number;
  readonly #leakPerMs: number;
  readonly #globalBurst: number;
  readonly #globalLeakPerMs: number;
  readonly #maxWaitMs: number;
  readonly #trustedMs: number;
  readonly #maxTracked: number;
  readonly #now: () => number;
  /** Insertion order = order of last HELLO, so the front holds the stalest hosts. */
  readonly #hosts = new Map<string, Host>();
  readonly #global: Bucket = { level: 0, at: 0 };

  constructor(opts: HandshakeLimiterOptions = {}) {
    const d = LIMITER_DEFAULTS;
    this.#burst = positive('burst', opts.burst ?? d.burst, true);
    this.#leakPerMs = positive('perMinute', opts.perMinute ?? d.perMinute, false) / 60_000;
    this.#globalBurst = positive('globalBurst', opts.globalBurst ?? d.globalBurst, true);
    this.#globalLeakPerMs =
      positive('globalPerMinute', opts.globalPerMinute ?? d.globalPerMinute, false) / 60_000;
    this.#maxWaitMs = positive('maxWaitMs', opts.maxWaitMs ?? d.maxWaitMs, false);
    this.#trustedMs = positive('trustedMs', opts.trustedMs ?? d.trustedMs, false);
    this.#maxTracked = positive('maxTracked', opts.maxTracked ?? d.maxTracked, true);
    this.#now = opts.now ?? Date.now;
  }

  /** Hosts remembered right now (for tests and metrics). */
  get size(): number {
    return this.#hosts.size;
  }

  /** Longest a HELLO is held before it is refused instead. */
  get maxWaitMs(): number {
    return this.#maxWaitMs;
  }

  /**
   * How long a HELLO from `key` (a hostKey) would wait now, without counting it. Above
   * maxWaitMs the node refuses the connection at the upgrade, before any WebSocket exists.
   */
  waitMs(key: string): number {
    const now = this.#now();
    const host = this.#hosts.get(key);
    const own = host ? this.#wait(host, this.#burst, this.#leakPerMs, now) : 0;
    if (host && host.trustedUntil > now) return own;
    return Math.max(own, this.#wait(this.#global, this.#globalBurst, this.#globalLeakPerMs, now));
  }

  /** A HELLO from `key`: counted and answered after `delayMs`, or refused (not counted). */
  hello(key: string): HelloVerdict {
    const now = this.#now();
    let host = this.#hosts.get(key);
    if (host)
      this.#hosts.delete(key); // re-inserted below: the map stays ordered by last HELLO
    else host = { level: 0, at: now, trustedUntil: 0 };
    const trusted = host.trustedUntil > now;
    const wait = Math.max(
      this.#wait(host, this.#burst, this.#leakPerMs, now),
      trusted ? 0 : this.#wait(this.#global, this.#globalBurst, this.#globalLeakPerMs, now),
    );
    if (wait > this.#maxWaitMs) {
      if (host.level > 0 || host.trustedUntil > now) this.#hosts.set(key, host);
      return { retryAfterMs: Math.ceil(wait) };
    }
    host.level += 1;
    if (!trusted) this.#global.level += 1;
    this.#remember(key, host, now);
    return { delayMs: Math.ceil(wait) };
  }

  /** The handshake of a counted HELLO from `key` succeeded: its count is given back, and the host trusted. */
  succeeded(key: string): void {
    const now = this.#now();
    const host = this.#hosts.get(key);
    if (host) {
      this.#leak(host, this.#leakPerMs, now);
      host.level = Math.max(0, host.level - 1);
    }
    if (!host || host.trustedUntil <= now) {
      this.#leak(this.#global, this.#globalLeakPerMs, now);
      this.#global.level = Math.max(0, this.#global.level - 1);
    }
    const entry = host ?? { level: 0, at: now, trustedUntil: 0 };
    entry.trustedUntil = now + this.#trustedMs;
    this.#hosts.delete(key);
    this.#remember(key, entry, now);
  }

  #leak(b: Bucket, perMs: number, now: number): void {
    if (now > b.at) b.level = Math.max(0, b.level - (now - b.at) * perMs);
    b.at = now;
  }

  /** Milliseconds until the bucket has room for one more. */
  #wait(b: Bucket, burst: number, perMs: number, now: number): number {
    this.#leak(b, perMs, now);
    const over = b.level + 1 - burst;
    return over > 0 ? over / perMs : 0;
  }

  /** Records a host, making room by forgetting idle hosts (never one that holds HELLOs). */
  #remember(key: string, host: Host, now: number): void {
    if (this.#hosts.size >= this.#maxTracked) {
      for (const [k, h] of this.#hosts) {
        if (this.#hosts.size < this.#maxTracked) break;
        this.#leak(h, this.#leakPerMs, now);
        if (h.level === 0 && h.trustedUntil <= now) this.#hosts.delete(k);
      }
      if (this.#hosts.size >= this.#maxTracked) {
        // Everyone remembered holds HELLOs: a trusted idle one can go (it only loses its trust)…
        for (const [k, h] of this.#hosts)
          if (h.level === 0) {
            this.#hosts.delete(k);
            break;
          }
      }
      // …else this host is not recorded: the global bucket (already counted) bounds it.
      if (this.#hosts.size >= this.#maxTracked) return;
    }
    this.#hosts.set(key, host);
  }
}
