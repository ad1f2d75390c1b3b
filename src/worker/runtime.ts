/**
 * The job runtime inside a worker (a child process or a worker thread; remote nodes run the
 * same runtime). It keeps compiled functions by content hash, so repeated jobs of one
 * function are compiled once, and runs the jobs it is sent strictly one after another, in
 * order. Strict order is what lets the server tell, when a worker dies, which job was
 * running (the oldest one without a result) and which never started (all later ones).
 *
 * Each result is written to the channel as soon as its job ends, and the next job starts only
 * once the result has left this process (a full socket holds it back until it drains), so a
 * hard crash (segfault, out of memory, process.exit) cannot swallow the results of finished
 * jobs, whose jobs the server would then run again.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type CompiledFunction, compileBundle, moduleExportValue } from '../functions/compile.ts';
import { defaultCacheDir, PackStore } from '../modules/store.ts';
import { decodeSmallArgs, encodeSmallInto } from '../protocol/codec/small.ts';
import {
  type ClassRegistry,
  decode,
  encode,
  encodeInto,
  makeClassRegistry,
  type SegmentSource,
} from '../protocol/codec.ts';
import {
  decodeMessage,
  encodeMessage,
  type FunctionDefinition,
  JobStatus,
  type Message,
  receivedBlob,
} from '../protocol/messages.ts';
import { REF_CLASS, Ref } from '../protocol/ref.ts';
import { RESULT_HEAD_ROOM, writeResultHead } from '../protocol/result-frame.ts';

/** How the runtime talks to its server: whole messages in, message parts out. */
export interface WorkerChannel {
  send(parts: Uint8Array[]): void;
  /**
   * Sends one whole frame, header included: `buf[start, end)`. The runtime reuses `buf` as
   * soon as this returns, so the channel writes or copies it now.
   */
  sendFrame(buf: Uint8Array, start: number, end: number): void;
  /**
   * Resolves once everything sent so far is out of this process (a crash can no longer lose
   * it); undefined if it already is. A channel whose messages leave at once needs none.
   */
  flushed?(): Promise<void> | undefined;
  /**
   * Reads now, into {@link WorkerRuntime.receive}, whatever the server has sent that has
   * arrived: between two jobs, the next job or a cancel is seen without a turn of the event
   * loop. A channel that cannot read synchronously has none; its messages are read when the
   * event loop turns.
   */
  poll?(): void;
}

/** Reads `length` bytes at `offset` of the server's shared arena into a fresh ArrayBuffer. */
export type ArenaRead = (offset: number, length: number) => ArrayBuffer;

interface QueuedJob {
  id: number;
  hash: string;
  blob: Uint8Array;
  /** (offset, length) pairs of the job's split parts in the arena. */
  slots: readonly number[] | undefined;
}

interface Ready {
  compiled: CompiledFunction;
  registry: ClassRegistry;
}
interface Failed {
  error: unknown;
}
type CacheEntry = Ready | Failed | Promise<Ready | Failed>;

/**
 * Longest a worker runs queued jobs back to back without reading its messages. A job
 * cancelled while it waits here must be seen cancelled before it starts, and messages are
 * read only when the event loop turns: after a job of a millisecond or more, it turns once
 * (a few microseconds) before the next job starts. A channel that reads synchronously
 * (WorkerChannel.poll) reads them instead, after every such job and whenever the queue runs
 * empty, and the loop turns only every {@link TURN_LOOP_EVERY_MS}.
 */
const READ_MESSAGES_EVERY_MS = 1;

/**
 * Longest a worker whose channel reads synchronously runs jobs back to back without a turn of
 * the event loop, where a job's own timers and I/O (a previous job's, left running) get their
 * turn. A turn after a job that slept or waited costs 0.1-0.3 ms: once per job, 1-2% of
 * 20 ms jobs.
 */
const TURN_LOOP_EVERY_MS = 50;

/** Resolves after the event loop has polled for input: two turns, as an immediate queued in
 * the check phase of the turn in progress runs before that turn's poll. */
function afterNextPoll(): Promise<void> {
  return new Promise((resolve) => setImmediate(setImmediate, resolve));
}

/** Compiled functions kept per worker; old ones are dropped first when it fills. */
const MAX_CACHED_FUNCTIONS = 1000;
/** Results up to this size are framed in one reused buffer; larger ones take the general path. */
const RESULT_SCRATCH_BYTES = 64 * 1024;

