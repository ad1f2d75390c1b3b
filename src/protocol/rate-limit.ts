/**
 * Per-peer limit on failed handshakes: after `maxFailures` failures within `windowMs`, the peer is banned
 * for `banMs`. Pure (the clock is injected) and bounded: at most `maxTracked` peers are remembered, the
 * least recently failing ones are forgotten first.
 *
 * The peer key is the caller's choice. A plain IP address is a weak key for IPv6, where one host holds
 * a whole /64: the daemon passes addressKey() (daemon/admission.ts), which keys IPv6 by its /64.
 */

import { PPError } from '../errors.ts';

export interface FailureLimiterOptions {
  /** Failures within windowMs that trigger a ban (default 5). */
  maxFailures?: number;
  /** Sliding window over which failures are counted (default 60 s). */
  windowMs?: number;
  /** How long a ban lasts (default 60 s). */
  banMs?: number;
  /** Clock in ms (default Date.now). */
  now?: () => number;
  /** Most peers remembered at once, to bound memory under a flood of addresses (default 10 000). */
  maxTracked?: number;
}

interface Entry {
  /** Times of recent failures, oldest first; never more than maxFailures. */
  failures: number[];
  bannedUntil: number;
}

function positive(name: string, value: number, integer: boolean): number {
  if (!(value > 0) || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new PPError(
      `FailureLimiter: ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${value}`,
    );
  }
  return value;
}

export class FailureLimiter {
  readonly #maxFailures: number;
  readonly #windowMs: number;
  readonly #banMs: number;
  readonly #maxTracked: number;
  readonly #now: () => number;
  /** Insertion order = order of last failure, so the front holds the stalest peers. */
  readonly #entries = new Map<string, Entry>();

  constructor(opts: FailureLimiterOptions = {}) {
    this.#maxFailures = positive('maxFailures', opts.maxFailures ?? 5, true);
    this.#windowMs = positive('windowMs', opts.windowMs ?? 60_000, false);
    this.#banMs = positive('banMs', opts.banMs ?? 60_000, false);
    this.#maxTracked = positive('maxTracked', opts.maxTracked ?? 10_000, true);
    this.#now = opts.now ?? Date.now;
  }

  /** Number of peers currently remembered (for tests and metrics). */
  get size(): number {
    return this.#entries.size;
  }

  /** False while the peer is banned: the transport should refuse its handshake. */
  allowed(peer: string): boolean {
    const entry = this.#entries.get(peer);
    return !entry || entry.bannedUntil <= this.#now();
  }

  /** Records a failed (or abandoned) handshake from peer. */
  failed(peer: string): void {
    const now = this.#now();
    let entry = this.#entries.get(peer);
    if (entry) {
      // Re-insert so the map stays ordered by last failure.
      this.#entries.delete(peer);
    } else {
      entry = { failures: [], bannedUntil: 0 };
    }
    const since = now - this.#windowMs;
    while (entry.failures.length > 0 && entry.failures[0]! <= since) entry.failures.shift();
    entry.failures.push(now);
    if (entry.failures.length >= this.#maxFailures) {
      entry.bannedUntil = Math.max(entry.bannedUntil, now + this.#banMs);
      entry.failures = [];
    }
    this.#entries.set(peer, entry);
    this.#evict(now);
  }

  /** A successful handshake clears the peer's record. */
  succeeded(peer: string): void {
    this.#entries.delete(peer);
  }

  /** Milliseconds until the peer's ban ends; 0 when it is not banned. */
  retryAfterMs(peer: string): number {
    const entry = this.#entries.get(peer);
    return entry ? Math.max(0, entry.bannedUntil - this.#now()) : 0;
  }

  /** Drops stale peers from the front, and the stalest ones beyond maxTracked. */
  #evict(now: number): void {
    const since = now - this.#windowMs;
    for (const [peer, entry] of this.#entries) {
      const idle = entry.bannedUntil <= now && entry.failures.every((t) => t <= since);
      if (!idle && this.#entries.size <= this.#maxTracked) break;
      this.#entries.delete(peer);
    }
  }
}
