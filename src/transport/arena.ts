/**
 * Shared memory between the job server and its local workers, for large arguments.
 *
 * Through the worker's socket a 1 MiB argument is copied five times (into the message, into
 * the kernel, out in 64 KiB reads, reassembled, out of the message) and caps the pool near
 * 1 GB/s. Through the arena it is copied twice, as with worker threads' structured clone:
 * once in at submit (which also freezes the value, as submit promises), once out by the
 * worker, into memory the job then owns.
 *
 * - Worker processes: a file in /dev/shm (RAM), unlinked as soon as it is open, so nothing
 *   is left behind even after a crash; its descriptor is inherited as fd 4 and read with
 *   pread. Node has no mmap, so this is the closest thing to shared memory between processes.
 * - Worker threads: a SharedArrayBuffer, handed over in workerData.
 *
 * Space is handed out in order and reclaimed when the oldest slots are freed (jobs finish
 * about in order). When it is full, or there is no /dev/shm, arguments travel in the message
 * as before: the arena only ever makes things faster.
 */

import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  openSync,
  readSync,
  statfsSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

/** A stored part: where it is and how long it is. */
export interface ArenaSlot {
  readonly offset: number;
  readonly length: number;
}

/** Most jobs that share one stored part (see SharedArena.store). */
export const MAX_SHARERS = 64;
/** Most space an arena takes. */
export const ARENA_BYTES = 256 * 1024 * 1024;
/** Less room than this is not worth an arena. */
const MIN_ARENA_BYTES = 16 * 1024 * 1024;
const ALIGN = 64;
/**
 * How long an arena must sit empty before it gives its memory back. Not short: touching the
 * pages again costs a page fault each (in a VM, 200 MiB took ~100 ms), and a workload that
 * pauses for a few seconds of long jobs between bursts of big ones would pay it every time.
 */
export const SHRINK_AFTER_MS = 30_000;

/**
 * Hands out byte ranges of [0, capacity) in order, wrapping around; a range is reusable once
 * it and every range handed out before it are freed. Pure bookkeeping, tested alone.
 */
export class RingAllocator {
  private head = 0; // start of the oldest live block
  private tail = 0; // where the next block goes
  private readonly live: Block[] = [];
  private first = 0; // index of the oldest live block in `live`
  private readonly byStart = new Map<number, Block>();

  constructor(readonly capacity: number) {}

  /** Bytes in live blocks and in blocks waiting for older ones to be freed. */
  get used(): number {
    if (this.byStart.size === 0) return 0;
    return this.tail > this.head ? this.tail - this.head : this.capacity - this.head + this.tail;
  }

  /** Start of a new block of `length` bytes, or -1 if there is no room. */
  alloc(length: number): number {
    const n = Math.ceil(Math.max(length, 1) / ALIGN) * ALIGN;
    let start: number;
    if (this.byStart.size === 0 || this.tail > this.head) {
      if (this.capacity - this.tail >= n) start = this.tail;
      else if (this.head >= n)
        start = 0; // wrap; the end of the ring stays unused this lap
      else return -1;
    } else if (this.head - this.tail >= n) {
      start = this.tail;
    } else {
      return -1;
    }
    this.tail = start + n;
    const block = { start, end: start + n, freed: false };
    this.live.push(block);
    this.byStart.set(start, block);
    return start;
  }

  free(start: number): void {
    const block = this.byStart.get(start);
    if (!block || block.freed) return;
    block.freed = true;
    const live = this.live;
    // Reclaim from the old end (the usual case: jobs finish about in order)...
    while (this.first < live.length && live[this.first]!.freed)
      this.byStart.delete(live[this.first++]!.start);
    // ...and from the new end (a job given back right after it was stored).
    while (live.length > this.first && live[live.length - 1]!.freed) this.byStart.delete(live.pop()!.start);
    if (this.first === live.length) {
      live.length = 0;
      this.first = 0;
      this.head = this.tail = 0;
      return;
    }
    this.head = live[this.first]!.start;
    this.tail = live[live.length - 1]!.end;
    if (this.first > 1024) {
      live.splice(0, this.first);
      this.first = 0;
    }
  }
}

