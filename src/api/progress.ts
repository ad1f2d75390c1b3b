/** Counting jobs for `server.wait()` and progress reports, per group and over all jobs. */

/**
 * How far a burst of work is: the jobs submitted since their group (or the whole server)
 * last had nothing pending, so that a second batch starts again from zero.
 */
export interface Progress {
  /** Jobs submitted in this burst. */
  total: number;
  /** Of those, finished, with a result or an error. */
  finished: number;
  /** Of the finished, those that failed. */
  failed: number;
  /** Submitted and not finished: queued or running. */
  pending: number;
}

/** Options of `server.wait()`. */
export interface WaitOptions {
  /** Called at once, every `progressEveryMs` while waiting, and once more at the end. */
  onProgress?: (progress: Progress) => void;
  /** Milliseconds between progress reports; default 1000. */
  progressEveryMs?: number;
  /**
   * Draw a one-line progress bar on stderr while waiting (done/total, failures, jobs/s, ETA,
   * nodes in use), when stderr is a terminal; nothing otherwise.
   */
  progress?: boolean;
}

/** The jobs of one group, or of the whole server. */
export class Tally {
  pending = 0;
  total = 0;
  finished = 0;
  failed = 0;
  /** Resolved, and emptied, when nothing is pending anymore. */
  waiters: Array<() => void> = [];

  submitted(): void {
    if (this.pending === 0) this.total = this.finished = this.failed = 0; // a new burst
    this.pending++;
    this.total++;
  }

  /** Counts a finished job; wakes the waiters when it was the last one. */
  settled(ok: boolean): void {
    this.finished++;
    if (!ok) this.failed++;
    if (--this.pending > 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once nothing is pending. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  progress(): Progress {
    return { total: this.total, finished: this.finished, failed: this.failed, pending: this.pending };
  }
}
