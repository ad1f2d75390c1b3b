// File: reverse_md5.ts
// A TypeScript port of Parallel Python's reverse_md5.py (author: Vitalii Vanovschi).
// Desc: This program demonstrates parallel computations with pp-node.
// It tries to reverse an md5 hash in parallel.

import crypto from 'node:crypto';
import { Server } from 'pp-node';

/**
 * Calculates md5 of the integers between 'start' and 'end' and
 * compares it with 'hash'
 */
function md5test(hash: string, start: number, end: number): number | null {
  for (let x = start; x < end; x++) {
    if (crypto.createHash('md5').update(String(x)).digest('hex') === hash) {
      return x;
    }
  }
  return null;
}

console.log(`Usage: npx tsx examples/reverse_md5.ts [ncpus]
    [ncpus] - the number of workers to run in parallel,
    if omitted it will be set to the number of processors in the system
`);

// list of all parallel python servers to connect with
// const ppservers = ['*']; // auto-discover
// const ppservers = ['10.0.0.1', '10.0.0.2']; // list of static IPs
const ppservers: string[] = [];

let server: Server;
if (process.argv.length > 2) {
  const ncpus = Number.parseInt(process.argv[2]!, 10);
  // Creates jobserver with ncpus workers
  server = new Server({ ncpus, ppservers });
} else {
  // Creates jobserver with automatically detected number of workers
  server = new Server({ ppservers });
}

console.log(`Starting pp with ${server.getNcpus()} workers`);

// Calculates md5 hash from the given number
const hash = crypto.createHash('md5').update('1829182').digest('hex');
console.log(`hash = ${hash}`);
// Now we will try to find the number with this hash value

const start = 1;
const end = 2000000;

// Since jobs are not equal in the execution time, division of the problem
// into a 128 of small subproblems leads to a better load balancing
const parts = 128;

const step = Math.trunc((end - start) / parts + 1);
const jobs = [];

for (let index = 0; index < parts; index++) {
  const starti = start + index * step;
  const endi = Math.min(start + (index + 1) * step, end);
  // Submit a job which will test if a number in the range starti-endi
  // has given md5 hash
  // md5test - the function
  // [hash, starti, endi] - list with arguments for md5test
  // modules: ['node:crypto'] - modules which must be imported before
  // md5test execution (bound in the worker as `crypto`)
  jobs.push(server.submit(md5test, [hash, starti, endi], { modules: ['node:crypto'] }));
}

// Retrieve results of all submitted jobs
let result: number | null = null;
for (const job of jobs) {
  result = await job;
  if (result) {
    break;
  }
}

// Print the results
if (result) {
  console.log(`Reverse md5 for ${hash} is ${result}`);
} else {
  console.log(`Reverse md5 for ${hash} has not been found`);
}

server.printStats();

// Properly finalize all tasks (not necessary)
await server.wait();
await server.close();
