/**
 * A submitted job: await it for the result. It is a thenable rather than a Promise so that
 * a job nobody awaits (callback style) never raises an unhandled rejection; the promise is
 * made only when someone asks for the outcome.
 */

/** Where a job stands. */
export type JobState = 'pending' | 'fulfilled' | 'rejected';

export class Job<T = unknown> implements PromiseLike<T> {
  /** Unique per server, in submission order. */
  readonly id: number;
  /** The display name of the job's function ('sum_primes', 'PartialSum.t_log'). */
  readonly name: string;
  /** The group given at submit ('default' otherwise), for `server.wait(group)`. */
  readonly group: string;

  #state: JobState = 'pending';
  #value: unknown;
  #promise: Promise<T> | null = null;
  #resolve: ((v: T) => void) | null = null;
  #reject: ((e: unknown) => void) | null = null;
  readonly #cancel: (job: Job<T>, reason: unknown) => void;

  /** @internal Jobs are made by `Server.submit`. */
  constructor(id: number, name: string, group: string, cancel: (job: Job<T>, reason: unknown) => void) {
    this.id = id;
    this.name = name;
    this.group = group;
    this.#cancel = cancel;
  }

  /** True once the job has a result or an error. */
  get finished(): boolean {
    return this.#state !== 'pending';
  }

  /** 'pending', 'fulfilled' or 'rejected'. */
  get state(): JobState {
    return this.#state;
  }

  /** True once someone asked for the outcome (then/catch/result). */
  get observed(): boolean {
    return this.#promise !== null;
  }

  /** The outcome as a real Promise. */
  result(): Promise<T> {
    if (!this.#promise) {
      if (this.#state === 'fulfilled') this.#promise = Promise.resolve(this.#value as T);
      else if (this.#state === 'rejected') this.#promise = Promise.reject(this.#value);
      else {
        this.#promise = new Promise<T>((resolve, reject) => {
          this.#resolve = resolve;
          this.#reject = reject;
        });
      }
    }
    return this.#promise;
  }

  // biome-ignore lint/suspicious/noThenProperty: a Job is meant to be awaited
  then<R1 = T, R2 = never>(
    onFulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.result().then(onFulfilled, onRejected);
  }

  catch<R = never>(onRejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<T | R> {
    return this.result().catch(onRejected);
  }

  finally(onFinally?: (() => void) | null): Promise<T> {
    return this.result().finally(onFinally);
  }

  /** Cancels the job: a queued job is dropped, a running one is stopped (its worker replaced). */
  cancel(reason?: unknown): void {
    if (this.#state === 'pending') this.#cancel(this, reason);
  }

  /** @internal */
  _settle(ok: boolean, value: unknown): void {
    if (this.#state !== 'pending') return;
    this.#state = ok ? 'fulfilled' : 'rejected';
    this.#value = value;
    if (ok) this.#resolve?.(value as T);
    else this.#reject?.(value);
    this.#resolve = this.#reject = null;
  }

  get [Symbol.toStringTag](): string {
    return `Job #${this.id} ${this.name} (${this.#state})`;
  }
}
