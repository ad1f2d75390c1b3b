// The benchmark's job functions. Every system runs the very same code: bench/peers/tasks.mjs,
// plain JavaScript that the peers' workers import and that pp-node ships as source (with
// `deps: [isprime]` and `modules: ['node:crypto']`, as a pp-node user would).

export { inc, isprime, md5test, sum_primes, sumArray } from './peers/tasks.mjs';
