/**
 * One worker of the local pool, as a child process (default) or a worker thread.
 *
 * Why processes by default: a job that exhausts memory or crashes V8 takes its whole process
 * down. In a worker thread that process is the user's (nodejs/node#47224: a worker's OOM can
 * abort the parent), so "the worker is replaced and the server keeps going" can only be
 * promised for child processes. Threads stay available (`isolation: 'thread'`) because they
 * start faster and read large arguments from memory rather than through the kernel (see
 * arena.ts); the benchmark (`npm run bench`) prints both.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { workerChannelStdio, workerIgnoredSignals } from '../platform.ts';
import { decodeMessage, type JobStatus, type Message } from '../protocol/messages.ts';
import { type ResultView, readResult } from '../protocol/result-frame.ts';
import type { ArenaHandle } from '../transport/arena.ts';
import { FrameReader, joinFrame, writeFrame } from '../transport/frames.ts';
import type { DispatchJob } from './compute-node.ts';
import { PeerCache } from './peer-cache.ts';

export type Isolation = 'process' | 'thread';

export interface WorkerOptions {
  isolation: Isolation;
  /** Heap limit per worker, in MiB (V8's max old space). */
  maxMemoryMb?: number;
  /** Scheduling priority for worker processes (nice value, 0..19); processes only. */
  niceness?: number;
  /** Extra Node flags for worker processes (e.g. `['--cpu-prof']` to profile them). */
  execArgv?: readonly string[];
  /** Shared memory the worker reads large arguments from (transport/arena.ts). */
  arena?: ArenaHandle | undefined;
  /** The module cache the worker loads packs from (modules/store.ts); default its own. */
  cacheDir?: string | undefined;
}

/** The file descriptor a worker process finds its arena at (0-2 are stdio, 3 the channel). */
export const ARENA_FD = 4;

/**
 * glibc malloc settings for worker processes (ignored elsewhere; a user's own
 * GLIBC_TUNABLES wins). A worker copies each large argument into a fresh buffer; by default
 * glibc serves 1 MiB from a fresh mmap or hands freed memory back at once, so every buffer
 * faults its pages in again, which is slow in a VM. Keeping up to 64 MiB of freed memory
 * saves most of those faults (figures: bench/NOTES.md).
 */
const WORKER_MALLOC_TUNABLES = 'glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=67108864';

export interface WorkerExit {
  code: number | null;
  signal: string | null;
}

/** What a worker handle reports to its pool. */
export interface WorkerListener {
  onMessage(w: WorkerHandle, msg: Message): void;
  /** A one-result 'done' message, read without building it (protocol/result-frame.ts); its value is `bytes[start, end)`. */
  onResult(
    w: WorkerHandle,
    id: number,
    status: JobStatus,
    durationMs: number,
    bytes: Uint8Array,
    start: number,
    end: number,
  ): void;
  onExit(w: WorkerHandle, exit: WorkerExit): void;
}

/** The worker entry next to this module: `.ts` when pp-node runs from source under tsx. */
const runningFromSource = import.meta.url.endsWith('.ts');
const entryUrl = new URL(runningFromSource ? '../worker/entry.ts' : '../worker/entry.js', import.meta.url);

/** Flags a worker process needs: a TypeScript loader when pp-node itself runs from source. */
function processExecArgv(opts: WorkerOptions): string[] {
  const argv: string[] = [];
  if (runningFromSource) {
    const own = process.execArgv;
    for (let i = 0; i < own.length; i++) {
      const flag = own[i]!;
      if (/^--(import|require|loader|experimental-loader)$/.test(flag) && i + 1 < own.length) {
        argv.push(flag, own[++i]!);
      } else if (/^--(import|require|loader|experimental-loader)=/.test(flag)) {
        argv.push(flag);
      }
    }
    if (!argv.some((a) => a.includes('tsx'))) argv.push('--import', 'tsx');
  }
  if (opts.maxMemoryMb) argv.push(`--max-old-space-size=${opts.maxMemoryMb}`);
  if (opts.execArgv) argv.push(...opts.execArgv);
  return argv;
}

