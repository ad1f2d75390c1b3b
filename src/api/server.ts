/**
 * The job server: pp's `Server`, in the user's process. It owns the job queue and the
 * nodes (the local worker pool, and remote nodes given in `ppservers` or discovered), asks the
 * scheduling policy (src/scheduler) how to spread queued
 * jobs over them, and delivers each job's outcome exactly once.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import { Dashboard, type DashboardOptions, dashboardOptions } from '../dashboard/dashboard.ts';
import { type DiscoveredNode, NodeBrowser } from '../discovery/index.ts';
import { JobCancelledError, JobSetupError, PPError, ServerClosedError } from '../errors.ts';
import { type FunctionBundle, getBundle, type ModuleSpec } from '../functions/bundle.ts';
import type { ComputeNode, NodeEvents, RefData } from '../nodes/compute-node.ts';
import { type JobArgs, releaseArgs, wholeArgs } from '../nodes/job-args.ts';
import { LocalPool } from '../nodes/local-pool.ts';
import {
  type DialGate,
  type Endpoint,
  NodeRejectedError,
  RemoteNode,
  type RemoteNodeListener,
} from '../nodes/remote-node.ts';
import type { Isolation } from '../nodes/worker-handle.ts';
import { decodeSmall, encodeSmallArgs, NOT_SMALL } from '../protocol/codec/small.ts';
import {
  type ClassRegistry,
  decodeRange,
  encode,
  encodeSplit,
  heapBudgetFor,
  makeClassRegistry,
} from '../protocol/codec.ts';
import { parseAddress } from '../protocol/dial.ts';
import { JobStatus } from '../protocol/messages.ts';
import { REF_CLASS, Ref, type RefArgs } from '../protocol/ref.ts';
import { Dispatcher } from '../scheduler/dispatcher.ts';
import { Fifo } from '../scheduler/fifo.ts';
import {
  assignJobs,
  backupAfterMs,
  DurationEstimate,
  type NodeLoad,
  placeJobs,
  planSteals,
  roomOfNodes,
  stealDelayOf,
  takeNewestFirst,
  UNKNOWN_MS,
} from '../scheduler/policy.ts';
import { RunTimes } from '../scheduler/run-times.ts';
import { END_OF_BURST_RECHECK_MS, MAX_RECHECK_MS, NodeSpeed } from '../scheduler/speed.ts';
import { resolveSecret } from '../secret.ts';
import { checkSecretStrength } from '../secret-strength.ts';
import { formatStats, type NodeStats, type NodeSummary, type ServerStats } from '../stats.ts';
import { createHeapArena, type SharedArena } from '../transport/arena.ts';
import { DiscoveredNodes } from './discovered-nodes.ts';
import type { Job } from './job.ts';
import { BackupJob, FunctionEntry, JobRecord, LiveJobs } from './job-record.ts';
import { ModuleShipping } from './modules.ts';
import { type Progress, Tally, type WaitOptions } from './progress.ts';
import { drawProgress } from './progress-bar.ts';
import { warmUp, warmUpServer } from './warm-up.ts';

/** Options of {@link Server}. */
export interface ServerOptions {
  /** Local workers; default `os.availableParallelism()`. `0` runs nothing locally. */
  ncpus?: number;
  /** Remote nodes (`npx pp-node`) as `'host'` or `'host:port'` (default port 60000). */
  ppservers?: readonly string[];
  /**
   * Find every `pp-node` on the LAN by mDNS and use it as it comes and goes (pp's
   * `ppservers: ['*']` means the same).
   */
  autodiscover?: boolean;
  /** Network interface name (eth0) or address to discover nodes on; default: the system's multicast route. */
  interface?: string;
  /**
   * Shared secret of the cluster's nodes. Default: `PP_SECRET`, else the per-user secret
   * file `~/.config/pp-node/secret` (which `npx pp-node` creates on first run).
   */
  secret?: string | Uint8Array;
  /**
   * Use a weak secret anyway (default `false`: a secret under 16 bytes or an estimated 80 bits
   * is refused with WeakSecretError, since a rogue node could guess it offline; see the README).
   */
  allowWeakSecret?: boolean;
  /** Seconds of silence after which a remote node counts as dead (default 2; it is noticed within 2.2 s). */
  nodeTimeout?: number;
  /**
   * With `autodiscover`: nodes found on the LAN that are connected to at once, at most
   * (default 64). More wait their turn; while some wait, one that never proved the secret and
   * keeps failing gives its place up (see src/api/discovered-nodes.ts).
   */
  maxDiscoveredNodes?: number;
  /**
   * How local workers are isolated. `'process'` (default): a job that crashes or exhausts
   * memory only loses its own worker. `'thread'`: faster to start and to pass large
   * arguments to, but an out-of-memory worker can take the whole process down.
   */
  isolation?: Isolation;
  /** Heap limit of each local worker, in MiB. */
  workerMemoryMb?: number;
  /** Extra Node flags for local worker processes, e.g. `['--cpu-prof']` to profile jobs. */
  workerExecArgv?: readonly string[];
  /**
   * Pass typed arrays and buffers of 64 KiB or more to local workers through shared memory
   * (a file in /dev/shm for processes, a SharedArrayBuffer for threads), up to 256 MiB at a
   * time. Default true; without /dev/shm, or when it is full, they go through the worker's
   * channel instead.
   */
  sharedMemory?: boolean;
  /**
   * Warm the job path up (default true): once the local workers are ready, while nothing has
   * been submitted yet, the server runs a few thousand made-up jobs through its own path, so
   * that V8 has compiled it before the first real burst (a fresh process's first 10,000 tiny
   * jobs then run about 1.4x as fast). It costs about 0.25 s of CPU once; a job submitted
   * meanwhile waits for at most one slice of it (a few ms), and it stops. The made-up jobs
   * show nowhere. Only for a server whose jobs run on local workers alone (no `ppservers`, no
   * `autodiscover`).
   */
  warmUp?: boolean;
  /**
   * Work stealing (default true): nodes hold enough jobs to cover their link's round trip,
   * jobs near the end of a burst go to the node that would finish them first, and a node with
   * idle CPUs takes unstarted jobs back from one that would finish them later. `false` gives
   * the plain pull-based dispatch (for comparison, e.g. in `npm run bench -- --only sched`).
   */
  stealing?: boolean;
  /**
   * Speculative execution (default false): at the end of a burst, when CPUs idle, a job that
   * runs late on a slow node also runs on an idle one; the first result wins and is delivered
   * once, the other copy is cancelled. Off by default: a job with side effects would run
   * twice. Also per job ({@link SubmitOptions.speculative}). Jobs whose arguments went through
   * shared memory are never copied.
   */
  speculative?: boolean;
  /**
   * A live dashboard of this server in the browser (progress, nodes, task stream, events):
   * `true` serves it on 127.0.0.1:8787 (any free port if taken), a number on that port, or
   * `{ port, host, token }`. Its URL, with a random token it requires, is printed on stderr
   * once; {@link Server.dashboardUrl} gives it too. See the README, "Seeing the cluster".
   */
  dashboard?: boolean | number | DashboardOptions;
  /**
   * Largest module a job may send to nodes, bundled, in bytes (default 32 MiB). A module
   * over it is an error at submit.
   */
  maxModuleBytes?: number;
  /** The module cache this process's workers load bundled modules from; default `~/.cache/pp-node`. */
  cacheDir?: string;
  /**
   * Module specifiers that never travel: every worker, local or on a node, imports its own
   * installed copy (for packages that do not work bundled, e.g. those that read their own
   * files at run time). Default none: every module that is not Node's own travels.
   */
  installedModules?: readonly string[];
}

