/**
 * Scheduling policy, kept pure so it can be reasoned about and tested alone: given how many
 * jobs wait and how many each node wants right now, decide how many each node gets.
 */

import type { ComputeNode } from '../nodes/compute-node.ts';

/**
 * Splits `queued` jobs over nodes that have `free[i]` free slots each. When there is less
 * work than room, the work is spread in proportion to the room (largest remainder), so that
 * no node idles while another holds a backlog; ties go to the earlier node.
 */
export function assignJobs(queued: number, free: readonly number[]): number[] {
  const counts = free.map(() => 0);
  let room = 0;
  for (const f of free) room += Math.max(0, f);
  if (queued <= 0 || room === 0) return counts;
  if (queued >= room) return free.map((f) => Math.max(0, f));
  const remainders: Array<[index: number, frac: number]> = [];
  let given = 0;
  free.forEach((f, i) => {
    if (f <= 0) return;
    const exact = (queued * f) / room;
    counts[i] = Math.floor(exact);
    given += counts[i]!;
    remainders.push([i, exact - counts[i]!]);
  });
  remainders.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  for (let k = 0; given < queued; k++, given++) counts[remainders[k % remainders.length]![0]]!++;
  return counts;
}

/**
 * Each node's room for `queued` jobs, by its own `freeSlots`. A node may hold jobs ahead of
 * its CPUs only with what the other nodes' plain room (waiting 0) leaves waiting: never
 * while another node has idle CPUs.
 */
export function roomOfNodes(
  nodes: readonly Pick<ComputeNode, 'freeSlots'>[],
  estimatedMs: number | undefined,
  queued: number,
): number[] {
  const plain = nodes.map((n) => n.freeSlots(estimatedMs, 0));
  let total = 0;
  for (const p of plain) total += p;
  return nodes.map((n, i) => n.freeSlots(estimatedMs, queued - (total - plain[i]!)));
}

/**
 * Splits `count` jobs over workers that hold `loads[i]` jobs and have room for `caps[i]`
 * more, as if each job in turn went to the least loaded worker with room (ties to the
 * earlier one): two idle workers get one job each before either gets a second. Gives out at
 * most the total room.
 */
export function levelFill(loads: readonly number[], caps: readonly number[], count: number): number[] {
  let room = 0;
  for (const c of caps) room += Math.max(0, c);
  const total = Math.min(count, room);
  const counts = loads.map(() => 0);
  if (!(total > 0 && Number.isSafeInteger(total))) return counts; // also NaN, Infinity
  // Jobs given if every worker is filled up to `level` (as far as its room allows).
  const upTo = (level: number): number => {
    let n = 0;
    for (let i = 0; i < loads.length; i++)
      n += Math.min(Math.max(0, caps[i]!), Math.max(0, level - loads[i]!));
    return n;
  };
  // The lowest level that takes them all: binary search from the least load up to the most
  // load plus all the jobs, which takes them all whatever the caps (and stays finite).
  let lo = Math.min(...loads);
  let hi = Math.max(...loads) + total;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (upTo(mid) >= total) hi = mid;
    else lo = mid + 1;
  }
  // Everyone up to the level below it, then the rest one each, earlier workers first.
  let given = 0;
  for (let i = 0; i < loads.length; i++) {
    counts[i] = Math.min(Math.max(0, caps[i]!), Math.max(0, lo - 1 - loads[i]!));
    given += counts[i]!;
  }
  for (let i = 0; i < loads.length && given < total; i++) {
    if (counts[i]! < caps[i]! && loads[i]! + counts[i]! === lo - 1) {
      counts[i]!++;
      given++;
    }
  }
  return counts;
}

/**
 * Running mean of a function's job durations, weighted toward recent jobs so that the
 * estimate follows a function whose cost changes with its arguments.
 */
export class DurationEstimate {
  private mean = 0;
  private n = 0;
  add(ms: number): void {
    this.n++;
    // Exact mean for the first jobs, then an exponential moving average.
    const weight = this.n < 20 ? 1 / this.n : 0.05;
    this.mean += (ms - this.mean) * weight;
  }
  get value(): number | undefined {
    return this.n === 0 ? undefined : this.mean;
  }
}
