// The benchmark's job functions, as a pp-node user writes them (and as the serial baselines run them).
// bench/peers/tasks.mjs holds the same code, in plain JavaScript, for the piscina and workerpool workers.

import crypto from 'node:crypto';

/** W1: the smallest job there is. */
export function inc(x: number): number {
  return x + 1;
}

/** pp's isprime (examples/sum_primes). */
export function isprime(n: number): boolean {
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

/** W2x: pp's sum_primes — depends on isprime. */
export function sum_primes(n: number): number {
  let sum = 0;
  for (let x = 2; x < n; x++) {
    if (isprime(x)) {
      sum += x;
    }
  }
  return sum;
}

/** W3: pp's md5test (examples/reverse_md5) — uses the `crypto` module. */
export function md5test(hash: string, start: number, end: number): number | null {
  for (let x = start; x < end; x++) {
    if (crypto.createHash('md5').update(String(x)).digest('hex') === hash) {
      return x;
    }
  }
  return null;
}

/** W4: sums a (copied) Float64Array. */
export function sumArray(a: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    sum += a[i]!;
  }
  return sum;
}