/** A function, or `[object, 'method']` to run a method with the object as `this`. */
export type JobFunction<A extends unknown[] = any[], R = any> =
  | ((...args: A) => R)
  | readonly [object, string];

/** Options of {@link Server.submit}. */
export interface SubmitOptions<R = unknown> {
  /** Functions and classes the job calls or instantiates; shipped with it. */
  deps?: readonly Function[];
  /** Modules the worker imports and binds by name: `'node:crypto'` → `crypto`, or `{ md5: 'md5-pkg' }`. */
  modules?: readonly ModuleSpec[];
  /** Plain values the job reads by name. */
  globals?: Readonly<Record<string, unknown>>;
  /** Called in this process as `callback(...callbackArgs, result)` when the job succeeds. */
  callback?: (...args: any[]) => void;
  /** Leading arguments of `callback`. */
  callbackArgs?: readonly unknown[];
  /** Group name for `server.wait(group)`; default `'default'`. */
  group?: string;
  /** Milliseconds the job may run once started; past it, its worker is stopped and the job rejects. */
  timeout?: number;
  /** Cancels the job, queued or running, as {@link Job.cancel} does. */
  signal?: AbortSignal;
  /** May this job run a backup copy when it runs late (see {@link ServerOptions.speculative})? Default: the server's. */
  speculative?: boolean;
  /** @internal type anchor */
  readonly __result?: R;
}

/** A node the server uses, as listed by {@link Server.getActiveNodes}. */
export type { NodeSummary } from '../stats.ts';

/** Events of {@link Server}. */
export interface ServerEvents {
  /** A job failed (emitted for every failed job; without a listener, callback-style failures are printed). */
  'job-error': [job: Job, error: unknown];
  /** A callback threw. */
  'callback-error': [job: Job, error: unknown];
  /** A remote node connected (or came back). */
  'node-up': [node: NodeSummary];
  /** A remote node went away; its unfinished jobs run elsewhere. */
  'node-down': [node: NodeSummary, reason: string];
  /** A remote node cannot be used (unreachable, wrong secret...). Printed when nobody listens. */
  'node-error': [node: NodeSummary, error: Error];
  /** LAN discovery hit a network problem (it keeps trying). Printed when nobody listens. */
  'discovery-error': [error: Error];
}

const NO_ARGS: readonly unknown[] = Object.freeze([]);
const NO_OPTIONS: SubmitOptions = Object.freeze({});
/** The options of the warm-up's made-up jobs, told apart by identity (api/warm-up.ts). */
const WARM_UP_OPTIONS: SubmitOptions = Object.freeze({});

/** A node's jobs run and their summed run time, for getStats(). */
class NodeCounters {
  jobs = 0;
  timeMs = 0.5;
  constructor() {
    // A fraction first, so that V8 stores the field as a double from the start: from a small
    // integer, the first sum would change the layout of every NodeCounters made so far, and
    // code compiled on the warm-up's counters (api/warm-up.ts) would not fit the node's.
    this.timeMs = 0;
  }
}

const DEFAULT_GROUP = 'default';

/**
 * Runs functions in parallel on this machine's CPUs.
 *
 * ```ts
 * await using server = new Server();
 * const job = server.submit(sumPrimes, [100_000], { deps: [isPrime] });
 * console.log(await job);
 * ```
 */