/** A slot with its bookkeeping: where its bytes came from, and who still needs them. */
interface StoredPart extends ArenaSlot {
  /** Offset of the copied bytes in their source memory. */
  readonly sourceOffset: number;
  /** Jobs that have not freed it yet; its ring space is freed at 0. */
  holders: number;
  /** Jobs that were ever given it. */
  sharers: number;
  /** Its bytes on this process's heap, while it is shared (file arenas: compared without a read). */
  copy?: Buffer | undefined;
}

interface Block {
  start: number;
  end: number;
  freed: boolean;
}

/** What a worker needs to read an arena: a file descriptor (processes) or the memory (threads). */
export type ArenaHandle = { kind: 'file'; fd: number } | { kind: 'memory'; buffer: SharedArrayBuffer };

/** The server's side: stores parts, frees them, and reads them back for jobs that go elsewhere. */
export abstract class SharedArena {
  protected readonly ring: RingAllocator;
  private closed = false;

  protected constructor(
    capacity: number,
    private readonly shrinkAfterMs = SHRINK_AFTER_MS,
  ) {
    this.ring = new RingAllocator(capacity);
  }

  /** What workers need to read it; null for an arena only this process reads (HeapArena). */
  abstract readonly handle: ArenaHandle | null;
  protected abstract write(bytes: Uint8Array, offset: number): void;
  /** The bytes of a stored part, for sending elsewhere; valid until the slot is freed. */
  abstract read(slot: ArenaSlot): Uint8Array;
  protected abstract release(): void;
  /** Gives the memory of an empty arena back to the system (where it can). */
  protected shrink(): void {}
  private shrinkTimer: NodeJS.Timeout | null = null;

  /**
   * Copies each part into a slot: all of them, or none (null) when there is no room.
   *
   * A part whose memory was stored for an earlier job and still holds the same bytes shares
   * that job's slot instead (the same data sent with many jobs, as in a parameter sweep):
   * comparing costs a read where a copy costs a write to memory no cache holds, and 1,000
   * jobs of one 100 MiB array take 100 MiB of arena, not 100 GB. Each worker still gets its
   * own copy. A slot is shared by at most {@link MAX_SHARERS} jobs, so that one long-lived
   * part cannot hold the ring's space behind it forever.
   */
  store(parts: readonly Uint8Array[]): ArenaSlot[] | null {
    if (this.closed) return null;
    const slots: StoredPart[] = [];
    const shared: StoredPart[] = [];
    // All or none: a failure takes back what this call gave, shares included.
    const undo = (): null => {
      for (const slot of shared) slot.sharers--;
      this.free(slots);
      return null;
    };
    for (const part of parts) {
      const earlier = this.storedFrom.get(part.buffer);
      if (
        earlier !== undefined &&
        earlier.holders > 0 &&
        earlier.sharers < MAX_SHARERS &&
        earlier.sourceOffset === part.byteOffset &&
        earlier.length === part.byteLength &&
        this.holds(earlier, Buffer.from(part.buffer, part.byteOffset, part.byteLength))
      ) {
        earlier.holders++;
        earlier.sharers++;
        slots.push(earlier);
        shared.push(earlier);
        continue;
      }
      const offset = this.ring.alloc(part.byteLength);
      if (offset < 0) return undo();
      const slot: StoredPart = {
        offset,
        length: part.byteLength,
        sourceOffset: part.byteOffset,
        holders: 1,
        sharers: 1,
      };
      slots.push(slot);
      try {
        this.write(part, offset);
      } catch {
        return undo(); // e.g. /dev/shm is full: the message carries the parts instead
      }
      this.storedFrom.set(part.buffer, slot);
    }
    return slots;
  }

  /** The latest part stored from each source memory (see {@link store}). */
  private readonly storedFrom = new WeakMap<ArrayBufferLike, StoredPart>();