export class WorkerRuntime {
  private readonly definitions = new Map<string, FunctionDefinition>();
  /** Why definitions this worker was sent could not be read, by hash (see refused()). */
  private readonly unreadable = new Map<string, Error>();
  private readonly cache = new Map<string, CacheEntry>();
  private readonly queue: QueuedJob[] = [];
  private queueHead = 0;
  private readonly cancelled = new Set<number>();
  /** Values stored by server.put: the bytes, and the value once a job has decoded it. */
  private readonly refs = new Map<string, { blob: Uint8Array; value?: unknown; decoded: boolean }>();
  private pumping = false;
  /** Inside {@link receiveAll}: jobs wait until the whole chunk is read. */
  private reading = 0;
  /** Id of the job whose (async) function is running, for attributing stray errors. */
  private currentJob: { id: number; fail: (error: unknown) => void } | null = null;
  /** Where small results are framed (see protocol/result-frame.ts). */
  private readonly resultScratch = Buffer.allocUnsafeSlow(RESULT_SCRATCH_BYTES);

  constructor(
    private readonly channel: WorkerChannel,
    private readonly arena?: ArenaRead,
  ) {}

  /**
   * Handles one message frame from the server. Throws only when the message cannot be read at
   * all: then the worker cannot know which jobs it lost, and must be replaced (see entry.ts).
   */
  receive(frame: Buffer): void {
    let msg: Message;
    try {
      msg = decodeMessage(frame);
    } catch (error) {
      this.refused(frame, error as Error);
      return;
    }
    switch (msg.type) {
      case 'define':
        for (const def of msg.defs) {
          this.definitions.set(def.hash, def);
          this.unreadable.delete(def.hash);
          this.cache.delete(def.hash);
        }
        break;
      case 'run':
        for (let i = 0; i < msg.jobs.length; i++) {
          const [id, fn] = msg.jobs[i]!;
          const slots = msg.slots?.[i];
          this.queue.push({
            id,
            hash: msg.fns[fn]!,
            blob: receivedBlob(msg.blobs[i]!),
            slots: slots && slots.length > 0 ? slots : undefined,
          });
        }
        this.pump();
        break;
      case 'put':
        // Copy: the blob is a view into a frame we do not want to keep alive whole.
        msg.refs.forEach((ref, i) => {
          this.refs.set(ref, { blob: Uint8Array.prototype.slice.call(msg.blobs[i]!), decoded: false });
        });
        break;
      case 'release':
        for (const ref of msg.refs) this.refs.delete(ref);
        break;
      case 'cancel':
        for (const id of msg.ids) this.cancelled.add(id);
        break;
      case 'withdraw':
        this.withdraw(new Set(msg.ids));
        break;
      case 'shutdown':
        process.exit(0);
        break;
      default:
        throw new Error(`worker got an unexpected '${msg.type}' message`);
    }
  }

  /**
   * A message whose head broke the head limits (protocol/messages.ts HEAD_LIMITS; submit checks
   * them, so this takes a sender that did not). Read again within the codec's own limits, it
   * tells what it was about, and that is failed rather than dropped: a definition's jobs fail
   * as they come, a run's jobs at once. Unreadable even so, it is rethrown.
   */
  private refused(frame: Buffer, error: Error): void {
    let msg: Message;
    try {
      msg = decodeMessage(frame, {});
    } catch {
      throw error;
    }
    const why = `the worker could not read the '${msg.type}' message it was sent: ${error.message}`;
    if (msg.type === 'define') {
      for (const def of msg.defs) {
        this.definitions.delete(def.hash);
        this.cache.delete(def.hash);
        this.unreadable.set(def.hash, new Error(why));
      }
    } else if (msg.type === 'run') {
      const failure = encodeError(new Error(why), undefined);
      for (const [id] of msg.jobs) this.reply(id, JobStatus.SetupFailed, 0, failure);
    } else throw error;
  }

  /** Called for errors thrown outside any call stack of ours (timers, stray promises). */
  strayError(error: unknown): boolean {
    if (!this.currentJob) return false;
    this.currentJob.fail(error);
    return true;
  }

  /**
   * Gives back the jobs among `ids` that have not started. Messages are read only between
   * jobs, so the queue holds exactly the unstarted ones; those that ran answer as usual.
   */
  private withdraw(ids: Set<number>): void {
    const back: number[] = [];
    const kept: QueuedJob[] = [];
    for (let i = this.queueHead; i < this.queue.length; i++) {
      const job = this.queue[i]!;
      if (ids.has(job.id)) back.push(job.id);
      else kept.push(job);
    }
    if (back.length === 0) return;
    this.queue.length = 0;
    this.queue.push(...kept);
    this.queueHead = 0;
    this.channel.send(encodeMessage({ type: 'requeue', ids: back }));
  }

  /**
   * Reads several messages (`read` hands them to {@link receive}) before any of their jobs
   * starts: a channel passes each chunk it reads through here, so that no job runs while its
   * frame reader is still in the middle of that chunk (a job's end reads the channel again,
   * WorkerChannel.poll, and those bytes must come after the rest of the chunk).
   */
  receiveAll(read: () => void): void {
    this.reading++;
    try {
      read();
    } finally {
      if (--this.reading === 0 && this.queueHead < this.queue.length) this.pump();
    }
  }

