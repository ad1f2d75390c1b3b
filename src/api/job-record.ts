/**
 * What the server keeps per function and per job. A node gets the job record itself as its
 * {@link DispatchJob} and reports back with it, so a result finds its job without a lookup.
 * (A Map from id to record grew and shrank its hash table with every burst of tiny jobs:
 * about 250 bytes of garbage per job, a tenth of all the main thread allocated for one.)
 */
import type { FunctionBundle } from '../functions/bundle.ts';
import type { ComputeNode, DispatchJob, RefData } from '../nodes/compute-node.ts';
import type { JobArgs } from '../nodes/job-args.ts';
import type { ClassRegistry } from '../protocol/codec.ts';
import type { FunctionDefinition } from '../protocol/messages.ts';
import type { DurationEstimate } from '../scheduler/policy.ts';
import type { RunTimes } from '../scheduler/run-times.ts';
import { Job, type JobOwner } from './job.ts';
import type { FunctionModules } from './modules.ts';
import type { Tally } from './progress.ts';

/** One function as this server knows it: made at its first submit, shared by its jobs. */
export class FunctionEntry {
  #definition: FunctionDefinition | undefined = undefined;

  constructor(
    readonly bundle: FunctionBundle,
    /** Classes its arguments and results may carry. */
    readonly registry: ClassRegistry,
    /** Its measured run time (shared by every entry of the same code). */
    readonly estimate: DurationEstimate,
    /** How its run times spread and grow (shared likewise). */
    readonly runTimes: RunTimes,
    /** The packs its modules travel as (api/modules.ts), or null when none does. */
    readonly modules: FunctionModules | null = null,
  ) {
    this.needsRuntime = modules?.needsRuntime;
  }

  /** Only nodes with this runtimeKey can run its jobs (a native addon), if set. */
  readonly needsRuntime: string | undefined;

  /** What a worker or node needs to compile it; built once, when the first one lacks it. */
  definition(): FunctionDefinition {
    const b = this.bundle;
    this.#definition ??= {
      hash: b.hash,
      name: b.name,
      code: b.code,
      bindings: b.bindings,
      modules: b.modules,
      globals: b.globals,
      ...(this.modules ? { packages: this.modules.packages } : {}),
    };
    return this.#definition;
  }
}

/** How a record asks its server to cancel its job. */
export interface JobHost {
  cancel(rec: JobRecord, reason: unknown): void;
}

/**
 * A submitted job as the server tracks it, from submit until it is settled and no node holds
 * it. It makes the user's {@link Job} and owns it.
 */
export class JobRecord implements DispatchJob, JobOwner {
  readonly job: Job<any>;
  estimatedMs: number | undefined = undefined;
  /** The node it was given to; null while queued (or once handed back). */
  node: ComputeNode | null = null;
  /**
   * When it was last given to a node (performance.now() ms); NaN until then. Not 0: V8 would
   * store a small integer, and the first fractional time written would change the layout of
   * every record made so far (10,000 migrations in the middle of a first burst).
   */
  dispatchedAt = Number.NaN;
  /** A copy running elsewhere because this one runs late (speculative execution), if any. */
  backup: BackupJob | null = null;
  /** May run a backup copy (Server's or submit's `speculative`). */
  speculative = false;
  /** One of the server's own made-up jobs (api/warm-up.ts): counted nowhere, reported to no one. */
  warmUp = false;
  settled = false;
  unlisten: (() => void) | null = null;
  /** Links of the server's list of live jobs ({@link LiveJobs}). */
  prev: JobRecord | null = null;
  next: JobRecord | null = null;
  live = false;

  constructor(
    private readonly host: JobHost,
    /** Its id on the wire: unique among all jobs and copies this server sends. */
    readonly id: number,
    /** The user's {@link Job.id}: the user's jobs counted in submission order. */
    jobId: number,
    group: string,
    /** Counts of the job's group (for `server.wait(group)`). */
    readonly tally: Tally,
    readonly fn: FunctionEntry,
    readonly args: JobArgs,
    readonly refs: readonly RefData[],
    readonly timeoutMs: number | undefined,
    readonly callback: ((...args: any[]) => void) | undefined,
    readonly callbackArgs: readonly unknown[],
  ) {
    this.job = new Job(jobId, fn.bundle.name, group, this);
  }

  cancel(reason: unknown): void {
    this.host.cancel(this, reason);
  }

  get hash(): string {
    return this.fn.bundle.hash;
  }

  get name(): string {
    return this.fn.bundle.name;
  }

  definition(): FunctionDefinition {
    return this.fn.definition();
  }
}

/**
 * A second copy of a job that runs late on a slow node, on a CPU that would otherwise idle
 * at the end of a burst (`speculative: true`). It is the same job under its own id, so that
 * nodes tell the two apart: the first outcome settles the job, the other copy is cancelled
 * and its outcome dropped.
 */
export class BackupJob implements DispatchJob {
  readonly dispatchedAt = performance.now();

  constructor(
    readonly id: number,
    readonly primary: JobRecord,
    /** The node it runs on. */
    readonly node: ComputeNode,
    readonly estimatedMs: number | undefined,
  ) {}

  get hash(): string {
    return this.primary.hash;
  }
  get name(): string {
    return this.primary.name;
  }
  get args(): JobArgs {
    return this.primary.args;
  }
  get refs(): readonly RefData[] {
    return this.primary.refs;
  }
  get timeoutMs(): number | undefined {
    return this.primary.timeoutMs;
  }
  definition(): FunctionDefinition {
    return this.primary.definition();
  }
}

/**
 * The jobs the server still answers for, as an intrusive doubly linked list: adding and
 * removing allocate nothing, and removing twice is harmless.
 */
export class LiveJobs {
  #head: JobRecord | null = null;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  add(rec: JobRecord): void {
    if (rec.live) return;
    rec.live = true;
    rec.prev = null;
    rec.next = this.#head;
    if (this.#head) this.#head.prev = rec;
    this.#head = rec;
    this.#size++;
  }

  delete(rec: JobRecord): void {
    if (!rec.live) return;
    rec.live = false;
    if (rec.prev) rec.prev.next = rec.next;
    else this.#head = rec.next;
    if (rec.next) rec.next.prev = rec.prev;
    rec.prev = rec.next = null;
    this.#size--;
  }

  /** A snapshot, oldest job first (safe to change the list while walking it). */
  toArray(): JobRecord[] {
    const out: JobRecord[] = [];
    for (let r = this.#head; r; r = r.next) out.push(r);
    return out.reverse();
  }
}
