/**
 * Scheduling policy, kept pure so it can be reasoned about and tested alone: given how many
 * jobs wait and how many each node wants right now, decide how many each node gets.
 */

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