  /** Whether a stored part still holds exactly these bytes. */
  protected abstract holds(slot: StoredPart, bytes: Buffer): boolean;

  free(slots: readonly ArenaSlot[]): void {
    for (const s of slots) {
      const slot = s as StoredPart;
      if (--slot.holders === 0) {
        slot.copy = undefined;
        this.ring.free(slot.offset);
      }
    }
    // Idle and empty for a while: let the pages go rather than keep the high-water mark.
    if (this.ring.used === 0 && slots.length > 0 && !this.shrinkTimer && !this.closed) {
      this.shrinkTimer = setTimeout(() => {
        this.shrinkTimer = null;
        if (this.ring.used === 0 && !this.closed) this.shrink();
      }, this.shrinkAfterMs);
      this.shrinkTimer.unref();
    }
  }

  get used(): number {
    return this.ring.used;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.shrinkTimer) clearTimeout(this.shrinkTimer);
    this.release();
  }
}

class FileArena extends SharedArena {
  readonly handle: ArenaHandle;

  constructor(
    private readonly fd: number,
    capacity: number,
    shrinkAfterMs?: number,
  ) {
    super(capacity, shrinkAfterMs);
    this.handle = { kind: 'file', fd };
  }

  protected write(bytes: Uint8Array, offset: number): void {
    let done = 0;
    while (done < bytes.byteLength) {
      done += writeSync(this.fd, bytes, done, bytes.byteLength - done, offset + done);
    }
  }

  read(slot: ArenaSlot): Uint8Array {
    return new Uint8Array(readFile(this.fd, slot.offset, slot.length));
  }

  private comparePiece: Buffer | null = null;

  protected holds(slot: StoredPart, bytes: Buffer): boolean {
    if (slot.copy) return slot.copy.equals(bytes);
    // Read once, piece by piece, so that a changed part costs little: the first piece into
    // scratch memory, the rest (once the first matched) into a copy that later jobs compare
    // with while the slot is shared (not for very large parts).
    const piece = (this.comparePiece ??= Buffer.allocUnsafeSlow(COMPARE_PIECE_BYTES));
    let keep: Buffer | null = null;
    for (let at = 0; at < slot.length; at += COMPARE_PIECE_BYTES) {
      const n = Math.min(COMPARE_PIECE_BYTES, slot.length - at);
      const into = keep ? at : 0;
      const target = keep ?? piece;
      if (readAt(this.fd, target, into, n, slot.offset + at) < n) return false;
      if (target.compare(bytes, at, at + n, into, into + n) !== 0) return false;
      if (at === 0 && slot.length <= KEEP_COPY_BYTES) {
        keep = Buffer.allocUnsafeSlow(slot.length);
        piece.copy(keep, 0, 0, n);
      }
    }
    if (keep) slot.copy = keep;
    return true;
  }

  protected override shrink(): void {
    ftruncateSync(this.fd, 0); // a tmpfs file's pages are its memory
  }

  protected release(): void {
    closeSync(this.fd);
  }
}

class MemoryArena extends SharedArena {
  readonly handle: ArenaHandle;

  constructor(private readonly memory: SharedArrayBuffer) {
    super(memory.byteLength);
    this.handle = { kind: 'memory', buffer: memory };
  }

  protected write(bytes: Uint8Array, offset: number): void {
    new Uint8Array(this.memory, offset, bytes.byteLength).set(bytes);
  }

  read(slot: ArenaSlot): Uint8Array {
    return new Uint8Array(readMemory(this.memory, slot.offset, slot.length));
  }

  protected holds(slot: StoredPart, bytes: Buffer): boolean {
    return Buffer.from(this.memory, slot.offset, slot.length).equals(bytes);
  }

  // A SharedArrayBuffer cannot give pages back: a thread pool keeps the high-water mark of
  // its arena (at most ARENA_BYTES) until it closes.
  protected release(): void {}
}

/**
 * Reusable memory for parts that no local worker reads (jobs bound for remote nodes, or the
 * local arena is full). Not shared, so it can be dropped when idle. Its point is the
 * garbage collector: a fresh 1 MiB copy per job makes V8 run a full collection every few
 * dozen MiB (external memory), which on a client with a large heap costs more than the copy.
 */
