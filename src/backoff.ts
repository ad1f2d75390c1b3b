/**
 * Waits that double after each failure, between a first and a largest wait: how a remote
 * node reconnects (nodes/remote-node.ts) and how the mDNS link reopens its socket
 * (discovery/mdns.ts).
 */
export class Backoff {
  /** The last wait given; 0 before the first one and after {@link reset}. */
  #ms = 0;

  /**
   * @param firstMs the first wait (capped by `maxMs`)
   * @param maxMs the largest wait
   * @param jitter each wait is spread by ± this fraction (0.25: from 0.75x to 1.25x), so that
   *   many peers failing together do not retry together; 0 for none
   */
  constructor(
    readonly firstMs: number,
    readonly maxMs: number,
    readonly jitter = 0,
  ) {}

  /** The wait before the next try: `firstMs`, then twice the previous wait, at most `maxMs`. */
  next(): number {
    this.#ms = Math.min(this.maxMs, this.#ms ? this.#ms * 2 : this.firstMs);
    return this.jitter ? this.#ms * (1 - this.jitter + Math.random() * 2 * this.jitter) : this.#ms;
  }

  /** The next wait is at least `ms` (at most `maxMs`), and the following ones grow from there. */
  atLeast(ms: number): void {
    this.#ms = Math.max(this.#ms, ms / 2);
  }

  /** Starts over: the next wait is `firstMs` again. */
  reset(): void {
    this.#ms = 0;
  }
}
