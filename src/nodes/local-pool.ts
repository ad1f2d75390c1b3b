/**
 * The local worker pool as a compute node: N workers on this machine.
 *
 * Each worker holds several jobs when jobs are short (a round trip per job would cap
 * throughput at ~16k jobs/s), and just the one it runs when they are long (a deque of long
 * jobs only unbalances the pool). Its depth comes from the function's measured mean run time
 * (scheduler/depth.ts).
 */

import { JobCancelledError, JobSetupError, JobTimeoutError, WorkerCrashError } from '../errors.ts';
import {
  type BlobParts,
  encodeMessage,
  type JobStatus,
  type Message,
  runMessage,
} from '../protocol/messages.ts';
import { writeRunFrame } from '../protocol/run-frame.ts';
import { localRuntime, runtimeKey } from '../protocol/runtime-info.ts';
import { HOLD_NEXT_WAITING_PER_WORKER, workerDepth } from '../scheduler/depth.ts';
import { levelFill } from '../scheduler/policy.ts';
import { type ArenaSlot, createFileArena, createMemoryArena, type SharedArena } from '../transport/arena.ts';
import type { ComputeNode, DispatchJob, NodeEvents } from './compute-node.ts';
import { argsParts } from './job-args.ts';
import { type WorkerExit, WorkerHandle, type WorkerOptions } from './worker-handle.ts';

/** Most argument bytes a batch may have to be written as one frame (protocol/run-frame.ts). */
const RUN_FRAME_MAX_BYTES = 64 * 1024;
/** Consecutive workers that die before becoming ready, after which the pool gives up. */
const MAX_START_FAILURES = 3;
/** How long an unanswered steal keeps this pool from another (workers answer between jobs). */
const STEAL_ANSWER_MS = 50;

/**
 * Room of a worker: how many more jobs it takes at this depth. A deep worker is refilled only
 * once it has run down to half its depth, so that it gets one large batch (one write, one
 * read) rather than a trickle of one-job messages as each result comes back.
 */
function roomIn(w: WorkerHandle, depth: number): number {
  const n = w.inFlight.length;
  if (depth > 2 && n > depth / 2) return 0;
  return Math.max(0, depth - n);
}

export interface LocalPoolOptions extends WorkerOptions {
  ncpus: number;
  /** Pass large arguments through shared memory (transport/arena.ts); default true. */
  sharedMemory?: boolean;
}

export class LocalPool implements ComputeNode {
  readonly id = 'local';
  /** This machine's: native addons built here load here. */
  readonly runtimeKey = runtimeKey(localRuntime());
  readonly info = null;
  /** Raised when workers cannot start at all; the server fails what it cannot run elsewhere. */
  onFatal: ((error: Error) => void) | null = null;

  private readonly workers: WorkerHandle[] = [];
  /** Jobs the scheduler asked back (steal) and no worker has answered for yet. */
  private readonly asked = new Set<DispatchJob>();
  /** Until then, a steal asked of this pool is taken as unanswered (performance.now() ms). */
  private stealPendingUntil = 0;
  private readonly retiring = new Set<WorkerHandle>();
  /** Jobs sent to workers (and retiring ones) without an outcome yet. */
  private placedCount = 0;
  private readonly exits = new Set<Promise<void>>();
  private readonly exitWaiters = new Map<WorkerHandle, () => void>();
  /** Callers of whenReady() waiting for the workers to start. */
  private readonly readyWaiters: Array<() => void> = [];
  private target = 0;
  private nextIndex = 0;
  private startFailures = 0;
  private closed = false;
  /** Shared memory for large arguments, made with the first worker (undefined: not tried yet). */
  private arena: SharedArena | null | undefined = undefined;

  constructor(
    private readonly opts: LocalPoolOptions,
    private readonly events: NodeEvents,
  ) {
    this.resize(opts.ncpus);
  }

  get usable(): boolean {
    return this.ncpus > 0;
  }

  get ncpus(): number {
    return this.target;
  }

  get inFlight(): number {
    return this.placedCount;
  }

  /** The local pool has no link. */
  get rttMs(): number {
    return 0;
  }

  get stealable(): number {
    if (performance.now() < this.stealPendingUntil) return 0;
    let n = 0;
    for (const w of this.workers) n += Math.max(0, w.inFlight.length - 1);
    return Math.max(0, n - this.asked.size);
  }