class HeapArena extends SharedArena {
  readonly handle = null;
  private memory: ArrayBuffer | null = null;

  constructor(capacity: number, shrinkAfterMs?: number) {
    super(capacity, shrinkAfterMs);
  }

  protected write(bytes: Uint8Array, offset: number): void {
    // Untouched pages of a large ArrayBuffer cost nothing until written.
    this.memory ??= new ArrayBuffer(this.ring.capacity);
    new Uint8Array(this.memory, offset, bytes.byteLength).set(bytes);
  }

  protected holds(slot: StoredPart, bytes: Buffer): boolean {
    return Buffer.from(this.memory!, slot.offset, slot.length).equals(bytes);
  }

  /** A view, not a copy: the caller sends it before the job can finish and free the slot. */
  read(slot: ArenaSlot): Uint8Array {
    return new Uint8Array(this.memory!, slot.offset, slot.length);
  }

  protected override shrink(): void {
    this.memory = null;
  }

  protected release(): void {
    this.shrink();
  }
}

/** An arena that only this process reads (see HeapArena). */
export function createHeapArena(capacity = ARENA_BYTES, shrinkAfterMs?: number): SharedArena {
  return new HeapArena(capacity, shrinkAfterMs);
}

const SHM_DIR = '/dev/shm';
/** Bytes of a file arena read and compared at a time. */
const COMPARE_PIECE_BYTES = 256 * 1024;
/** Largest shared part of a file arena whose bytes are also kept on the heap. */
const KEEP_COPY_BYTES = 16 * 1024 * 1024;

/**
 * An arena for worker processes: null where there is no RAM-backed /dev/shm (macOS, Windows)
 * or too little room in it (a container's 64 MiB default), so the pool goes without.
 */
export function createFileArena(dir = SHM_DIR, shrinkAfterMs?: number): SharedArena | null {
  try {
    if (!existsSync(dir)) return null;
    const fs = statfsSync(dir);
    const capacity = Math.min(ARENA_BYTES, Math.floor((fs.bavail * fs.bsize) / 4 / ALIGN) * ALIGN);
    if (capacity < MIN_ARENA_BYTES) return null;
    const path = join(dir, `pp-node-${process.pid}-${randomBytes(6).toString('hex')}`);
    const fd = openSync(path, 'wx+', 0o600);
    unlinkSync(path);
    return new FileArena(fd, capacity, shrinkAfterMs);
  } catch {
    return null;
  }
}

/** An arena for worker threads. */
export function createMemoryArena(capacity = ARENA_BYTES): SharedArena {
  // Untouched pages of a large SharedArrayBuffer cost no memory: they are mapped on first write.
  return new MemoryArena(new SharedArrayBuffer(capacity));
}

/** The worker's side: reads a slot into a fresh ArrayBuffer, which the job's value then owns. */
export function arenaReader(handle: ArenaHandle): (offset: number, length: number) => ArrayBuffer {
  if (handle.kind === 'file') return (offset, length) => readFile(handle.fd, offset, length);
  return (offset, length) => readMemory(handle.buffer, offset, length);
}

function readFile(fd: number, offset: number, length: number): ArrayBuffer {
  const out = Buffer.allocUnsafeSlow(length);
  const done = readAt(fd, out, 0, length, offset);
  if (done < length)
    throw new Error(`shared arena: slot at ${offset} ends early (${done} of ${length} bytes)`);
  return out.buffer as ArrayBuffer;
}

/** Reads `length` bytes at `position` of the file into `into[at...]`; fewer only at its end. */
function readAt(fd: number, into: Uint8Array, at: number, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, into, at + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

function readMemory(memory: SharedArrayBuffer, offset: number, length: number): ArrayBuffer {
  const out = Buffer.allocUnsafeSlow(length);
  out.set(new Uint8Array(memory, offset, length));
  return out.buffer as ArrayBuffer;
}
