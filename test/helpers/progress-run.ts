// Runs jobs and waits with `wait({ progress: true })`, for test/progress-bar.test.ts: the bar
// goes to stderr; stdout says how long the wait took.
import { Server } from '../../src/index.ts';

function work(i: number): number {
  const end = Date.now() + 20;
  while (Date.now() < end);
  if (i % 10 === 0) throw new Error(`job ${i} fails on purpose`);
  return i;
}

const n = Number(process.argv[2] ?? 60);
const server = new Server({ ncpus: 2 });
const jobs = Array.from({ length: n }, (_, i) => server.submit(work, [i]));
for (const job of jobs) job.catch(() => {});
const t0 = performance.now();
await server.wait({ progress: true });
console.log(`waited ${Math.round(performance.now() - t0)} ms`);
await server.close();
