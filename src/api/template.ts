import type { RefArgs } from '../protocol/ref.ts';
import type { Job } from './job.ts';
import type { Server, SubmitOptions } from './server.ts';

/**
 * pp's `Template`: a function and its options fixed once, submitted many times with
 * different arguments.
 *
 * ```ts
 * const t = new Template(server, sumPrimes, { deps: [isPrime] });
 * const jobs = inputs.map((n) => t.submit(n));
 * ```
 */
export class Template<A extends unknown[], R> {
  constructor(
    readonly server: Server,
    readonly fn: ((...args: A) => R) | readonly [object, string],
    readonly options: SubmitOptions<Awaited<R>> = {},
  ) {}

  /** Submits one job with these arguments. */
  submit(...args: RefArgs<A>): Job<Awaited<R>> {
    return this.server.submit(this.fn, args, this.options);
  }
}