  /**
   * Asks workers for the newest `count` jobs queued behind the ones they run, the busiest
   * worker first. Each answers with those it had not started ('requeue', back through
   * onRequeue); a worker reads messages between jobs, so it answers when its job ends.
   */
  steal(count: number): number {
    if (!(count > 0) || this.stealable === 0) return 0;
    const tails = this.workers.map((w) => w.inFlight.length - 1);
    const picked = this.workers.map((): number[] => []);
    let n = 0;
    while (n < count) {
      let w = -1;
      for (let i = 0; i < tails.length; i++) if (tails[i]! >= 1 && (w < 0 || tails[i]! > tails[w]!)) w = i;
      if (w < 0) break;
      const job = this.workers[w]!.inFlight[tails[w]!--]!;
      if (this.asked.has(job)) continue;
      this.asked.add(job);
      picked[w]!.push(job.id);
      n++;
    }
    for (let i = 0; i < picked.length; i++)
      if (picked[i]!.length > 0) this.workers[i]!.send(encodeMessage({ type: 'withdraw', ids: picked[i]! }));
    if (n > 0) this.stealPendingUntil = performance.now() + STEAL_ANSWER_MS;
    return n;
  }

  /**
   * Asks workers for these jobs, if they hold them queued behind the one they run: a pp-node
   * passing on its client's steal. As with {@link steal}, each worker answers with those it
   * had not started (through onRequeue, as stolen) when its job ends; the others run. Returns
   * how many it asked for.
   */
  withdraw(ids: ReadonlySet<number>): number {
    let n = 0;
    for (const w of this.workers) {
      const picked: number[] = [];
      for (let i = 1; i < w.inFlight.length; i++) {
        const job = w.inFlight[i]!;
        if (!ids.has(job.id) || this.asked.has(job)) continue;
        this.asked.add(job);
        picked.push(job.id);
      }
      if (picked.length > 0) {
        w.send(encodeMessage({ type: 'withdraw', ids: picked }));
        n += picked.length;
      }
    }
    return n;
  }

  /** Workers running a job now (status reports). */
  get busyWorkers(): number {
    let n = 0;
    for (const w of this.workers) if (w.inFlight.length > 0) n++;
    return n;
  }

  /** Workers that have started and can run a job now. */
  get readyWorkers(): number {
    let n = 0;
    for (const w of this.workers) if (w.ready) n++;
    return n;
  }

  /**
   * Resolves once every worker the pool wants has started (at once if it has), or the pool
   * closed or gave up starting them.
   */
  whenReady(): Promise<void> {
    if (this.allReady()) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  private allReady(): boolean {
    return (
      this.closed ||
      this.target === 0 ||
      (this.workers.length >= this.target && this.readyWorkers >= this.target)
    );
  }

  private wakeReadyWaiters(): void {
    if (this.readyWaiters.length === 0 || !this.allReady()) return;
    for (const resolve of this.readyWaiters.splice(0)) resolve();
  }

  /** Worker process ids (for diagnostics and tests). */
  get pids(): number[] {
    return this.workers.map((w) => w.pid);
  }

  /** Grows at once; shrinking retires workers once their current jobs are done. */
  resize(n: number): void {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`ncpus must be a whole number >= 0, got ${n}`);
    this.target = n;
    while (this.workers.length < n) this.spawn();
    while (this.workers.length > n) {
      // Retire the least busy workers first.
      let pick = 0;
      for (let i = 1; i < this.workers.length; i++) {
        if (this.workers[i]!.inFlight.length < this.workers[pick]!.inFlight.length) pick = i;
      }
      const [w] = this.workers.splice(pick, 1);
      this.retire(w!);
    }
    this.events.onCapacity(this);
    this.wakeReadyWaiters();
  }

  /**
   * Copies a job's large parts into this pool's shared memory, where its workers read them
   * without a trip through their sockets; null if there is none or it is full.
   */
  store(parts: readonly Uint8Array[]): { arena: SharedArena; slots: ArenaSlot[] } | null {
    const arena = this.arena;
    if (!arena || this.target === 0) return null;
    const slots = arena.store(parts);
    return slots ? { arena, slots } : null;
  }

  room(estimatedMs: number | undefined, waiting: number): number {
    const holdNext = waiting >= HOLD_NEXT_WAITING_PER_WORKER * this.workers.length;
    const depth = workerDepth(estimatedMs, holdNext);
    let free = 0;
    for (const w of this.workers) free += roomIn(w, depth);
    return free;
  }

