/**
 * A FIFO queue with O(1) push and shift and a cheap "put these back at the front" — what
 * the job queue needs when a node hands unstarted jobs back. Consumed slots are cleared at
 * once so that finished jobs (and their argument buffers) are not kept alive by the queue.
 * The job server's queue, a {@link JobQueue} for the dispatcher (dispatcher.ts).
 */
import type { JobQueue } from './dispatcher.ts';

export class Fifo<T> implements JobQueue<T> {
  private items: Array<T | undefined> = [];
  private head = 0;
  /**
   * Take from the newest end (the last pushed) instead of the oldest: the job server runs the
   * last jobs of a burst whose run times grow with submission order longest first
   * (policy.ts takeNewestFirst). Jobs put back ({@link unshiftAll}) are still taken first.
   */
  newestFirst = false;

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** The next item, without removing it. */
  peek(): T | undefined {
    return this.newestFirst ? this.newest() : this.items[this.head];
  }

  /** The item pushed first of those queued (put back ones count as first), whichever end is taken. */
  oldest(): T | undefined {
    return this.items[this.head];
  }

  /** The item pushed last of those queued, whichever end is taken. */
  newest(): T | undefined {
    return this.head < this.items.length ? this.items[this.items.length - 1] : undefined;
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    if (this.newestFirst) {
      const item = this.items.pop();
      if (this.head === this.items.length) this.clear();
      return item;
    }
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Puts `items` back at the front (the end taken next), keeping their order. */
  unshiftAll(items: readonly T[]): void {
    if (items.length === 0) return;
    if (this.newestFirst) {
      for (let i = items.length - 1; i >= 0; i--) this.items.push(items[i]);
      return;
    }
    if (items.length <= this.head) {
      this.head -= items.length;
      for (let i = 0; i < items.length; i++) this.items[this.head + i] = items[i];
      return;
    }
    this.items = [...items, ...this.items.slice(this.head)];
    this.head = 0;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}