export class Server extends EventEmitter<ServerEvents> {
  readonly #created = performance.now();
  /** Jobs not yet settled, or still held by a node. */
  readonly #records = new LiveJobs();
  readonly #queue = new Fifo<JobRecord>();
  /** A job was submitted while the queue was taken newest first: submission order until it empties. */
  #inOrder = false;
  readonly #nodes: ComputeNode[] = [];
  readonly #local: LocalPool;
  /** Reusable memory for large arguments that no local worker reads (see transport/arena.ts). */
  #heapArena: SharedArena | null = null;
  readonly #sharedMemory: boolean;
  readonly #counters = new Map<string, NodeCounters>();
  readonly #estimates = new Map<string, DurationEstimate>();
  readonly #runTimes = new Map<string, RunTimes>();
  /** How fast each node runs each function (kept once there is more than one node). */
  readonly #speeds = new Map<ComputeNode, NodeSpeed>();
  readonly #stealing: boolean;
  /** The function of the job dispatched last: what the nodes' queued jobs most likely run. */
  #lastFn: FunctionEntry | null = null;
  /** Jobs taken back from a node by work stealing, to run elsewhere. */
  #stolen = 0;
  readonly #speculative: boolean;
  /** A job that may be copied was ever submitted. */
  #anySpeculative = false;
  /** Backup copies started, those that finished first, and the time the losing copies ran. */
  readonly #backups = { started: 0, won: 0, wastedMs: 0 };
  readonly #functions = new WeakMap<FunctionBundle, FunctionEntry>();
  readonly #modules: ModuleShipping;
  /** Jobs per group, and over all groups. */
  readonly #groups = new Map<string, Tally>();
  readonly #all = new Tally();
  readonly #refs = new Map<string, RefData>();
  /** The next id on the wire (jobs and backup copies). */
  #nextId = 1;
  /** The user's jobs submitted so far: each one's {@link Job.id} in turn. */
  #submitted = 0;
  /**
   * Where the warm-up's made-up jobs are counted instead (api/warm-up.ts): by the same code
   * as the user's jobs, so that V8 has seen all of it before they come, and in none of theirs.
   */
  readonly #warmUpCounts = { tally: new Tally(), all: new Tally(), node: new NodeCounters() };
  #drainScheduled = false;
  /**
   * Whether submit() may still hand a job to an idle CPU itself (#idleCpu) before the
   * scheduled drain runs: not once a job was held back.
   */
  #startNow = true;
  /** Inside a job's callback or a 'job-error' listener, called from #settle (they may submit). */
  #settling = 0;
  /** Inside a drain that submit() runs itself: not the end of a burst, whatever the queue says. */
  #submitDraining = false;
  readonly #jobHost = { cancel: (rec: JobRecord, reason: unknown) => this.#cancel(rec, reason) };
  #closed = false;
  #closing: Promise<void> | null = null;
  #fatal: Error | null = null;
  #browser: NodeBrowser | null = null;
  #discovered: DiscoveredNodes | null = null;
  #remote: {
    secret: Uint8Array;
    events: NodeEvents;
    listener: RemoteNodeListener;
    deadAfterMs: number;
    sizeByLink: boolean;
  } | null = null;
  #lastRejection: Error | null = null;
  #dashboard: Dashboard | null = null;

  constructor(options: ServerOptions = {}) {
    super();
    const dashboard = options.dashboard === undefined ? null : dashboardOptions(options.dashboard);
    const ppservers = (options.ppservers ?? []).filter((p) => p !== '*');
    const autodiscover = Boolean(options.autodiscover) || (options.ppservers ?? []).includes('*');
    const ncpus = options.ncpus ?? availableParallelism();
    checkNcpus(ncpus);
    const events: NodeEvents = {
      // Nodes hand back the DispatchJob objects they were given: this server's JobRecords.
      onResult: (node, job, status, durationMs, bytes, start, end) =>
        this.#onResult(node, job as Dispatched, status, durationMs, bytes, start, end),
      onJobFailed: (node, job, error) => this.#onJobFailed(node, job as Dispatched, error),
      onRequeue: (_node, jobs, stolen) => {
        if (stolen) for (const job of jobs) if (!(job instanceof BackupJob)) this.#stolen++;
        this.#onRequeue(jobs as Dispatched[]);
      },
      onCapacity: () => this.#scheduleDrain(),
    };
    this.#sharedMemory = options.sharedMemory ?? true;
    this.#stealing = options.stealing ?? true;
    this.#speculative = options.speculative ?? false;
    this.#modules = new ModuleShipping(options);
    this.#local = new LocalPool(
      {
        ncpus,
        isolation: options.isolation ?? 'process',
        maxMemoryMb: options.workerMemoryMb,
        execArgv: options.workerExecArgv,
        sharedMemory: this.#sharedMemory,
        cacheDir: this.#modules.store.cacheDir,
      },
      events,
    );
    this.#local.onFatal = (error) => this.#onNodeFatal(this.#local, error);
    this.#addNode(this.#local);
    if (ppservers.length > 0 || autodiscover) {
      const addresses = ppservers.map((spec) => parseAddress(spec));
      const { secret, source } = resolveSecret({ secret: options.secret, create: false });
      const weak = checkSecretStrength(secret, {
        allowWeak: options.allowWeakSecret,
        source,
        allowHow: 'pass `allowWeakSecret: true`',
      });
      if (weak) process.emitWarning(weak, 'PPNodeWeakSecret');
      const listener: RemoteNodeListener = {
        onUp: (node) => {
          this.#scheduleDrain();
          this.emit('node-up', this.#summarize(node));
        },
        onDown: (node, reason) => {
          this.#scheduleDrain(); // jobs that waited for it go elsewhere
          this.emit('node-down', this.#summarize(node), reason);
        },
        onProblem: (node, error) => this.#onNodeProblem(node, error),
      };
      const deadAfterMs = (options.nodeTimeout ?? 2) * 1000;
      const sizeByLink = this.#stealing;
      this.#remote = { secret, events, listener, deadAfterMs, sizeByLink };
      for (const { host, port } of addresses) {
        this.#addNode(new RemoteNode({ host, port, secret, deadAfterMs, sizeByLink }, events, listener));
      }
      if (autodiscover) this.#startDiscovery(options.interface, options.maxDiscoveredNodes);
    }
    if (dashboard)
      this.#dashboard = new Dashboard({ server: this, groups: () => this.#groups }, dashboard, this.#created);
    if ((options.warmUp ?? true) && ncpus > 0 && !this.#remote) this.#warmUpWhenReady();
  }

  /** Starts the warm-up (api/warm-up.ts) once the local workers are ready, if still idle then. */
  #warmUpWhenReady(): void {
    const host = {
      idle: () => this.#submitted === 0 && !this.#closed, // no remote nodes: see the constructor
      submit: (args: unknown[]) => this.submit(warmUp, args as [unknown], WARM_UP_OPTIONS),
    };
    // After the user's own reaction to ready() (which may submit at once): setImmediate.
    this.#local.whenReady().then(
      () => setImmediate(() => void warmUpServer(host)),
      () => {}, // the workers could not start: the user's jobs will say so
    );
  }

  /** The dashboard's URL once it is served; null without one (or if it could not start, as printed). */
  dashboardUrl(): Promise<string | null> {
    return this.#dashboard?.url() ?? Promise.resolve(null);
  }

  #startDiscovery(iface: string | undefined, maxNodes: number | undefined): void {
    const browser = new NodeBrowser({ interface: iface });
    this.#browser = browser;
    let reported = false;
    const discovered = new DiscoveredNodes(
      {
        make: (found, endpoints, expectId, dial) => this.#onDiscovered(found, endpoints, expectId, dial),
        drop: (n) => this.#dropNode(n),
      },
      maxNodes === undefined ? {} : { maxNodes },
    );
    this.#discovered = discovered;
    browser.on('up', (found) => {
      if (!this.#closed) discovered.up(found);
    });
    browser.on('down', (found) => discovered.down(found));
    browser.on('error', (error) => {
      if (this.listenerCount('discovery-error') > 0) this.emit('discovery-error', error);
      else if (!reported) {
        reported = true;
        console.warn(`pp-node: LAN discovery: ${error.message} (still trying)`);
      }
    });
    browser.start();
  }

  /** A node found on the LAN gets a place (discovered-nodes.ts decides which, and when). */
  #onDiscovered(found: DiscoveredNode, endpoints: Endpoint[], expectId: string, dial: DialGate): RemoteNode {
    const { secret, events, listener, deadAfterMs, sizeByLink } = this.#remote!;
    const label = `${found.host.replace(/\.local\.?$/, '')}:${found.port}`;
    const [first] = endpoints;
    const node = new RemoteNode(
      {
        host: first!.host,
        port: first!.port,
        endpoints,
        expectId,
        dial,
        label,
        secret,
        deadAfterMs,
        sizeByLink,
      },
      events,
      listener,
    );
    this.#addNode(node);
    return node;
  }

  /** A discovered node left (goodbye, expired records, or its place went to another): its jobs run elsewhere. */
  #dropNode(node: RemoteNode): void {
    const i = this.#nodes.indexOf(node);
    if (i >= 0) this.#nodes.splice(i, 1);
    if (this.#counters.get(node.id)?.jobs === 0 && !this.#nodes.some((n) => n.id === node.id))
      this.#counters.delete(node.id);
    void node.close();
    this.#scheduleDrain();
  }

  /** Nodes that can run jobs right now, with their CPUs (the local pool first). */
  getActiveNodes(): NodeSummary[] {
    return this.#nodes.filter((n) => n.ncpus > 0).map((n) => this.#summarize(n));
  }

  /**
   * Submits `fn(...args)` to run on a worker. Returns at once with a {@link Job}; `await job`
   * gives the result, or throws the job's own error.
   *
   * Throws before anything is sent if `fn` uses a name it does not get (pass it in `deps`,
   * `modules` or `globals`), or if an argument cannot travel.
   */
  submit<A extends unknown[], R>(
    fn: ((...args: A) => R) | readonly [object, string],
    args?: RefArgs<A>,
    options?: SubmitOptions<Awaited<R>>,
  ): Job<Awaited<R>>;
  submit(fn: JobFunction, args: readonly unknown[] = NO_ARGS, options: SubmitOptions = NO_OPTIONS): Job<any> {
    if (this.#closed) throw new ServerClosedError('submit() after close(): create a new Server');
    if (!Array.isArray(args)) {
      throw new TypeError(`submit(fn, args): args must be an array of arguments, got ${typeof args}`);
    }
    const fnEntry = this.#entryOf(fn, options);
    const bundle = fnEntry.bundle;
    if (fnEntry.modules) this.#modules.checkRunnable(fnEntry.modules, this.#nodes, bundle.name);
    const encoded = this.#captureArgs(bundle.thisArg, args, fnEntry.registry);
    let refs: RefData[] = NO_REFS;
    for (let i = 0; i < args.length; i++) {
      const arg = args[i];
      if (!(arg instanceof Ref)) continue;
      const stored = this.#refs.get(arg.id);
      if (!stored)
        throw new PPError(`submit: a Ref argument (${arg.id}) was released or made by another server`);
      if (refs === NO_REFS) refs = [];
      refs.push(stored);
    }
    const timeoutMs = options.timeout;
    if (timeoutMs !== undefined && !(timeoutMs > 0)) {
      throw new RangeError(`timeout must be a positive number of milliseconds, got ${timeoutMs}`);
    }
    const group = options.group ?? DEFAULT_GROUP;
    const warmingUp = options === WARM_UP_OPTIONS;
    let tally = warmingUp ? this.#warmUpCounts.tally : this.#groups.get(group);
    if (!tally) this.#groups.set(group, (tally = new Tally()));
    const id = this.#nextId++;
    const rec = new JobRecord(
      this.#jobHost,
      id,
      warmingUp ? 0 : ++this.#submitted,
      group,
      tally,
      fnEntry,
      encoded,
      refs,
      timeoutMs,
      options.callback,
      options.callbackArgs ?? NO_ARGS,
    );
    rec.speculative = options.speculative ?? this.#speculative;
    if (rec.speculative) this.#anySpeculative = true;
    rec.warmUp = warmingUp;
    tally.submitted();
    (warmingUp ? this.#warmUpCounts.all : this.#all).submitted();
    this.#records.add(rec);
    const job = rec.job;

    const signal = options.signal;
    if (signal) {
      if (signal.aborted) {
        this.#settle(rec, false, abortError(bundle.name, signal.reason));
        return job;
      }
      this.#cancelOnAbort(rec, signal);
    }
    const unusable = this.#whyUnusable();
    if (unusable) {
      this.#settle(rec, false, unusable);
      return job;
    }
    const queue = this.#queue;
    queue.push(rec);
    if (queue.newestFirst) {
      // Longest first no more: submission order until the queue has emptied (takeNewestFirst).
      queue.newestFirst = false;
      this.#inOrder = true;
    }
    if (queue.size === 1 && this.#startNow && this.#settling === 0 && this.#idleCpu()) {
      this.#submitDraining = true;
      try {
        this.#drain();
      } finally {
        this.#submitDraining = false;
      }
      if (queue.size > 0) this.#startNow = false;
    }
    this.#scheduleDrain();
    return job;
  }

  /**
   * A CPU idles with nothing queued for it: the job just submitted starts now, rather than
   * after the caller's loop has submitted the rest of its burst (the scheduled drain runs only
   * then: 5-15 ms later for 600 jobs here, and more for a larger burst). At most
   * one job per idle CPU: then every CPU holds a job, or one was held back (#startNow), and
   * the rest go in batches as before. Not from a callback (#settling), which runs while a
   * node's results are being taken in.
   */
  #idleCpu(): boolean {
    const nodes = this.#nodes;
    for (let i = 0; i < nodes.length; i++) if (nodes[i]!.inFlight < nodes[i]!.ncpus) return true;
    return false;
  }

  // The last plain function submitted (no deps, modules or globals) and what is known of it:
  // a loop that submits one function finds it here, without the bundle cache's lookup and the
  // spec object it takes. (getBundle gives a plain function the same bundle every time.)
  #lastPlainFn: Function | null = null;
  #lastPlainEntry: FunctionEntry | null = null;

  #entryOf(fn: JobFunction, options: SubmitOptions): FunctionEntry {
    const plain =
      options.deps === undefined && options.modules === undefined && options.globals === undefined;
    if (plain && fn === this.#lastPlainFn) return this.#lastPlainEntry!;
    const entry = this.#functionOf(
      getBundle({
        fn: fn as Function | [object, string],
        deps: options.deps,
        modules: options.modules,
        globals: options.globals,
      }),
    );
    if (plain && typeof fn === 'function') {
      this.#lastPlainFn = fn;
      this.#lastPlainEntry = entry;
    }
    return entry;
  }

  /**
   * Stores a value once on each worker and node that runs a job using it, instead of
   * copying it with every job (Dask's scatter). Pass the returned {@link Ref} as a top-level
   * argument; the job receives the value. Call {@link release} when no job needs it anymore.
   */
  put<T>(value: T): Ref<T> {
    if (this.#closed) throw new ServerClosedError('put() after close()');
    const blob = encode(value, undefined, 'value');
    const ref = new Ref<T>(randomBytes(12).toString('hex'), blob.byteLength);
    this.#refs.set(ref.id, { id: ref.id, blob });
    return ref;
  }

  /** Frees a value stored by {@link put} here and on every worker and node. */
  release(ref: Ref): void {
    if (!this.#refs.delete(ref.id)) return;
    for (const node of this.#nodes) node.release([ref.id]);
  }

  /**
   * Resolves when every job submitted so far (of `group`, if given) has finished; jobs that
   * callbacks submit meanwhile count too. With `onProgress`, reports how far the jobs are
   * while it waits:
   *
   * ```ts
   * await server.wait({ onProgress: (p) => console.log(`${p.finished}/${p.total} jobs done`) });
   * await server.wait({ progress: true }); // a progress bar on stderr, when it is a terminal
   * ```
   */
  wait(group?: string, options?: WaitOptions): Promise<void>;
  wait(options: WaitOptions): Promise<void>;
  wait(groupOrOptions?: string | WaitOptions, maybeOptions?: WaitOptions): Promise<void> {
    const group = typeof groupOrOptions === 'string' ? groupOrOptions : undefined;
    const options = typeof groupOrOptions === 'object' ? groupOrOptions : maybeOptions;
    const tally = group === undefined ? this.#all : this.#groups.get(group);
    let idle = tally ? tally.idle() : Promise.resolve();
    if (options?.progress && tally && tally.pending > 0)
      idle = drawProgress(idle, { progress: () => this.progress(group), nodes: () => this.getActiveNodes() });
    const onProgress = options?.onProgress;
    if (!onProgress) return idle;
    const every = options.progressEveryMs ?? 1000;
    if (!(every > 0)) throw new RangeError(`progressEveryMs must be a positive number, got ${every}`);
    const report = () => {
      try {
        onProgress(this.progress(group));
      } catch (error) {
        console.error('pp-node: the onProgress callback of wait() threw:', error);
      }
    };
    report();
    const timer = setInterval(report, every);
    timer.unref();
    return idle.finally(() => {
      clearInterval(timer);
      report();
    });
  }

  /** How far the current burst of jobs (of `group`, if given) is: see {@link Progress}. */
  progress(group?: string): Progress {
    const tally = group === undefined ? this.#all : this.#groups.get(group);
    return tally ? tally.progress() : { total: 0, finished: 0, failed: 0, pending: 0 };
  }

  /**
   * Resolves once every local worker has started and can run a job at once (workers start in
   * the background: jobs submitted before then simply wait for them). For benchmarks and for
   * programs whose first jobs must not wait for start-up.
   */
  ready(): Promise<void> {
    return this.#local.whenReady();
  }

  /** Number of local workers. */
  getNcpus(): number {
    return this.#local.ncpus;
  }

  /** Changes the number of local workers at runtime: grows at once, shrinks as workers finish their jobs. */
  setNcpus(ncpus: number = availableParallelism()): void {
    checkNcpus(ncpus);
    if (this.#closed) throw new ServerClosedError('setNcpus() after close()');
    this.#local.resize(ncpus);
  }

  /** Execution statistics per node (see {@link printStats}). */
  getStats(): ServerStats {
    let total = 0;
    for (const c of this.#counters.values()) total += c.jobs;
    const nodes: NodeStats[] = [];
    for (const [name, c] of this.#counters) {
      const node = this.#nodes.find((n) => n.id === name);
      nodes.push({
        node: name,
        jobs: c.jobs,
        percent: total === 0 ? 0 : (100 * c.jobs) / total,
        jobTimeSum: c.timeMs / 1000,
        timePerJob: c.jobs === 0 ? 0 : c.timeMs / 1000 / c.jobs,
        ncpus: node?.ncpus ?? 0,
        speed: (node && this.#speeds.get(node)?.relative) ?? 1,
      });
    }
    return {
      nodes,
      uptime: (performance.now() - this.#created) / 1000,
      activeJobs: this.#all.pending,
      ncpus: this.#nodes.reduce((s, n) => s + n.ncpus, 0),
      totalJobs: total,
      stolen: this.#stolen,
      backups: { ...this.#backups },
    };
  }

  /** Prints pp's job execution statistics table. */
  printStats(write: (text: string) => void = console.log): void {
    write(formatStats(this.getStats()));
  }

  /**
   * Stops the server: unfinished jobs reject with {@link ServerClosedError}, every worker
   * ends. Call `await server.wait()` first to let submitted jobs finish.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    if (this.#recheck) clearTimeout(this.#recheck);
    const error = new ServerClosedError('the server was closed before this job finished');
    for (const rec of this.#records.toArray()) this.#settle(rec, false, error);
    this.#queue.clear();
    const browser = this.#browser;
    this.#browser = null;
    this.#discovered?.close();
    const closing = [...this.#nodes.map((n) => n.close()), browser?.stop(), this.#dashboard?.close()];
    this.#closing = Promise.all(closing).then(() => {
      this.#heapArena?.close();
    });
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- internals ----

  #summarize(node: ComputeNode): NodeSummary {
    const info = node.info;
    return {
      id: node.id,
      name: info?.name ?? node.id,
      ncpus: node.ncpus,
      inFlight: node.inFlight,
      speed: this.#speeds.get(node)?.relative ?? 1,
      rttMs: node.rttMs,
      ...(info ? { version: info.version } : {}),
      ...(node instanceof RemoteNode ? { modulesSent: { ...node.modulesSent } } : {}),
    };
  }

  #addNode(node: ComputeNode): void {
    this.#nodes.push(node);
    if (!this.#counters.has(node.id)) this.#counters.set(node.id, new NodeCounters());
  }

  /**
   * Encodes a job's arguments. Large binary parts are copied once, straight into the local
   * workers' shared memory when there is room (see transport/arena.ts), else into reusable
   * memory of this process, else onto the heap.
   */
  #captureArgs(thisArg: unknown, args: readonly unknown[], registry: ClassRegistry): JobArgs {
    const small = encodeSmallArgs(thisArg, args); // a few numbers or short strings (codec/small.ts)
    if (small) return wholeArgs(small);
    const { bytes, segments } = encodeArgs(thisArg, args, registry);
    if (segments.length === 0) return wholeArgs(bytes);
    const parts = segments.map((s) => s.bytes);
    let stored = this.#local.store(parts);
    if (!stored && this.#sharedMemory) {
      const arena = (this.#heapArena ??= createHeapArena());
      const slots = arena.store(parts);
      if (slots) stored = { arena, slots };
    }
    return {
      bytes,
      splits: segments.map(({ tagAt, at }) => ({ tagAt, at })),
      copies: stored ? null : parts.map(copyBytes),
      stored,
    };
  }

  /** Drops the record of a job no node holds anymore, and its arguments' shared memory. */
  #forget(rec: JobRecord): void {
    this.#records.delete(rec);
    releaseArgs(rec.args);
  }

  /** What this server knows about a function (bundles are cached per definition). */
  #functionOf(bundle: FunctionBundle): FunctionEntry {
    let entry = this.#functions.get(bundle);
    if (!entry) {
      let estimate = this.#estimates.get(bundle.hash);
      if (!estimate) this.#estimates.set(bundle.hash, (estimate = new DurationEstimate()));
      let runTimes = this.#runTimes.get(bundle.hash);
      if (!runTimes) this.#runTimes.set(bundle.hash, (runTimes = new RunTimes()));
      const modules = this.#modules.of(bundle);
      const registry = makeClassRegistry([...bundle.classes, REF_CLASS]);
      entry = new FunctionEntry(bundle, registry, estimate, runTimes, modules);
      this.#functions.set(bundle, entry);
    }
    return entry;
  }

  // Hot paths (submit, every result) make no closures: a function that creates one allocates
  // its context on every call, even when it returns before reaching it.
  readonly #drainTask = (): void => {
    this.#drainScheduled = false;
    this.#startNow = true;
    this.#drain();
  };

  #scheduleDrain(): void {
    if (this.#drainScheduled || this.#closed) return;
    this.#drainScheduled = true;
    queueMicrotask(this.#drainTask);
  }

  #cancelOnAbort(rec: JobRecord, signal: AbortSignal): void {
    const onAbort = () => this.#cancel(rec, signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    rec.unlisten = () => signal.removeEventListener('abort', onAbort);
  }

  /**
   * Hands queued jobs to nodes as far as they have room, through the scheduler's one
   * dispatcher (scheduler/dispatcher.ts) with the placement below; with several nodes and
   * nothing queued, lets idle ones steal.
   */
  #drain(): void {
    const queue = this.#queue;
    if (queue.size === 0) this.#inOrder = false;
    else if (this.#spread()) {
      // The end of a burst of jobs that grow with submission order: longest first.
      const fn = queue.oldest()!.fn;
      const grows = fn === queue.newest()!.fn && fn.runTimes.grows;
      queue.newestFirst = takeNewestFirst(queue.size, grows, this.#inOrder);
    } else queue.newestFirst = false;
    this.#dispatcher.run(this.#nodes);
  }

  /** The dispatcher's plug-ins: this server's placement (scheduler/policy.ts) and its jobs. */
  readonly #dispatcher = new Dispatcher<JobRecord, ComputeNode>(
    this.#queue,
    {
      place: (next, queued, nodes) => this.#place(next, queued, nodes),
      // Nothing queued: steal, else copy a late job; look again while a CPU idles.
      drained: () => {
        if (!this.#spread() || this.#submitDraining) return;
        if (!this.#steal()) this.#speculate();
        this.#armRecheck(false);
      },
      // Jobs held back for a busy node that would finish them first: if it stays busy
      // longer than thought, its silence will say so; look again then.
      heldBack: () => {
        if (this.#spread()) this.#armRecheck(true);
      },
    },
    {
      gone: (rec) => rec.settled,
      // A native addon that cannot load on some node waits for another (api/modules.ts).
      runsOn: (rec, node) => rec.fn.needsRuntime === undefined || node.runtimeKey === rec.fn.needsRuntime,
      send: (node, batch) => this.#send(node, batch),
    },
  );

  /** Several nodes to balance (one, the common case of this machine alone, has no one to balance against). */
  #spread(): boolean {
    return this.#stealing && this.#nodes.length > 1;
  }

  /**
   * How many of `queued` jobs each node gets, `next` first: while many wait, its room; near
   * the end of a burst, by expected finish time (scheduler/policy.ts).
   */
  #place(next: JobRecord, queued: number, nodes: readonly ComputeNode[]): number[] {
    if (!this.#spread()) return assignJobs(queued, roomOfNodes(nodes, next.fn.estimate.value, queued));
    const loads = this.#loads(next.fn, queued, false);
    // A job only some nodes can run (a native addon) is placed among those alone: placed on a
    // node that would finish it first but cannot run it, it would wait there for ever.
    const need = next.fn.needsRuntime;
    if (need !== undefined)
      for (let i = 0; i < nodes.length; i++)
        if (nodes[i]!.runtimeKey !== need) loads[i] = { ...loads[i]!, ncpus: 0, room: 0 };
    return placeJobs(queued, loads);
  }

  /** Hands a batch placed by the dispatcher to its node. */
  #send(node: ComputeNode, batch: JobRecord[]): void {
    const spread = this.#spread();
    const now = performance.now();
    // Looked up once per function in the batch: each lookup of a fractional estimate makes a
    // new heap number, which every queued record would then keep.
    let fn: FunctionEntry | null = null;
    let ms: number | undefined;
    for (let i = 0; i < batch.length; i++) {
      const rec = batch[i]!;
      rec.node = node;
      rec.dispatchedAt = now;
      if (rec.fn !== fn) {
        fn = rec.fn;
        ms = spread ? this.#msOn(node, fn) : fn.estimate.value;
      }
      rec.estimatedMs = ms;
    }
    this.#lastFn = batch[batch.length - 1]!.fn;
    if (spread && node.inFlight === 0) this.#speedOf(node).quietSince = now;
    node.dispatch(batch);
  }

  /**
   * Nothing is queued: nodes with room take unstarted jobs from nodes that would finish them
   * later. True if it asked for any.
   */
  #steal(): boolean {
    const fn = this.#lastFn;
    if (!fn) return false;
    let any = false;
    for (const n of this.#nodes) if (n.stealable > 0) any = true;
    if (!any) return false;
    const nodes = this.#nodes;
    const counts = planSteals(this.#loads(fn, 0, true));
    let asked = 0;
    for (let i = 0; i < nodes.length; i++) if (counts[i]! > 0) asked += nodes[i]!.steal(counts[i]!);
    return asked > 0;
  }

  /**
   * Nothing is queued and nothing to steal: an idle CPU runs a backup copy of the job that runs
   * latest elsewhere, once it is late enough (backupAfterMs), one per idle CPU, fastest node
   * first; jobs not late yet are looked at again when they will be. Only at the end of a
   * burst, when few jobs are live.
   */
  #speculate(): void {
    let idleCpus = 0;
    let cpus = 0;
    for (const n of this.#nodes) {
      cpus += n.ncpus;
      idleCpus += Math.max(0, n.ncpus - n.inFlight);
    }
    if (idleCpus === 0 || this.#records.size > 2 * cpus) return;
    const now = performance.now();
    const live = this.#records.toArray();
    const fn = this.#lastFn;
    const fastestFirst = fn
      ? [...this.#nodes].sort((a, b) => (this.#msOn(a, fn) ?? 0) - (this.#msOn(b, fn) ?? 0))
      : this.#nodes;
    for (const here of fastestFirst) {
      for (let free = here.ncpus - here.inFlight; free > 0; free--) {
        let pick: JobRecord | null = null;
        let lateness = 0;
        for (const rec of live) {
          const there = rec.node;
          if (!rec.speculative || rec.settled || rec.backup || !there || there === here) continue;
          if (rec.fn.needsRuntime !== undefined && here.runtimeKey !== rec.fn.needsRuntime) continue;
          if (rec.args.stored || there.inFlight > there.ncpus) continue; // shared memory; maybe not started
          const msThere = this.#msOn(there, rec.fn);
          const after = backupAfterMs(msThere, this.#msOn(here, rec.fn), here.rttMs);
          if (after === undefined) continue;
          const elapsed = now - rec.dispatchedAt;
          if (elapsed <= after) continue;
          if (elapsed / msThere! > lateness) {
            pick = rec;
            lateness = elapsed / msThere!;
          }
        }
        if (!pick) break;
        const backup = new BackupJob(this.#nextId++, pick, here, this.#msOn(here, pick.fn));
        pick.backup = backup;
        this.#backups.started++;
        here.dispatch([backup]);
      }
    }
  }

  /**
   * While some CPU idles and another node holds jobs, nothing else may happen for a long time
   * (a slow node's jobs), yet the node's silence tells more about its speed as it lasts, and
   * jobs grow late: look again, after END_OF_BURST_RECHECK_MS at first, then less and less
   * often until a result comes. Only when that could change something: jobs are held back
   * in the queue (`heldBack`), or jobs could be stolen or copied.
   */
  #armRecheck(heldBack: boolean): void {
    if (this.#recheck || this.#closed) return;
    let idle = false;
    let holding = false;
    let stealable = false;
    for (const n of this.#nodes) {
      if (n.ncpus > n.inFlight) idle = true;
      if (n.inFlight > 0) holding = true;
      if (!heldBack && n.stealable > 0) stealable = true;
    }
    if (!idle || !holding || !(heldBack || stealable || this.#anySpeculative)) return;
    this.#recheck = setTimeout(this.#recheckTask, this.#recheckMs);
    this.#recheck.unref();
  }

  #recheck: NodeJS.Timeout | null = null;
  #recheckMs = END_OF_BURST_RECHECK_MS;
  readonly #recheckTask = (): void => {
    this.#recheck = null;
    this.#recheckMs = Math.min(MAX_RECHECK_MS, this.#recheckMs * 2);
    this.#scheduleDrain();
  };

  /**
   * A backup copy reported: true if its outcome settles the job (the original has not), and
   * then the original is cancelled. Either way the copy is gone from its node.
   */
  #backupReported(backup: BackupJob, node: ComputeNode): boolean {
    const rec = backup.primary;
    if (rec.backup !== backup || backup.node !== node) return false;
    rec.backup = null;
    if (rec.settled || !rec.live) return false;
    this.#backups.won++;
    this.#backups.wastedMs += performance.now() - rec.dispatchedAt;
    rec.node?.cancel(rec.id); // its outcome, when reported, is dropped
    return true;
  }

  /** The original settled first: its backup copy, if any, is cancelled. */
  #dropBackup(rec: JobRecord): void {
    const backup = rec.backup;
    if (!backup) return;
    rec.backup = null;
    this.#backups.wastedMs += performance.now() - backup.dispatchedAt;
    backup.node.cancel(backup.id);
  }

  /**
   * What the policy needs to know of each node, for jobs of `fn` with `queued` waiting: a node
   * may hold long jobs ahead of its CPUs only with what the others' plain room leaves waiting
   * (as roomOfNodes).
   */
  #loads(fn: FunctionEntry, queued: number, withStealable: boolean): NodeLoad[] {
    const nodes = this.#nodes;
    const now = performance.now();
    // A node that has held jobs this long without finishing any runs them at least this
    // slowly (less its link's round trip, which results wait for too): its silence can only
    // raise what was learnt, or what is assumed of a function not measured yet.
    // (How many jobs a node holds still follows what was learnt: a late result must not
    // starve a node behind a slow link of the jobs that cover its round trip.)
    const learnt = nodes.map((n) => this.#msOn(n, fn));
    const ms = nodes.map((n, i) => {
      const quiet = n.inFlight > 0 ? now - (this.#speeds.get(n)?.quietSince ?? now) - n.rttMs : 0;
      return quiet > (learnt[i] ?? UNKNOWN_MS) ? quiet : learnt[i];
    });
    const plain = nodes.map((n, i) => n.room(learnt[i], 0));
    let total = 0;
    for (const p of plain) total += p;
    return nodes.map((n, i) => ({
      ncpus: n.ncpus,
      held: n.inFlight,
      room: queued > 0 ? n.room(learnt[i], queued - (total - plain[i]!)) : plain[i]!,
      msPerJob: ms[i],
      rttMs: n.rttMs,
      stealable: withStealable ? n.stealable : 0,
      stealDelayMs: stealDelayOf(n === this.#local, n.rttMs, n.ncpus, n.inFlight, ms[i]),
      tailMs: ms[i] === undefined ? undefined : ms[i] * fn.runTimes.tailFactor,
    }));
  }

  #speedOf(node: ComputeNode): NodeSpeed {
    let speed = this.#speeds.get(node);
    if (!speed) this.#speeds.set(node, (speed = new NodeSpeed()));
    return speed;
  }

  /** Expected run time of a job of `fn` on `node`: learnt per node, else the mean over all. */
  #msOn(node: ComputeNode, fn: FunctionEntry): number | undefined {
    const mean = fn.estimate.value;
    return this.#speeds.get(node)?.msPerJob(fn.bundle.hash, mean) ?? mean;
  }

  #onResult(
    node: ComputeNode,
    job: Dispatched,
    status: JobStatus,
    durationMs: number,
    bytes: Uint8Array,
    start: number,
    end: number,
  ): void {
    this.#scheduleDrain();
    let rec: JobRecord;
    if (job instanceof BackupJob) {
      if (status === JobStatus.Cancelled || !this.#backupReported(job, node)) return;
      rec = job.primary; // the copy won: its outcome is the job's
    } else {
      rec = job;
      // Forgotten, or given to another node since (a late duplicate): drop, never deliver twice.
      if (!rec.live || rec.node !== node) return;
      this.#forget(rec);
      if (rec.settled) return; // its backup copy won, or it was cancelled
      this.#dropBackup(rec);
    }
    if (status === JobStatus.Cancelled) {
      this.#settle(rec, false, abortError(rec.name, undefined));
      return;
    }
    const nodeCounters = this.#counters.get(node.id)!;
    const counters = rec.warmUp ? this.#warmUpCounts.node : nodeCounters;
    counters.jobs++;
    counters.timeMs += durationMs;
    const dashboard = this.#dashboard;
    if (dashboard && !rec.warmUp)
      dashboard.collector.ran(node.id, rec.name, durationMs, status === JobStatus.Ok);
    if (this.#nodes.length > 1) {
      const speed = this.#speedOf(node);
      rec.fn.runTimes.add(rec.id, durationMs, speed.msPerJob(rec.hash, rec.fn.estimate.value), node.id);
      speed.add(rec.hash, durationMs, rec.fn.estimate.value);
      speed.quietSince = performance.now();
      this.#recheckMs = END_OF_BURST_RECHECK_MS;
    }
    rec.fn.estimate.add(durationMs);

    // The job is forgotten now: whatever the node sent, it must settle here, never throw.
    let ok = false;
    let outcome: unknown;
    try {
      // A number, boolean, null or undefined is read at once (codec/small.ts). A node may hold
      // the secret and still not be trusted with this process's memory (issue 13): what any
      // other result may cost to decode is tied to its size on the wire.
      let value = decodeSmall(bytes, start, end);
      if (value === NOT_SMALL) {
        const limits = node instanceof RemoteNode ? { maxHeapBytes: heapBudgetFor(end - start) } : undefined;
        value = decodeRange(bytes, start, end, rec.fn.registry, limits);
      }
      if (status === JobStatus.Ok) {
        ok = true;
        outcome = value;
      } else if (status === JobStatus.Threw) outcome = markError(value, rec, node);
      else
        outcome = new JobSetupError(`${rec.name} could not start on ${node.id}: ${messageOf(value)}`, {
          cause: value,
        });
    } catch (error) {
      outcome = new JobSetupError(
        `the outcome of ${rec.name} from ${node.id} could not be decoded: ${messageOf(error)}`,
        {
          cause: error,
        },
      );
    }
    this.#settle(rec, ok, outcome);
  }

  #onJobFailed(node: ComputeNode, rec: Dispatched, error: Error): void {
    this.#scheduleDrain();
    if (rec instanceof BackupJob) {
      // A copy that failed through no fault of the job's code (its worker died, it was
      // cancelled, it timed out): the original goes on, and the copy's time was spent for nothing.
      if (rec.primary.backup === rec) {
        rec.primary.backup = null;
        this.#backups.wastedMs += performance.now() - rec.dispatchedAt;
      }
      return;
    }
    // As for results: only the node that holds the job may fail it.
    if (!rec.live || rec.node !== node) return;
    this.#forget(rec);
    this.#dropBackup(rec);
    this.#settle(rec, false, error);
  }

  /** Jobs a node gave back unstarted go to the front of the queue, in their order. */
  #onRequeue(jobs: Dispatched[]): void {
    const back: JobRecord[] = [];
    for (const rec of jobs) {
      if (rec instanceof BackupJob) {
        // A copy that never started: the original still runs.
        if (rec.primary.backup === rec) rec.primary.backup = null;
        continue;
      }
      if (!rec.live) continue;
      if (rec.settled) {
        this.#forget(rec);
        continue;
      }
      rec.node = null;
      back.push(rec);
    }
    this.#queue.unshiftAll(back);
    this.#scheduleDrain();
  }

  #onNodeProblem(node: RemoteNode, error: Error): void {
    this.#dashboard?.collector.nodeError(node.id, error);
    if (this.listenerCount('node-error') > 0) this.emit('node-error', this.#summarize(node), error);
    else console.warn(`pp-node: ${error.message}`);
    if (!(error instanceof NodeRejectedError)) return;
    this.#lastRejection = error;
    // Nothing left that could ever run the queued jobs: fail them rather than wait forever.
    const unusable = this.#whyUnusable();
    if (unusable)
      for (const rec of this.#records.toArray()) if (rec.node === null) this.#settle(rec, false, unusable);
  }

  /** Why no job can ever run here (every node failed for good), or null. */
  #whyUnusable(): Error | null {
    if (this.#browser) return null; // nodes may still appear
    // An indexed loop, not some(callback) or for-of: this runs on every submit.
    const nodes = this.#nodes;
    for (let i = 0; i < nodes.length; i++) if (nodes[i]!.usable) return null;
    return this.#lastRejection ?? this.#fatal ?? null;
  }

  #onNodeFatal(node: ComputeNode, error: Error): void {
    const i = this.#nodes.indexOf(node);
    if (i >= 0) this.#nodes.splice(i, 1);
    this.#fatal = error;
    if (this.#nodes.length > 0) return;
    for (const rec of this.#records.toArray()) this.#settle(rec, false, error);
  }

  #cancel(rec: JobRecord, reason: unknown): void {
    if (!rec.live || rec.settled) return;
    this.#dropBackup(rec);
    if (rec.node)
      rec.node.cancel(rec.id); // its outcome, when reported, is dropped
    else this.#forget(rec);
    this.#settle(rec, false, abortError(rec.name, reason));
  }

  #settle(rec: JobRecord, ok: boolean, value: unknown): void {
    if (rec.settled) return;
    rec.settled = true;
    if (rec.node === null) this.#forget(rec);
    rec.unlisten?.();
    rec.job._settle(ok, value);
    // The user's code, which may submit, runs here (#settling); a promise's reactions run later.
    if (ok && rec.callback) {
      this.#settling++;
      try {
        rec.callback(...rec.callbackArgs, value);
      } catch (error) {
        if (this.listenerCount('callback-error') > 0) this.emit('callback-error', rec.job, error);
        else console.error(`pp-node: the callback of job #${rec.job.id} (${rec.job.name}) threw:`, error);
      } finally {
        this.#settling--;
      }
    }
    if (!ok && !rec.warmUp) {
      this.#settling++;
      try {
        this.#dashboard?.collector.failed(rec.job.id, rec.name, rec.node?.id ?? null, value);
        if (this.listenerCount('job-error') > 0) this.emit('job-error', rec.job, value);
        else if (rec.callback && !rec.job.observed && !this.#closed) {
          // Callback style: nobody will await this job, so say it failed rather than stay silent.
          console.error(`pp-node: job #${rec.job.id} (${rec.job.name}) failed:`, value);
        }
      } finally {
        this.#settling--;
      }
    }
    rec.tally.settled(ok);
    (rec.warmUp ? this.#warmUpCounts.all : this.#all).settled(ok);
  }
}

const NO_REFS: RefData[] = Object.freeze([]) as unknown as RefData[];

/** What nodes report back: this server's job records, or backup copies of them. */
type Dispatched = JobRecord | BackupJob;

function checkNcpus(n: number): void {
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(`ncpus must be a whole number >= 0 (0 = no local workers), got ${n}`);
  }
}

/**
 * A copy, in pieces of 64 KiB: allocations that size come from malloc's heap, larger ones
 * from a fresh mmap each (page faults on every write). The pieces are only ever written out
 * one after another (sealed, or written to a worker's pipe), never read as one buffer.
 * (Buffer.from would copy a typed array element by element: slower still.)
 */
function copyBytes(bytes: Uint8Array): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < bytes.byteLength; at += COPY_PIECE_BYTES) {
    const piece = bytes.subarray(at, at + COPY_PIECE_BYTES);
    const copy = Buffer.allocUnsafeSlow(piece.byteLength);
    copy.set(piece);
    pieces.push(copy);
  }
  return pieces;
}
const COPY_PIECE_BYTES = 64 * 1024;

/** Encodes `[thisArg, args]`; on failure, says which argument cannot travel. */
function encodeArgs(
  thisArg: unknown,
  args: readonly unknown[],
  registry: ClassRegistry,
): ReturnType<typeof encodeSplit> {
  try {
    return encodeSplit([thisArg, args], registry, 'job');
  } catch (error) {
    // Re-encode the parts alone so the error path reads args[0].x rather than job[1][0].x.
    encode(args, registry, 'args');
    encode(thisArg, registry, 'this');
    throw error;
  }
}

/** Always an AbortError (JobCancelledError), whatever the reason; the reason is its `cause`, as in Node and piscina. */
function abortError(name: string, reason: unknown): Error {
  return new JobCancelledError(`${name} was cancelled`, reason === undefined ? undefined : { cause: reason });
}

/** A decoded value's message; never throws (a null-prototype object has no toString). */
function messageOf(value: unknown): string {
  if (value instanceof Error) return String(value.message);
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/** Marks a job's own error with where it ran, keeping its class, name, message and stack. */
function markError(value: unknown, rec: JobRecord, node: ComputeNode): unknown {
  if (value instanceof Error) {
    Object.defineProperty(value, 'job', {
      value: { id: rec.job.id, name: rec.name, node: node.id },
      enumerable: false,
      configurable: true,
    });
    if (typeof value.stack === 'string') {
      value.stack += `\n    at job #${rec.job.id} ${rec.name} on node '${node.id}'`;
    }
  }
  return value;
}