  dispatch(jobs: DispatchJob[]): void {
    const workers = this.workers;
    if (jobs.length === 0) return;
    if (workers.length === 0) {
      this.events.onRequeue(this, jobs);
      return;
    }
    // Each job to the least loaded worker with room; each worker's share as one batch (one
    // write). Room for a long job's next one is always allowed here: room(), which decided
    // how many jobs came, counted it only while many wait, and levelling serves idle workers first.
    const depth = workerDepth(jobs[0]!.estimatedMs, true);
    const counts = levelFill(
      workers.map((w) => w.inFlight.length),
      workers.map((w) => roomIn(w, depth)),
      jobs.length,
    );
    let next = 0;
    for (let i = 0; i < workers.length; i++) {
      if (counts[i]! === 0) continue;
      this.sendBatch(workers[i]!, jobs.slice(next, next + counts[i]!));
      next += counts[i]!;
    }
    // More than the workers asked for (the scheduler over-assigned): spread the rest evenly.
    let i = 0;
    while (next < jobs.length) this.sendBatch(workers[i++ % workers.length]!, [jobs[next++]!]);
  }

  private sendBatch(w: WorkerHandle, batch: DispatchJob[]): void {
    w.cache.sendMissing(batch, w);
    const wasIdle = w.inFlight.length === 0;
    for (let i = 0; i < batch.length; i++) w.inFlight.push(batch[i]!);
    this.placedCount += batch.length;
    // The worker itself needs neither timeouts (the pool enforces them) nor ref ids.
    const blobs: Uint8Array[] = [];
    let slots: number[][] | undefined;
    let whole = true;
    let bytes = 0;
    for (let i = 0; i < batch.length; i++) {
      const args = batch[i]!.args;
      bytes += args.bytes.byteLength;
      blobs.push(args.bytes);
      if (args.stored && args.stored.arena === this.arena) {
        slots ??= batch.map(() => []);
        for (const s of args.stored.slots) slots[i]!.push(s.offset, s.length);
      } else if (args.splits.length > 0) {
        whole = false; // parts outside this arena go inline: the general encoder joins them
      }
    }
    // Small jobs: one frame written in one pass. Large arguments: the general path, which
    // writes them to a socket as they are (writev) instead of copying them into a frame.
    if (whole && bytes <= RUN_FRAME_MAX_BYTES) w.sendFrame(writeRunFrame(batch, blobs, slots, w.framed));
    else
      w.send(
        encodeMessage(
          runMessage(
            batch.map((job) => ({ id: job.id, hash: job.hash, blob: this.blobOf(job) })),
            slots,
          ),
        ),
      );
    if (wasIdle) this.armHeadTimer(w);
  }

  /** A job's arguments as this pool's workers read them: arena slots stay where they are. */
  private blobOf(job: DispatchJob): BlobParts {
    const args = job.args;
    return args.stored && args.stored.arena === this.arena ? args.bytes : argsParts(args);
  }

  release(refIds: readonly string[]): void {
    for (const w of [...this.workers, ...this.retiring]) {
      w.cache.release(refIds, w);
    }
  }

  cancel(jobId: number): void {
    const w = this.workerOf(jobId);
    if (!w) return;
    if (w.inFlight[0]!.id === jobId) {
      // Running (synchronous code cannot be interrupted): stop the worker.
      w.stopReason = { kind: 'cancel', jobId };
      w.kill();
    } else {
      w.send(encodeMessage({ type: 'cancel', ids: [jobId] }));
    }
  }

  /** The worker a job was sent to (cancelling is rare: a scan is fine). */
  private workerOf(jobId: number): WorkerHandle | undefined {
    for (const w of [...this.workers, ...this.retiring]) if (w.inFlight.some((j) => j.id === jobId)) return w;
    return undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.target = 0;
    for (const w of [...this.workers, ...this.retiring]) {
      w.stopReason = { kind: 'close' };
      // Idle workers exit on their own (flushing profiles, coverage...); busy ones are killed.
      if (w.inFlight.length === 0 && w.ready) {
        w.send(encodeMessage({ type: 'shutdown' }));
        setTimeout(() => w.kill(), 500).unref();
      } else {
        w.kill();
      }
    }
    this.workers.length = 0;
    this.wakeReadyWaiters();
    await Promise.all(this.exits);
    this.arena?.close();
  }

