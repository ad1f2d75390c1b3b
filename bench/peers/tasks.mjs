// The benchmark's job functions, in plain JavaScript: the peers' workers import them, pp-node ships them
// as source (bench/tasks.ts re-exports them with types).

import crypto from 'node:crypto';

export function inc(x) {
  return x + 1;
}

export function isprime(n) {
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

export function sum_primes(n) {
  let sum = 0;
  for (let x = 2; x < n; x++) {
    if (isprime(x)) {
      sum += x;
    }
  }
  return sum;
}

export function md5test(hash, start, end) {
  for (let x = start; x < end; x++) {
    if (crypto.createHash('md5').update(String(x)).digest('hex') === hash) {
      return x;
    }
  }
  return null;
}

export function sumArray(a) {
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    sum += a[i];
  }
  return sum;
}
