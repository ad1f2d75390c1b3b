/**
 * Queues of several owners (the clients of a node) served round robin, so that one client's
 * 10,000 queued jobs cannot starve another's 10: each turn takes one job from each owner
 * that has any, in rotation. A {@link JobQueue} for the dispatcher (dispatcher.ts).
 */
import type { JobQueue } from './dispatcher.ts';
import { Fifo } from './fifo.ts';

export class FairQueue<T> implements JobQueue<T> {
  private readonly queues = new Map<string, Fifo<T>>();
  /** Owners with queued items, in rotation order; `ring[cursor]` is served next. */
  private ring: string[] = [];
  private cursor = 0;
  private count = 0;

  /** @param ownerOf The owner of an item (the same for an item every time). */
  constructor(private readonly ownerOf: (item: T) => string) {}

  get size(): number {
    return this.count;
  }

  /** Queues an item at the back of its owner's line. */
  push(item: T): void {
    const owner = this.ownerOf(item);
    let q = this.queues.get(owner);
    if (!q) {
      q = new Fifo<T>();
      this.queues.set(owner, q);
      this.ring.push(owner);
    }
    q.push(item);
    this.count++;
  }

  /**
   * Puts items back at the front of their owners' lines, keeping their order. An owner that
   * had nothing left queued is served next, as if its items had never been taken.
   */
  unshiftAll(items: readonly T[]): void {
    if (items.length === 0) return;
    const byOwner = new Map<string, T[]>();
    for (const item of items) {
      const owner = this.ownerOf(item);
      const list = byOwner.get(owner);
      if (list) list.push(item);
      else byOwner.set(owner, [item]);
    }
    // Owners back in the ring go in at the cursor, in the order their first item came.
    const back: string[] = [];
    for (const [owner, list] of byOwner) {
      let q = this.queues.get(owner);
      if (!q) {
        q = new Fifo<T>();
        this.queues.set(owner, q);
        back.push(owner);
      }
      q.unshiftAll(list);
      this.count += list.length;
    }
    if (back.length > 0) {
      if (this.cursor >= this.ring.length) this.cursor = 0;
      this.ring.splice(this.cursor, 0, ...back);
    }
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

  /** The item that {@link shift} would return next, without removing it. */
  peek(): T | undefined {
    if (this.ring.length === 0) return undefined;
    if (this.cursor >= this.ring.length) this.cursor = 0;
    return this.queues.get(this.ring[this.cursor]!)!.peek();
  }

  /** Takes the next item: the first of the owner whose turn it is; the turn passes on. */
  shift(): T | undefined {
    if (this.ring.length === 0) return undefined;
    if (this.cursor >= this.ring.length) this.cursor = 0;
    const owner = this.ring[this.cursor]!;
    const q = this.queues.get(owner)!;
    const item = q.shift()!;
    this.count--;
    if (q.size === 0) this.drop(owner);
    else this.cursor++;
    return item;
  }

  private drop(owner: string): void {
    this.queues.delete(owner);
    const i = this.ring.indexOf(owner);
    if (i < 0) return;
    this.ring.splice(i, 1);
    if (this.cursor > i) this.cursor--;
  }
}