  private spawn(): void {
    if (this.arena === undefined) {
      this.arena = null;
      if (this.opts.sharedMemory !== false)
        this.arena = this.opts.isolation === 'thread' ? createMemoryArena() : createFileArena();
    }
    const w = new WorkerHandle(
      this.nextIndex++,
      { ...this.opts, arena: this.arena?.handle ?? undefined },
      {
        onMessage: (worker, msg) => this.onMessage(worker, msg),
        // One result, read by the worker handle's fast path (protocol/result-frame.ts).
        onResult: (worker, id, status, durationMs, bytes, start, end) => {
          this.takeResult(worker, id, status, durationMs, bytes, start, end);
          this.afterResults(worker);
        },
        onExit: (worker, exit) => this.onExit(worker, exit),
      },
    );
    this.workers.push(w);
    this.exits.add(
      new Promise<void>((resolve) => {
        this.exitWaiters.set(w, resolve);
      }),
    );
  }

  private retire(w: WorkerHandle): void {
    w.stopReason = { kind: 'retire' };
    this.retiring.add(w);
    if (w.inFlight.length === 0) w.kill();
    else this.withdrawBehindHead(w); // it finishes the job it runs; the others run elsewhere
  }

  /**
   * Asks every worker for the jobs queued behind the one it runs (a node that stops hands
   * them back to its clients). They come back through onRequeue, once each worker reads it.
   */
  withdrawQueued(): void {
    for (const w of [...this.workers, ...this.retiring]) this.withdrawBehindHead(w);
  }

  private withdrawBehindHead(w: WorkerHandle): void {
    if (w.inFlight.length > 1)
      w.send(encodeMessage({ type: 'withdraw', ids: w.inFlight.slice(1).map((j) => j.id) }));
  }

  private onMessage(w: WorkerHandle, msg: Message): void {
    if (msg.type === 'ready') {
      w.ready = true;
      this.startFailures = 0;
      this.events.onCapacity(this);
      this.wakeReadyWaiters();
      return;
    }
    if (msg.type === 'requeue') {
      this.takeBack(w, msg.ids);
      return;
    }
    if (msg.type === 'bye') {
      w.farewell = msg.reason; // it exits next: see onExit
      return;
    }
    if (msg.type !== 'done') return;
    for (let i = 0; i < msg.results.length; i++) {
      const [id, status, durationMs] = msg.results[i]!;
      const blob = msg.blobs[i]!;
      this.takeResult(w, id, status, durationMs, blob, 0, blob.byteLength);
    }
    this.afterResults(w);
  }

  private takeResult(
    w: WorkerHandle,
    id: number,
    status: JobStatus,
    durationMs: number,
    bytes: Uint8Array,
    start: number,
    end: number,
  ): void {
    // Jobs run in order, so the answer is for the head; anything else is a protocol bug.
    const inFlight = w.inFlight;
    let job = inFlight[0];
    if (job?.id === id) inFlight.shift();
    else {
      const at = inFlight.findIndex((j) => j.id === id);
      if (at < 0) return;
      job = inFlight.splice(at, 1)[0]!;
    }
    this.placedCount--;
    if (this.asked.size > 0) this.asked.delete(job!);
    this.events.onResult(this, job!, status, durationMs, bytes, start, end);
  }

  /** Jobs the worker gave back unstarted (it was asked to withdraw them). */
  private takeBack(w: WorkerHandle, ids: readonly number[]): void {
    const back = new Set(ids);
    const jobs: DispatchJob[] = [];
    const inFlight = w.inFlight;
    let kept = 0;
    for (const job of inFlight) {
      if (back.has(job.id)) jobs.push(job);
      else inFlight[kept++] = job;
    }
    if (jobs.length === 0) return;
    inFlight.length = kept;
    this.placedCount -= jobs.length;
    let stolen = false;
    for (const job of jobs) if (this.asked.delete(job)) stolen = true;
    if (stolen) this.stealPendingUntil = 0;
    this.events.onRequeue(this, jobs, stolen);
    this.afterUnload(w); // the job it runs is still the head: its timeout goes on as it was
  }

  private afterResults(w: WorkerHandle): void {
    this.armHeadTimer(w);
    this.afterUnload(w);
  }

  /** A worker holds fewer jobs: a retiring one with none left stops, others take more. */
  private afterUnload(w: WorkerHandle): void {
    if (this.retiring.has(w) && w.inFlight.length === 0) w.kill();
    else this.events.onCapacity(this);
  }

  /** Starts the timeout of the job now at the head of the worker's line, if it has one. */
  private armHeadTimer(w: WorkerHandle): void {
    if (w.headTimer) {
      clearTimeout(w.headTimer);
      w.headTimer = null;
    }
    const head = w.inFlight[0];
    if (head?.timeoutMs !== undefined) this.startHeadTimer(w, head, head.timeoutMs);
  }

