// Types of tasks.mjs, for bench/tasks.ts.
export function inc(x: number): number;
export function isprime(n: number): boolean;
export function sum_primes(n: number): number;
export function md5test(hash: string, start: number, end: number): number | null;
export function sumArray(a: Float64Array): number;
