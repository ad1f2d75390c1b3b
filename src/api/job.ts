/**
 * A submitted job: await it for the result. It is a Promise, with the job's facts and
 * `cancel()` on top, whose `constructor` is Promise itself: then `await job` and
 * `Promise.all(jobs)` use the job as it is (a thenable, or a Promise subclass, gets wrapped
 * in a new promise through an extra microtask: about a tenth of a tiny job's cost here).
 * A job nobody awaits (callback style) never raises an unhandled rejection: a failed job
 * that no one observed is marked handled as it fails.
 */

/** Where a job stands. */
export type JobState = 'pending' | 'fulfilled' | 'rejected';

const noop = (): void => {};

// One executor for every job, which leaves the settling functions here for the constructor
// to take: an executor closure per job would cost a function and a context each.
const captured: { resolve: (v: unknown) => void; reject: (e: unknown) => void } = {
  resolve: noop,
  reject: noop,
};
function captureSettlers(resolve: (v: any) => void, reject: (e: unknown) => void): void {
  captured.resolve = resolve;
  captured.reject = reject;
}

/** @internal Whoever answers for a job: the server's record of it. */
export interface JobOwner {
  cancel(reason: unknown): void;
}
const NO_OWNER: JobOwner = { cancel: noop };

export class Job<T = unknown> extends Promise<T> {
  /** Promises derived from a job (then, catch, finally) are plain Promises. */
  static override get [Symbol.species](): PromiseConstructor {
    return Promise;
  }

  /** Unique per server, in submission order. */
  readonly id: number;
  /** The display name of the job's function ('sum_primes', 'PartialSum.t_log'). */
  readonly name: string;
  /** The group given at submit ('default' otherwise), for `server.wait(group)`. */
  readonly group: string;

  #state: JobState = 'pending';
  #observed = false;
  readonly #resolve: (v: T) => void;
  readonly #reject: (e: unknown) => void;
  /** Let go once settled: the owner holds the job's arguments, which a kept Job must not keep alive. */
  #owner: JobOwner;

  /** @internal Jobs are made by `Server.submit`. */
  constructor(id: number, name: string, group: string, owner: JobOwner) {
    super(captureSettlers);
    this.#resolve = captured.resolve as (v: T) => void;
    this.#reject = captured.reject;
    captured.resolve = captured.reject = noop; // holding them would keep this job alive
    this.id = id;
    this.name = name;
    this.group = group;
    this.#owner = owner;
  }

  /** True once the job has a result or an error. */
  get finished(): boolean {
    return this.#state !== 'pending';
  }

  /** 'pending', 'fulfilled' or 'rejected'. */
  get state(): JobState {
    return this.#state;
  }

  /**
   * True once someone asked for the outcome through then/catch/finally/result() (which
   * Promise.all and friends call). A bare `await job` is not seen: the engine awaits a
   * Promise without calling its `then`.
   */
  get observed(): boolean {
    return this.#observed;
  }

  /** The outcome as a Promise (the job itself). */
  result(): Promise<T> {
    this.#observed = true;
    return this;
  }

  // biome-ignore lint/suspicious/noThenProperty: a Job is meant to be awaited
  override then<R1 = T, R2 = never>(
    onFulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    this.#observed = true;
    return super.then(onFulfilled, onRejected);
  }

  /**
   * Cancels the job: it rejects at once with an AbortError (a JobCancelledError) whose `cause`
   * is `reason`, whatever the reason (also an Error: then it is the cause). A queued job is dropped, a running
   * one is stopped (its worker replaced). A job already sent to a worker, behind others, is
   * dropped there unless it starts within about a millisecond (the worker reads its messages
   * between jobs, at least once per millisecond of work); its outcome is then ignored.
   */
  cancel(reason?: unknown): void {
    if (this.#state === 'pending') this.#owner.cancel(reason);
  }

  /** @internal */
  _settle(ok: boolean, value: unknown): void {
    if (this.#state !== 'pending') return;
    this.#state = ok ? 'fulfilled' : 'rejected';
    this.#owner = NO_OWNER;
    if (ok) {
      this.#resolve(value as T);
      return;
    }
    // Not through this.then: that would count as observing the job.
    if (!this.#observed) super.then(undefined, noop);
    this.#reject(value);
  }

  override get [Symbol.toStringTag](): string {
    return `Job #${this.id} ${this.name} (${this.#state})`;
  }
}

// See the class comment: `job.constructor === Promise` lets the engine take its fast paths.
Object.defineProperty(Job.prototype, 'constructor', { value: Promise, writable: true, configurable: true });
