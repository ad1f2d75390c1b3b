/**
 * Length-prefixed frames over a byte stream (the socket pair between the server and a worker
 * process): `[u32 big-endian length][payload]`. The reader copies a frame at most once: small
 * frames that lie whole inside one chunk are handed out as views, large frames are assembled
 * into one buffer allocated at their announced size.
 */

export const FRAME_HEADER_BYTES = 4;

/** Prefix for a frame of `payloadBytes`. */
export function frameHeader(payloadBytes: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32BE(payloadBytes, 0);
  return header;
}

/** One buffer holding header + parts (exclusively owning its memory, so it can be transferred). */
export function joinFrame(parts: readonly Uint8Array[], withHeader: boolean): Buffer {
  let size = withHeader ? FRAME_HEADER_BYTES : 0;
  for (const p of parts) size += p.byteLength;
  const out = Buffer.allocUnsafeSlow(size);
  let offset = 0;
  if (withHeader) {
    out.writeUInt32BE(size - FRAME_HEADER_BYTES, 0);
    offset = FRAME_HEADER_BYTES;
  }
  for (const p of parts) {
    out.set(p, offset);
    offset += p.byteLength;
  }
  return out;
}

/**
 * Writes one frame to a stream socket. Small frames are joined and written once; large ones
 * go as a single writev (header + parts) without copying the parts. `written` is called once
 * the whole frame has been handed to the kernel.
 */
export function writeFrame(
  socket: { write(b: Uint8Array, cb?: () => void): boolean; cork(): void; uncork(): void },
  parts: readonly Uint8Array[],
  written?: () => void,
): void {
  let size = 0;
  for (const p of parts) size += p.byteLength;
  if (size < 65536) {
    socket.write(joinFrame(parts, true), written);
    return;
  }
  socket.cork();
  socket.write(frameHeader(size));
  for (let i = 0; i < parts.length; i++)
    socket.write(parts[i]!, i === parts.length - 1 ? written : undefined);
  socket.uncork();
}

export class FrameTooLargeError extends Error {
  override name = 'FrameTooLargeError';
}

/**
 * Incremental frame parser: feed it chunks, it calls `onFrame` for each complete frame, which
 * is `bytes[start, end)`: a range of the chunk when it lies whole inside one (no copy, and no
 * view object either: for tiny jobs, one per result showed in the GC profile).
 */
export class FrameReader {
  private pending: Buffer | null = null; // partial header bytes or a large frame being filled
  private filled = 0;
  private expected = -1; // payload size of the frame being assembled, -1 while reading a header

  constructor(
    private readonly onFrame: (bytes: Buffer, start: number, end: number) => void,
    private readonly maxFrameBytes = 2 ** 31 - 1,
  ) {}

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.expected < 0) {
        // Read (the rest of) a header.
        if (this.pending === null && chunk.length - pos >= FRAME_HEADER_BYTES) {
          // Not Buffer#readUInt32BE: its argument checks run once per frame (per result).
          this.expected = readU32BE(chunk, pos);
          pos += FRAME_HEADER_BYTES;
        } else {
          if (this.pending === null) {
            this.pending = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
            this.filled = 0;
          }
          const take = Math.min(FRAME_HEADER_BYTES - this.filled, chunk.length - pos);
          chunk.copy(this.pending, this.filled, pos, pos + take);
          this.filled += take;
          pos += take;
          if (this.filled < FRAME_HEADER_BYTES) return;
          this.expected = this.pending.readUInt32BE(0);
          this.pending = null;
        }
        if (this.expected > this.maxFrameBytes) {
          throw new FrameTooLargeError(
            `frame of ${this.expected} bytes exceeds the limit of ${this.maxFrameBytes}`,
          );
        }
        this.filled = 0;
      }
      const size = this.expected;
      if (this.pending === null && chunk.length - pos >= size) {
        // Whole frame inside this chunk: hand out its range, no copy.
        const start = pos;
        pos += size;
        this.expected = -1;
        this.onFrame(chunk, start, pos);
        continue;
      }
      if (this.pending === null) {
        this.pending = Buffer.allocUnsafeSlow(size);
        this.filled = 0;
      }
      const take = Math.min(size - this.filled, chunk.length - pos);
      chunk.copy(this.pending, this.filled, pos, pos + take);
      this.filled += take;
      pos += take;
      if (this.filled === size) {
        const frame = this.pending;
        this.pending = null;
        this.expected = -1;
        this.onFrame(frame, 0, size);
      }
    }
  }
}

/** Writes a frame length (or any length of the same form: 4 bytes, big-endian) at `at`. */
export function writeU32BE(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = v >>> 16;
  b[at + 2] = v >>> 8;
  b[at + 3] = v;
}

/** Reads a length written by {@link writeU32BE}. */
export function readU32BE(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}
