// Piscina worker: one named export per task (selected with `run(task, { name })`).
// Piscina passes a single task value, so multi-argument tasks arrive as an array.

import * as tasks from './tasks.mjs';

export function inc(x) {
  return tasks.inc(x);
}

export function sum_primes(n) {
  return tasks.sum_primes(n);
}

export function md5test([hash, start, end]) {
  return tasks.md5test(hash, start, end);
}

export function sumArray(a) {
  return tasks.sumArray(a);
}

export default inc;
