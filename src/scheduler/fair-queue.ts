/**
 * Queues of several owners (the clients of a node) served round robin, so that one client's
 * 10,000 queued jobs cannot starve another's 10: each turn takes one job from each owner
 * that has any, in rotation.
 */
import { Fifo } from './fifo.ts';

export class FairQueue<T> {
  private readonly queues = new Map<string, Fifo<T>>();
  /** Owners with queued items, in rotation order. */
  private ring: string[] = [];
  private cursor = 0;
  private count = 0;

  get size(): number {
    return this.count;
  }

  push(owner: string, item: T): void {
    this.queueOf(owner).push(item);
    this.count++;
  }

  /** Puts items back at the front of the owner's queue, keeping their order. */
  unshiftAll(owner: string, items: readonly T[]): void {
    if (items.length === 0) return;
    this.queueOf(owner).unshiftAll(items);
    this.count += items.length;
  }

  /** Removes and returns everything the owner has queued. */
  removeOwner(owner: string): T[] {
    const q = this.queues.get(owner);
    if (!q) return [];
    const items: T[] = [];
    for (let item = q.shift(); item !== undefined; item = q.shift()) items.push(item);
    this.count -= items.length;
    this.drop(owner);
    return items;
  }

  /** Removes one item wherever it is (linear; for cancellations). */
  remove(owner: string, match: (item: T) => boolean): T | undefined {
    let found = false;
    return this.removeAll(owner, (item) => !found && (found = match(item)))[0];
  }

  /** Removes every item of the owner that `match` picks, in one pass; returns them in queue order. */
  removeAll(owner: string, match: (item: T) => boolean): T[] {
    const q = this.queues.get(owner);
    if (!q) return [];
    const kept: T[] = [];
    const removed: T[] = [];
    for (let item = q.shift(); item !== undefined; item = q.shift())
      (match(item) ? removed : kept).push(item);
    q.unshiftAll(kept);
    this.count -= removed.length;
    if (q.size === 0) this.drop(owner);
    return removed;
  }

  /** The item that `take(1)` would return next, without removing it. */
  peek(): T | undefined {
    if (this.ring.length === 0) return undefined;
    return this.queues.get(this.ring[this.cursor % this.ring.length]!)!.peek();
  }

  /** Takes up to `n` items, one per owner per turn. */
  take(n: number): Array<[owner: string, item: T]> {
    const out: Array<[string, T]> = [];
    while (out.length < n && this.ring.length > 0) {
      if (this.cursor >= this.ring.length) this.cursor = 0;
      const owner = this.ring[this.cursor]!;
      const q = this.queues.get(owner)!;
      out.push([owner, q.shift()!]);
      this.count--;
      if (q.size === 0) this.drop(owner);
      else this.cursor++;
    }
    return out;
  }

  private queueOf(owner: string): Fifo<T> {
    let q = this.queues.get(owner);
    if (!q) {
      q = new Fifo<T>();
      this.queues.set(owner, q);
      this.ring.push(owner);
    }
    return q;
  }

  private drop(owner: string): void {
    this.queues.delete(owner);
    const i = this.ring.indexOf(owner);
    if (i < 0) return;
    this.ring.splice(i, 1);
    if (this.cursor > i) this.cursor--;
  }
}
