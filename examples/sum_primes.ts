// File: sum_primes.ts
// A TypeScript port of Parallel Python's sum_primes.py (author: Vitalii Vanovschi).
// Desc: This program demonstrates parallel computations with pp-node.
// It calculates the sum of prime numbers below a given integer in parallel.

import { Server } from 'pp-node';

/** Returns true if n is prime and false otherwise */
function isprime(n: number): boolean {
  if (!Number.isInteger(n)) {
    throw new TypeError("argument passed to is_prime is not of 'int' type");
  }
  if (n < 2) {
    return false;
  }
  if (n === 2) {
    return true;
  }
  const max = Math.ceil(Math.sqrt(n));
  let i = 2;
  while (i <= max) {
    if (n % i === 0) {
      return false;
    }
    i += 1;
  }
  return true;
}

/** Calculates sum of all primes below given integer n */
function sum_primes(n: number): number {
  let sum = 0;
  for (let x = 2; x < n; x++) {
    if (isprime(x)) {
      sum += x;
    }
  }
  return sum;
}

console.log(`Usage: npx tsx examples/sum_primes.ts [ncpus]
    [ncpus] - the number of workers to run in parallel,
    if omitted it will be set to the number of processors in the system`);

// list of all parallel python servers to connect with
const ppservers: string[] = [];
// const ppservers = ['127.0.0.1:60000'];

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

// Submit a job of calculating sum_primes(100) for execution.
// sum_primes - the function
// [100] - list with arguments for sum_primes
// deps: [isprime] - functions on which function sum_primes depends
// (Math is a standard global, so no module has to be shipped for it.)
// Execution starts as soon as one of the workers will become available
const job1 = server.submit(sum_primes, [100], { deps: [isprime] });

// Retrieves the result calculated by job1
// The value of `await job1` is the same as sum_primes(100)
// If the job has not been finished yet, execution will
// wait here until result is available
const result = await job1;

console.log(`Sum of primes below 100 is ${result}`);

// The following submits 8 jobs and then retrieves the results
const inputs = [100000, 100100, 100200, 100300, 100400, 100500, 100600, 100700];
const jobs = inputs.map((input) => [input, server.submit(sum_primes, [input], { deps: [isprime] })] as const);

for (const [input, job] of jobs) {
  console.log(`Sum of primes below ${input} is ${await job}`);
}

server.printStats();

await server.close();