/**
 * Worker processes ignore terminal signals (worker/ignore-signals.ts): Ctrl+C reaches them
 * with their parent, and the parent decides. When the parent has no listener of its own for
 * such a signal, Node's default ends it at once; its busy workers would then run their jobs
 * to the end as orphans, forever for a job that never ends. So while worker processes live,
 * this listens too: alone, it kills the busy workers and raises the signal again, which Node
 * then handles by default (the idle workers see their channel close and exit by themselves).
 * With the user's (or the node's) own listener, it does nothing: that listener decides. And
 * when the parent exits (process.exit), busy workers are killed likewise.
 */
const liveProcesses = new Set<WorkerHandle>();
let guards: Array<[NodeJS.Signals, () => void]> | null = null;

function killBusyWorkers(): void {
  for (const w of liveProcesses) if (w.inFlight.length > 0) w.kill();
}

function watchSignals(w: WorkerHandle): void {
  liveProcesses.add(w);
  if (guards) return;
  guards = workerIgnoredSignals().map((signal) => {
    const listener = () => {
      if (process.listenerCount(signal) > 1) return; // someone else decides
      killBusyWorkers();
      unwatchAll();
      process.kill(process.pid, signal);
    };
    process.on(signal, listener);
    return [signal, listener];
  });
  process.on('exit', killBusyWorkers);
}

function unwatchAll(): void {
  for (const [signal, listener] of guards ?? []) process.off(signal, listener);
  process.off('exit', killBusyWorkers);
  guards = null;
}

function unwatchSignals(w: WorkerHandle): void {
  if (liveProcesses.delete(w) && liveProcesses.size === 0) unwatchAll();
}

export class WorkerHandle {
  readonly isolation: Isolation;
  pid = 0;
  ready = false;
  /** Jobs sent and not yet answered, in the order the worker runs them. */
  readonly inFlight: DispatchJob[] = [];
  /** The function definitions and Refs (server.put values) this worker holds. */
  readonly cache = new PeerCache();
  /** Why we are stopping it, if we are; decides how its in-flight jobs are reported. */
  stopReason: { kind: 'timeout' | 'cancel'; jobId: number } | { kind: 'retire' | 'close' } | null = null;
  /** Why the worker said it stops on its own ('bye': it could not read a message), if it did. */
  farewell: string | null = null;
  /** The timeout of the job at the head of `inFlight` (the one running): it stops the worker when it fires. */
  headTimer: NodeJS.Timeout | null = null;

  private child: ChildProcess | null = null;
  private thread: Worker | null = null;
  private socket: Socket | null = null;
  private exited = false;

  /** Where {@link receive} reads one-result frames (no object per result). */
  private readonly result: ResultView = { id: 0, status: 0, durationMs: 0, blobStart: 0 };

  constructor(
    readonly index: number,
    opts: WorkerOptions,
    private readonly listener: WorkerListener,
  ) {
    this.isolation = opts.isolation;
    if (opts.isolation === 'thread') this.startThread(opts);
    else this.startProcess(opts);
  }

