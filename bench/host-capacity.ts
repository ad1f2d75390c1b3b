// How many cores' worth of work this host really gives when all its cores are busy at once.
//
// On a VM the "2 cores" may be two threads of one physical core, or share it with noisy
// neighbours: two busy threads then run at less than twice the speed of one, and no pool can
// beat that while it lasts. It drifts, so it is measured once per round, for scale. No pool
// is involved: n threads, started up front, run the same fixed piece of work (sum_primes, as
// W2x) first one alone and then all at once.
// capacity = n × (time of one alone) / (time of all at once), about n on a quiet host.

import { Worker } from 'node:worker_threads';
import { isprime, sum_primes } from './tasks.ts';

const WORK = [1_000_000, 1_001_000, 1_002_000]; // about 0.4 s on this machine

// The thread's code is plain JavaScript, built from the very functions the workloads use.
const THREAD_CODE = `
const { parentPort } = require('node:worker_threads');
var __name = (f) => f; // tsx/esbuild may wrap the functions below in it
${isprime.toString()}
${sum_primes.toString()}
const work = ${JSON.stringify(WORK)};
parentPort.on('message', () => {
  const t0 = performance.now();
  let s = 0;
  for (const n of work) s += sum_primes(n);
  parentPort.postMessage({ ms: performance.now() - t0, s });
});
parentPort.postMessage('ready');
`;

function once(w: Worker): Promise<{ ms: number }> {
  return new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
}

/**
 * Measures the host's parallel capacity with `n` threads, `trials` times (alternating one
 * alone and all at once), and returns the median capacity.
 */
export async function hostCapacity(n: number, trials = 3): Promise<number> {
  const threads = Array.from({ length: n }, () => new Worker(THREAD_CODE, { eval: true }));
  try {
    await Promise.all(threads.map(once));
    const run = async (ws: Worker[]): Promise<number> => {
      const t0 = performance.now();
      const done = ws.map(once);
      for (const w of ws) w.postMessage('go');
      await Promise.all(done);
      return performance.now() - t0;
    };
    await run(threads); // warm every thread's JIT
    const capacities: number[] = [];
    for (let t = 0; t < trials; t++) {
      const alone = await run([threads[t % n]!]);
      const together = await run(threads);
      capacities.push((n * alone) / together);
    }
    capacities.sort((a, b) => a - b);
    return capacities[capacities.length >> 1]!;
  } finally {
    await Promise.all(threads.map((w) => w.terminate()));
  }
}
