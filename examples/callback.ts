// File: callback.ts
// A TypeScript port of Parallel Python's callback.py (author: Vitalii Vanovschi).
// Desc: This program demonstrates parallel computations with pp-node
// using callbacks.
// Program calculates the partial sum 1-1/2+1/3-1/4+1/5-1/6+...
// (in the limit it is ln(2))

import { Server } from 'pp-node';

/** Class for callbacks */
class Sum {
  value = 0.0;

  /** the callback function */
  add(value: number): void {
    // pp needed a lock here because += is not atomic across threads;
    // pp-node runs callbacks on the event loop, one at a time, so no lock is needed
    this.value += value;
  }
}

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

console.log(`Usage: npx tsx examples/callback.ts [ncpus]
    [ncpus] - the number of workers to run in parallel,
    if omitted it will be set to the number of processors in the system
`);

const start = 1;
const end = 20000000;

// Divide the task into 128 subtasks
const parts = 128;
const step = Math.trunc((end - start) / parts + 1);

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

// Create an instance of callback class
const sum = new Sum();

for (let index = 0; index < parts; index++) {
  const starti = start + index * step;
  const endi = Math.min(start + (index + 1) * step, end);
  // Submit a job which will calculate partial sum
  // part_sum - the function
  // [starti, endi] - list with arguments for part_sum
  // callback: sum.add - callback function (bound to sum, like Python's bound method)
  server.submit(part_sum, [starti, endi], { callback: sum.add.bind(sum) });
}

// wait for jobs in all groups to finish (with a progress bar on stderr when it is a terminal)
await server.wait({ progress: true });

// Print the partial sum
console.log(`Partial sum is ${sum.value} | diff = ${Math.log(2) - sum.value}`);

server.printStats();

await server.close();
