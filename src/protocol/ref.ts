/**
 * A value stored once on every worker and node that needs it — Dask's `scatter`. Made by
 * `server.put(value)`; pass it as a job argument (top level) and the job receives the value.
 * Large inputs reused by many jobs then cross each pipe or network link once, not per job.
 */
export class Ref<T = unknown> {
  /** Random id, unique across clients, so nodes shared by several clients never mix values. */
  readonly id: string;
  /** Encoded size in bytes. */
  readonly bytes: number;
  /** @internal phantom type */
  declare readonly __value?: T;

  /** @internal Made by `Server.put`. */
  constructor(id: string, bytes: number) {
    this.id = id;
    this.bytes = bytes;
  }
}

/** Name under which `Ref` travels in every class registry. */
export const REF_CLASS: [string, Function] = ['pp-node:Ref', Ref];

/** Job arguments where each may be given as a Ref to a value of its type. */
export type RefArgs<A extends unknown[]> = { [K in keyof A]: A[K] | Ref<A[K]> };