  private startProcess(opts: WorkerOptions): void {
    const arena = opts.arena?.kind === 'file' ? opts.arena.fd : undefined;
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (arena !== undefined) env.PP_NODE_ARENA_FD = String(ARENA_FD);
    env.GLIBC_TUNABLES ??= WORKER_MALLOC_TUNABLES;
    if (opts.cacheDir) env.PP_NODE_CACHE_DIR = opts.cacheDir;
    // The channel is 'overlapped' on Windows, where a plain pipe hangs the worker (platform.ts).
    const channel = workerChannelStdio();
    const child = spawn(process.execPath, [...processExecArgv(opts), fileURLToPath(entryUrl)], {
      stdio:
        arena === undefined
          ? ['ignore', 'inherit', 'inherit', channel]
          : ['ignore', 'inherit', 'inherit', channel, arena],
      env,
      windowsHide: true, // no console window per worker when the parent has none
    });
    this.child = child;
    watchSignals(this);
    this.pid = child.pid ?? 0;
    if (opts.niceness && child.pid) {
      try {
        setPriority(child.pid, opts.niceness);
      } catch {
        // Not permitted here: run at normal priority rather than not at all.
      }
    }
    const socket = child.stdio[3] as Socket;
    this.socket = socket;
    const reader = new FrameReader((bytes, start, end) => this.receive(bytes, start, end));
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('error', () => {}); // EPIPE after a crash: the exit handler reports it
    // Report the exit only after the socket is drained, so results written just before a
    // crash are delivered first.
    let exit: WorkerExit | null = null;
    let socketClosed = false;
    const finish = () => {
      if (exit && socketClosed && !this.exited) {
        this.exited = true;
        unwatchSignals(this);
        this.listener.onExit(this, exit);
      }
    };
    socket.on('close', () => {
      socketClosed = true;
      finish();
    });
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      finish();
    });
    child.on('error', (error) => {
      // spawn failed: there will be no 'exit'
      exit = { code: null, signal: `spawn error: ${error.message}` };
      socketClosed = true;
      finish();
    });
  }

  private startThread(opts: WorkerOptions): void {
    // From source, a thread's entry is TypeScript: Node 20 does not apply `--import tsx` to
    // a worker's entry module, so register tsx inside the thread first.
    const entry = runningFromSource
      ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entryUrl.href)}); })`
      : entryUrl;
    const thread = new Worker(entry, {
      eval: runningFromSource,
      stdout: false,
      stderr: false,
      workerData: { arena: opts.arena },
      env: opts.cacheDir ? { ...process.env, PP_NODE_CACHE_DIR: opts.cacheDir } : process.env,
      resourceLimits: opts.maxMemoryMb ? { maxOldGenerationSizeMb: opts.maxMemoryMb } : undefined,
    });
    this.thread = thread;
    this.pid = process.pid;
    thread.on('message', (data: ArrayBuffer) => this.receive(Buffer.from(data), 0, data.byteLength));
    thread.on('error', (e) => {
      if (!this.ready) console.error('pp-node: worker thread failed to start:', e);
    });
    thread.on('exit', (code) => {
      if (this.exited) return;
      this.exited = true;
      this.listener.onExit(this, { code, signal: null });
    });
  }

  /** A message from the worker, `bytes[start, end)`: one result (the common case, read in place), or any other. */
  private receive(bytes: Buffer, start: number, end: number): void {
    const r = this.result;
    if (readResult(bytes, r, start, end)) {
      this.listener.onResult(this, r.id, r.status, r.durationMs, bytes, r.blobStart, end);
    } else {
      this.listener.onMessage(this, decodeMessage(bytes.subarray(start, end)));
    }
  }
  get alive(): boolean {
    return !this.exited;
  }

  send(parts: Uint8Array[]): void {
    if (this.exited) return;
    if (this.thread) {
      const frame = joinFrame(parts, false);
      this.thread.postMessage(frame.buffer, [frame.buffer as ArrayBuffer]);
      return;
    }
    writeFrame(this.socket!, parts);
  }

  /** Whether {@link sendFrame} takes a frame length header: a socket needs one, a thread's messages come whole. */
  get framed(): boolean {
    return this.thread === null;
  }

  /**
   * Sends one message encoded whole, with a frame header if {@link framed}. Takes the buffer,
   * which must own all of its memory (it may be transferred to the thread).
   */
  sendFrame(frame: Buffer): void {
    if (this.exited) return;
    if (this.thread) this.thread.postMessage(frame.buffer, [frame.buffer as ArrayBuffer]);
    else this.socket!.write(frame);
  }

  /** Stops the worker at once (the running job, if any, is lost: the caller reports it). */
  kill(): void {
    if (this.exited) return;
    if (this.child) this.child.kill('SIGKILL');
    else void this.thread?.terminate();
  }
}
