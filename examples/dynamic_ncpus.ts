// File: dynamic_ncpus.ts
// A TypeScript port of Parallel Python's dynamic_ncpus.py (author: Vitalii Vanovschi).
// Desc: This program demonstrates parallel computations with pp-node
// and dynamic cpu allocation feature.
// Program calculates the partial sum 1-1/2+1/3-1/4+1/5-1/6+...
// (in the limit it is ln(2))

import { Server } from 'pp-node';

/** Calculates partial sum */
function part_sum(start: number, end: number): number {
  let sum = 0;
  for (let x = start; x < end; x++) {
    if (x % 2 === 0) {
      sum -= 1.0 / x;
    } else {
      sum += 1.0 / x;
    }
  }
  return sum;
}

console.log('Usage: npx tsx examples/dynamic_ncpus.ts');
console.log('');

const start = 1;
const end = 20000000;

// Divide the task into 64 subtasks
const parts = 64;
const step = Math.trunc((end - start) / parts + 1);

// Create jobserver
const server = new Server();

// Execute the same task with different amount of active workers
// and measure the time
for (const ncpus of [1, 2, 4, 8, 16, 1]) {
  server.setNcpus(ncpus);
  const jobs = [];
  const startTime = performance.now();
  console.log(`Starting pp with ${server.getNcpus()} workers`);
  for (let index = 0; index < parts; index++) {
    const starti = start + index * step;
    const endi = Math.min(start + (index + 1) * step, end);
    // Submit a job which will calculate partial sum
    // part_sum - the function
    // [starti, endi] - list with arguments for part_sum
    // part_sum has no dependencies: no deps, modules or globals
    jobs.push(server.submit(part_sum, [starti, endi]));
  }

  // Show how far the jobs are (a progress bar on stderr, when it is a terminal)
  await server.wait({ progress: true });

  // Retrieve all the results and calculate their sum
  let partSum1 = 0;
  for (const value of await Promise.all(jobs)) {
    partSum1 += value;
  }
  // Print the partial sum
  console.log(`Partial sum is ${partSum1} | diff = ${Math.log(2) - partSum1}`);

  console.log(`Time elapsed:  ${(performance.now() - startTime) / 1000} s`);
  console.log('');
}
server.printStats();

await server.close();