  private pump(): void {
    if (this.pumping || this.reading > 0) return;
    this.pumping = true;
    void this.drain();
  }

  private async drain(): Promise<void> {
    // The flag is cleared synchronously when no job awaited, so a run message handled right
    // after this one (same chunk) starts a new drain instead of finding pumping still set.
    try {
      const channel = this.channel;
      let lastRead = performance.now(); // a message just came in
      let lastTurn = lastRead;
      for (;;) {
        // The next job may have arrived while the last one ran.
        if (this.queueHead >= this.queue.length) {
          channel.poll?.();
          if (this.queueHead >= this.queue.length) break;
          lastRead = performance.now();
        }
        // The results so far must be safe from a crash in the next job (see the top).
        const flushing = channel.flushed?.();
        if (flushing) {
          await flushing;
          lastRead = lastTurn = performance.now();
        }
        const now = performance.now();
        if (now - lastRead >= READ_MESSAGES_EVERY_MS) {
          // A cancel sent while the last job ran (see the constant).
          if (channel.poll && now - lastTurn < TURN_LOOP_EVERY_MS) channel.poll();
          else {
            await afterNextPoll();
            lastTurn = performance.now();
          }
          lastRead = performance.now();
        }
        if (this.queueHead >= this.queue.length) break; // withdrawn while we waited
        const job = this.queue[this.queueHead]!;
        this.queue[this.queueHead++] = undefined as never;
        if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
          this.queue.splice(0, this.queueHead);
          this.queueHead = 0;
        }
        let entry = this.lookup(job.hash);
        if (entry instanceof Promise) entry = await entry;
        if (this.cancelled.delete(job.id)) {
          this.reply(job.id, JobStatus.Cancelled, 0, encode(undefined));
          continue;
        }
        if ('error' in entry) {
          this.reply(job.id, JobStatus.SetupFailed, 0, encodeError(entry.error, undefined));
          continue;
        }
        const pending = this.run(job, entry);
        if (pending) await pending;
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Runs one job; returns a promise only when the function is async. */
  private run(job: QueuedJob, entry: Ready): Promise<void> | undefined {
    const id = job.id;
    let thisArg: unknown;
    let args: unknown[];
    try {
      const source = job.slots ? this.segmentSource(job.slots) : undefined;
      [thisArg, args] =
        decodeSmallArgs(job.blob) ??
        (decode(job.blob, entry.registry, undefined, source) as [unknown, unknown[]]);
      for (let i = 0; i < args.length; i++)
        if (args[i] instanceof Ref) args[i] = this.refValue(args[i] as Ref, entry);
    } catch (error) {
      this.reply(id, JobStatus.SetupFailed, 0, encodeError(error, entry.registry));
      return undefined;
    }
    const start = performance.now();
    let value: unknown;
    try {
      value = entry.compiled.entry.apply(thisArg, args);
    } catch (error) {
      this.reply(id, JobStatus.Threw, performance.now() - start, encodeError(error, entry.registry));
      return undefined;
    }
    if (
      value === null ||
      typeof value !== 'object' ||
      typeof (value as PromiseLike<unknown>).then !== 'function'
    ) {
      this.replyValue(id, performance.now() - start, value, entry);
      return undefined;
    }
    return new Promise<void>((resolve) => {
      let settled = false;
      const settle = (ok: boolean, v: unknown) => {
        if (settled) return;
        settled = true;
        this.currentJob = null;
        if (ok) this.replyValue(id, performance.now() - start, v, entry);
        else this.reply(id, JobStatus.Threw, performance.now() - start, encodeError(v, entry.registry));
        resolve();
      };
      this.currentJob = { id, fail: (e) => settle(false, e) };
      (value as PromiseLike<unknown>).then(
        (v) => settle(true, v),
        (e) => settle(false, e),
      );
    });
  }

  /** The job's split parts, read from the arena one by one as the decoder reaches them. */
  private segmentSource(slots: readonly number[]): SegmentSource {
    const read = this.arena;
    if (!read) throw new Error('the job has parts in shared memory, but this worker has no arena');
    let next = 0;
    return (length) => {
      if (next >= slots.length || slots[next + 1] !== length)
        throw new Error('the job’s shared-memory parts do not match its arguments: protocol error');
      const offset = slots[next]!;
      next += 2;
      return read(offset, length);
    };
  }

  private refValue(ref: Ref, entry: Ready): unknown {
    const stored = this.refs.get(ref.id);
    if (!stored)
      throw new Error(
        `${entry.compiled.name} got a Ref (${ref.id}) this worker does not hold: was it released?`,
      );
    if (!stored.decoded) {
      stored.value = decode(stored.blob, entry.registry);
      stored.decoded = true;
    }
    return stored.value;
  }

  private replyValue(id: number, ms: number, value: unknown, entry: Ready): void {
    let bytes: Buffer;
    try {
      const out = this.resultScratch;
      const end =
        encodeSmallInto(value, out, RESULT_HEAD_ROOM) ??
        encodeInto(value, entry.registry, 'result', out, RESULT_HEAD_ROOM, true);
      if (typeof end === 'number') {
        const start = writeResultHead(out, RESULT_HEAD_ROOM, end, id, JobStatus.Ok, ms);
        this.channel.sendFrame(out, start, end);
        return;
      }
      bytes = end; // too large for the scratch: the general path
    } catch (error) {
      const wrapped = new TypeError(
        `the result of ${entry.compiled.name} cannot travel back: ${(error as Error).message}`,
      );
      this.reply(id, JobStatus.Threw, ms, encodeError(wrapped, entry.registry));
      return;
    }
    this.reply(id, JobStatus.Ok, ms, bytes);
  }

  private reply(id: number, status: JobStatus, ms: number, blob: Uint8Array): void {
    this.channel.send(encodeMessage({ type: 'done', results: [[id, status, ms]], blobs: [blob] }));
  }

  private lookup(hash: string): CacheEntry {
    const hit = this.cache.get(hash);
    if (hit) return hit;
    const def = this.definitions.get(hash);
    if (!def)
      return {
        error:
          this.unreadable.get(hash) ??
          new Error(`worker has no definition for function ${hash}: protocol error`),
      };
    const made = compileDefinition(def);
    this.cache.set(hash, made);
    if (made instanceof Promise) void made.then((done) => this.cache.set(hash, done));
    if (this.cache.size > MAX_CACHED_FUNCTIONS) {
      const oldest = this.cache.keys().next().value as string;
      this.cache.delete(oldest);
    }
    return made;
  }
}

function compileDefinition(def: FunctionDefinition): Ready | Failed | Promise<Ready | Failed> {
  const finish = (modules: Record<string, unknown>): Ready | Failed => {
    try {
      const compiled = compileBundle(def, { ...modules, ...def.globals });
      return { compiled, registry: makeClassRegistry([...compiled.classes, REF_CLASS]) };
    } catch (error) {
      return { error };
    }
  };
  if (def.modules.length === 0) return finish({});
  return Promise.all(
    def.modules.map(([binding, spec], i) => {
      const pack = def.packages?.[i];
      return (pack ? loadPack(pack, spec, def.name) : loadModule(spec, def.name)).then((v) => [binding, v]);
    }),
  ).then(
    (pairs) => finish(Object.fromEntries(pairs)),
    (error: unknown) => ({ error }),
  );
}

/**
 * Imports a module for a job. Bare specifiers resolve first as usual (from pp-node's own
 * location, which finds the user's node_modules when pp-node is installed there), then from
 * the worker's working directory, so a package installed only in the user's project loads too.
 */
async function loadModule(specifier: string, fnName: string): Promise<unknown> {
  try {
    return moduleExportValue(await import(specifier));
  } catch (first) {
    try {
      const resolved = createRequire(join(process.cwd(), 'noop.js')).resolve(specifier);
      return moduleExportValue(await import(pathToFileURL(resolved).href));
    } catch {
      const reason = (first as Error).message;
      throw new Error(`${fnName} needs module '${specifier}', which the worker cannot load: ${reason}`);
    }
  }
}

let packStore: PackStore | undefined;
/** Packs imported by this worker, by hash: verified once. */
const loadedPacks = new Map<string, Promise<unknown>>();

/**
 * Imports a module that travelled as a pack (modules/pack.ts) from the module cache, checked
 * against its hash first (modules/store.ts). The pack's default export is the module's namespace.
 */
function loadPack(hash: string, specifier: string, fnName: string): Promise<unknown> {
  let loading = loadedPacks.get(hash);
  if (!loading) {
    loading = (async () => {
      packStore ??= new PackStore(process.env.PP_NODE_CACHE_DIR || defaultCacheDir());
      const url = packStore.verifiedEntry(hash);
      const ns = (await import(url)) as { default: object };
      return moduleExportValue(ns.default);
    })();
    loadedPacks.set(hash, loading);
    loading.catch(() => loadedPacks.delete(hash));
  }
  return loading.catch((error: unknown) => {
    throw new Error(
      `${fnName} needs module '${specifier}', which the worker cannot load: ${(error as Error).message}`,
    );
  });
}

/** Encodes a thrown value for the trip back; values that cannot travel become an Error. */
function encodeError(error: unknown, registry: ClassRegistry | undefined): Buffer {
  try {
    return encode(error, registry, 'error');
  } catch {
    const e = new Error(String(error));
    if (error instanceof Error) {
      e.name = error.name;
      e.stack = error.stack;
    }
    return encode(e);
  }
}