  // Apart from armHeadTimer: a closure there would cost a context allocation on every call.
  private startHeadTimer(w: WorkerHandle, head: DispatchJob, timeoutMs: number): void {
    w.headTimer = setTimeout(() => {
      if (w.inFlight[0] !== head) return;
      w.stopReason = { kind: 'timeout', jobId: head.id };
      w.kill();
    }, timeoutMs);
    w.headTimer.unref();
  }

  private onExit(w: WorkerHandle, exit: WorkerExit): void {
    if (w.headTimer) clearTimeout(w.headTimer);
    const idx = this.workers.indexOf(w);
    if (idx >= 0) this.workers.splice(idx, 1);
    this.retiring.delete(w);
    this.exitWaiters.get(w)?.();
    this.exitWaiters.delete(w);

    const leftJobs = w.inFlight.splice(0);
    this.placedCount -= leftJobs.length;
    for (const job of leftJobs) this.asked.delete(job);
    const left = leftJobs.map((j) => j.id);
    const jobOf = (id: number) => leftJobs.find((j) => j.id === id);
    const nameOf = (id: number) => jobOf(id)?.name ?? `job ${id}`;
    const reason = w.stopReason;
    let culprit: number | undefined;
    let error: Error | undefined;
    if (reason?.kind === 'timeout' || reason?.kind === 'cancel') {
      culprit = left.includes(reason.jobId) ? reason.jobId : undefined;
      const name = nameOf(reason.jobId);
      error =
        reason.kind === 'timeout'
          ? new JobTimeoutError(`${name} ran past its timeout; its worker was stopped and replaced`)
          : new JobCancelledError(`${name} was cancelled while running; its worker was stopped and replaced`);
    } else if ((reason === null || reason.kind === 'retire') && w.ready && left.length > 0) {
      // (A retiring worker is stopped only once it holds no job: holding one, it crashed.)
      culprit = left[0];
      // A worker that could not read a message exits (worker/entry.ts): its running job fails
      // with why, so that a message it can never read fails a job each time, never loops.
      error = w.farewell
        ? new JobSetupError(
            `${nameOf(culprit!)} (job ${culprit}) did not finish: ${w.farewell}. The worker was replaced; other jobs go on.`,
          )
        : crashError(w, exit, nameOf(culprit!), culprit!);
    } else if (reason === null && !w.ready) {
      this.startFailures++;
    }
    const requeue = leftJobs.filter((j) => j.id !== culprit);
    if (culprit !== undefined && error) this.events.onJobFailed(this, jobOf(culprit)!, error);
    if (requeue.length > 0) this.events.onRequeue(this, requeue);

    if (this.closed) return;
    if (this.startFailures >= MAX_START_FAILURES) {
      this.target = 0;
      this.wakeReadyWaiters();
      for (const other of this.workers.splice(0)) {
        other.stopReason = { kind: 'close' };
        other.kill();
      }
      this.onFatal?.(
        new WorkerCrashError(
          `local workers fail to start (last one: ${describeExit(exit)}); see the worker output above. ` +
            'Check that Node can run with the flags you gave it, and that pp-node is installed completely.',
          exit.code,
          exit.signal,
        ),
      );
      return;
    }
    while (this.workers.length < this.target) this.spawn();
    this.events.onCapacity(this);
  }
}

function describeExit(exit: WorkerExit): string {
  if (exit.signal) return `killed by ${exit.signal}`;
  return `exited with code ${exit.code}`;
}

function crashError(w: WorkerHandle, exit: WorkerExit, name: string, jobId: number): WorkerCrashError {
  const kind = w.isolation === 'thread' ? 'worker thread' : `worker process ${w.pid}`;
  let hint = '';
  if (exit.signal === 'SIGABRT' || exit.code === 134 || exit.signal === 'SIGKILL') {
    hint =
      ' It probably ran out of memory (see the output above); raise `workerMemoryMb` or use less memory per job.';
  } else if (exit.signal === 'SIGSEGV') {
    hint = ' It crashed (segmentation fault), most likely in a native module.';
  } else if (exit.code !== null) {
    hint = ' Did the job call process.exit()?';
  }
  return new WorkerCrashError(
    `${name} (job ${jobId}) did not finish: its ${kind} ${describeExit(exit)}. The worker was replaced; other jobs go on.${hint}`,
    exit.code,
    exit.signal,
  );
}
