/** Jobs per second over the last few seconds, from a counter sampled now and then (no per-job work). */

/** Seconds of history the rate is taken over. */
export const RATE_WINDOW_MS = 3000;

/**
 * Rate of a growing counter (jobs finished in a burst), from samples taken a few times a second.
 * A counter that goes down started a new burst: the history restarts from it.
 */
export class RateMeter {
  #times: number[] = [];
  #counts: number[] = [];

  /** Records `count` at `now` (ms) and returns the rate over the window, per second (0 until known). */
  sample(count: number, now: number): number {
    const times = this.#times;
    const counts = this.#counts;
    if (counts.length > 0 && count < counts[counts.length - 1]!) {
      times.length = 0;
      counts.length = 0;
    }
    times.push(now);
    counts.push(count);
    // Keep one sample at or before the window's start, so the rate spans the whole window.
    while (times.length > 2 && now - times[1]! >= RATE_WINDOW_MS) {
      times.shift();
      counts.shift();
    }
    const dt = now - times[0]!;
    return dt > 0 ? ((count - counts[0]!) * 1000) / dt : 0;
  }
}

/** Seconds left at `rate` jobs/s for `pending` jobs; undefined when it cannot be told. */
export function etaSeconds(pending: number, rate: number): number | undefined {
  if (pending === 0) return 0;
  return rate > 0 ? pending / rate : undefined;
}

/** `1:05:03`, `4:07`, `12s`: a duration for a progress line. */
export function formatSeconds(s: number | undefined): string {
  if (s === undefined || !Number.isFinite(s)) return '?';
  const t = Math.round(s);
  if (t < 60) return `${t}s`;
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = String(t % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}
