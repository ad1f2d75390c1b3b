/**
 * The one interface between the scheduler and the places jobs run: the local worker pool
 * is one kind of node; a connection to a remote `pp-node` is another. A node takes jobs in
 * batches, runs them, and reports each job exactly once through its events: a result, a
 * failure that was not the job's own (its worker died, its timeout passed), or a hand-back
 * of jobs that never started, which the server queues again.
 *
 * The jobs a node holds beyond those its CPUs run are its deque. Each node says how many more
 * jobs it takes now, its room (from its depth: scheduler/depth.ts); the scheduler fills it and
 * may take the newest jobs of a deque back (steal) for a CPU that would otherwise idle elsewhere.
 */
import type { FunctionDefinition, JobStatus, NodeInfo } from '../protocol/messages.ts';
import type { JobArgs } from './job-args.ts';

/** A job as a node sees it: everything already encoded, nothing it could mutate. */
export interface DispatchJob {
  readonly id: number;
  readonly hash: string;
  /** Built only when a worker lacks the function, i.e. rarely. */
  readonly definition: () => FunctionDefinition;
  /** Encoded `[thisArg, args]`. */
  readonly args: JobArgs;
  /** Mean run time of this job's function so far, if any ran. */
  readonly estimatedMs: number | undefined;
  /** Wall-clock limit once the job runs, in ms. */
  readonly timeoutMs: number | undefined;
  /** Display name of the function, for error messages. */
  readonly name: string;
  /** Values (server.put) the job's arguments refer to; sent once per worker or node. */
  readonly refs: readonly RefData[];
}

export interface RefData {
  readonly id: string;
  readonly blob: Uint8Array;
}

/**
 * A job's result as it travels from a worker up to the job server: its status, how long it
 * ran, and `bytes[start, end)`, the encoded value (or error) to decode with the job's class
 * registry. Handlers take and pass it as five plain parameters: flat arguments, not an object,
 * and a range rather than a view, since this runs once per job and an outcome object or a view
 * per job showed in the GC profile. Not as rest parameters (`...result: JobResult`) either:
 * until V8 has optimised a handler, each rest parameter is an array per call and each spread
 * a walk over it (a fresh process's first burst runs this path interpreted, 10,000 times).
 */
export type JobResult = [
  status: JobStatus,
  durationMs: number,
  bytes: Uint8Array,
  start: number,
  end: number,
];

export interface NodeEvents {
  /**
   * The job ran (or threw, or was cancelled on request); reported once. Nodes report each
   * job as the very object they were given, so the caller needs no lookup.
   */
  onResult(
    node: ComputeNode,
    job: DispatchJob,
    status: JobStatus,
    durationMs: number,
    bytes: Uint8Array,
    start: number,
    end: number,
  ): void;
  /** The job failed for a reason outside its function's code (worker crash, timeout). */
  onJobFailed(node: ComputeNode, job: DispatchJob, error: Error): void;
  /**
   * These jobs never started; run them elsewhere (or here again). `stolen`: given back because
   * the scheduler asked ({@link ComputeNode.steal}), not because the node stops or lost a worker.
   */
  onRequeue(node: ComputeNode, jobs: DispatchJob[], stolen?: boolean): void;
  /** The node can take more work than before (a worker became ready, a slot freed). */
  onCapacity(node: ComputeNode): void;
}

export interface ComputeNode {
  /** Stable identifier, also the row label in the stats table. */
  readonly id: string;
  /** What a remote node said of itself once authenticated; null for the local pool and before. */
  readonly info: NodeInfo | null;
  /** False once this node can never run a job (a remote node that refused us; a pool of no CPUs). */
  readonly usable: boolean;
  /** CPUs (workers) this node runs jobs on right now. */
  readonly ncpus: number;
  /** Jobs sent to this node without an outcome yet. */
  readonly inFlight: number;
  /** Round trip of the link to this node, ms (0 for the local pool). */
  readonly rttMs: number;
  /** Jobs it holds unstarted that {@link steal} could ask back now (0 while a steal is unanswered). */
  readonly stealable: number;
  /**
   * Its room: how many more jobs, each expected to take `estimatedMs`, this node takes right
   * now (its depth times its CPUs, less the jobs it holds). `waiting`: jobs queued in the
   * scheduler beyond what the other nodes have room for; a local worker holds the next long
   * job behind the one it runs while many wait, never when few do (scheduler/depth.ts).
   */
  room(estimatedMs: number | undefined, waiting: number): number;
  /** Hands jobs over; the node spreads them over its workers. */
  dispatch(jobs: DispatchJob[]): void;
  /**
   * Asks for up to `count` of the jobs it holds unstarted, newest first, as a transaction: the
   * node gives back only jobs it will not start (through onRequeue) and runs the others, so
   * no job runs twice. Returns how many it asked for.
   */
  steal(count: number): number;
  /** Best effort: an unstarted job is dropped, a running one is stopped. Reported as a result with status Cancelled or a failure. */
  cancel(jobId: number): void;
  /** Forgets values stored by server.put. */
  release(refIds: readonly string[]): void;
  /** Ends every worker; unfinished jobs are handed back through onRequeue. */
  close(): Promise<void>;
  /**
   * Platform, arch and Node ABI, as protocol/runtime-info.ts runtimeKey(): what a native addon
   * needs to be the same. '' when the node does not say (older nodes); undefined until known.
   */
  readonly runtimeKey?: string | undefined;
}
