// What placement could reach at best on the scheduling benchmark's job lists, knowing every
// job's run time in advance and paying nothing per job (no links, no trips): the yardstick
// behind the README's "even knowing every job's run time" and bench/NOTES.md.
//
//   node --import tsx bench/list-schedules.ts
//
// For jobs growing from 5 to 200 ms over n jobs on a fast node and a 3x slower one (2 CPUs
// each), makespan over the lower bound (work over capacity, or the longest job) of:
// - in order, earliest finish: each job in submission order to the CPU that would finish it
//   first (clairvoyant list scheduling: the best a placement in submission order does here);
// - in order, first free CPU: each job to the CPU that frees first (greedy, no knowledge);
// - longest first, earliest finish (LPT) and longest first, first free CPU.

const SPEEDS = [1, 1, 3, 3]; // ms per ms of work, per CPU

function schedule(jobs: readonly number[], earliestFinish: boolean): number {
  const free = SPEEDS.map(() => 0);
  for (const d of jobs) {
    let best = 0;
    for (let c = 1; c < free.length; c++) {
      const a = earliestFinish ? free[c]! + d * SPEEDS[c]! : free[c]!;
      const b = earliestFinish ? free[best]! + d * SPEEDS[best]! : free[best]!;
      if (a < b) best = c;
    }
    free[best]! += d * SPEEDS[best]!;
  }
  return Math.max(...free);
}

function bound(jobs: readonly number[]): number {
  const capacity = SPEEDS.reduce((s, x) => s + 1 / x, 0);
  return Math.max(jobs.reduce((a, b) => a + b, 0) / capacity, Math.max(...jobs) * Math.min(...SPEEDS));
}

const rows: string[][] = [
  ['jobs', 'in order, EFT', 'in order, free CPU', 'longest first, EFT', 'longest first, free CPU'],
];
for (const n of [40, 50, 55, 60, 65, 70, 80, 100]) {
  const jobs = Array.from({ length: n }, (_, i) => Math.round(5 + (195 * i) / (n - 1)));
  const longest = [...jobs].reverse();
  const b = bound(jobs);
  rows.push([
    String(n),
    ...[schedule(jobs, true), schedule(jobs, false), schedule(longest, true), schedule(longest, false)].map(
      (m) => (m / b).toFixed(3),
    ),
  ]);
}
for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(5) : c.padStart(24))).join(''));
