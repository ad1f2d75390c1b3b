/**
 * The commonest message from a server to its workers, a 'run' of jobs whose arguments are
 * one buffer each, written straight into one frame: no message object, no entry array per
 * job, no second copy. For tiny jobs, building and encoding the general message cost about
 * as much as running the job.
 *
 * The bytes are exactly those of `joinFrame(encodeMessage(runMessage(jobs, slots)), true)`
 * (transport/frames.ts), so the worker reads it as any other message; the tests compare both.
 */
import { FRAME_HEADER_BYTES, writeU32BE } from '../transport/frames.ts';
import { FIXARRAY, FIXSTR, NUMBER_MAX_BYTES as NUMBER_MAX, T_ARRAY } from './codec/format.ts';
import { encodeStringList } from './codec/small.ts';
import { encode, writeNumberAt } from './codec.ts';
import { HEAD_LENGTH_BYTES } from './messages.ts';

/** A job as {@link writeRunFrame} needs it. */
export interface RunFrameJob {
  readonly id: number;
  readonly hash: string;
}

// Codec bytes (protocol/codec/format.ts) of the head ['run', entries, fns, slots?, blobLengths].
const RUN = [FIXSTR | 3, ...Buffer.from('run', 'latin1')]; // 'run' as a short Latin-1 string
/** Frame length and head length go in front of the head, once known. */
const PREFIX = FRAME_HEADER_BYTES + HEAD_LENGTH_BYTES;
const ENTRY_HEAD = FIXARRAY | 4; // [id, fn, timeout, refs]
const NO_TIMEOUT = 0;
const NO_REFS = FIXARRAY; // an empty array

let scratch = Buffer.allocUnsafeSlow(16 * 1024);

/**
 * The message that runs `jobs`, job i with arguments `blobs[i]` and, if given, arena slots
 * `slots[i]` (offset, length pairs), behind a frame length header if `withHeader` (for a
 * stream; a thread's messages need none). The worker needs no timeouts (the pool enforces
 * them) and no ref ids, so none are written. The result owns all of its memory, so it may be
 * transferred to a worker thread.
 */
export function writeRunFrame(
  jobs: readonly RunFrameJob[],
  blobs: readonly Uint8Array[],
  slots: ReadonlyArray<readonly number[]> | undefined,
  withHeader: boolean,
): Buffer {
  const n = jobs.length;
  // Distinct functions in order of first use: almost always one, so a list beats a Map.
  const fns: string[] = [];
  let slotNumbers = 0;
  if (slots) for (const s of slots) slotNumbers += s.length;
  const fnBytes = encodeFnList(jobs, fns);
  const worst =
    64 + fnBytes.byteLength + n * (6 + 3 * NUMBER_MAX) + (slots ? n * 6 + slotNumbers * NUMBER_MAX : 0);
  if (scratch.byteLength < worst) scratch = Buffer.allocUnsafeSlow(Math.max(worst, scratch.byteLength * 2));
  const b = scratch;

  // Head, after the prefix (frame length and head length go in front once known).
  let p = PREFIX;
  b[p++] = fnBytes[0]!; // CODEC_VERSION
  b[p++] = FIXARRAY | (slots ? 5 : 4);
  for (const c of RUN) b[p++] = c;
  p = writeLength(b, p, n);
  // Small numbers (a function's index, a short blob's length) written in place: the commonest
  // case costs no call, which counts while V8 still interprets this (a fresh process).
  const oneFn = fns.length === 1;
  for (let i = 0; i < n; i++) {
    const job = jobs[i]!;
    b[p++] = ENTRY_HEAD;
    p = writeNumberAt(b, p, job.id);
    if (oneFn) b[p++] = 0;
    else p = writeNumberAt(b, p, fnIndex(fns, job.hash));
    b[p++] = NO_TIMEOUT;
    b[p++] = NO_REFS;
  }
  for (let i = 1; i < fnBytes.byteLength; i++) b[p++] = fnBytes[i]!;
  if (slots) {
    p = writeLength(b, p, n);
    for (let i = 0; i < n; i++) {
      const s = slots[i]!;
      p = writeLength(b, p, s.length);
      for (const x of s) p = writeNumberAt(b, p, x);
    }
  }
  p = writeLength(b, p, n);
  let body = 0;
  for (let i = 0; i < n; i++) {
    const len = blobs[i]!.byteLength;
    body += len;
    if (len < 0x80) b[p++] = len;
    else p = writeNumberAt(b, p, len);
  }
  const headLen = p - PREFIX;
  writeU32BE(b, 0, HEAD_LENGTH_BYTES + headLen + body);
  writeU32BE(b, FRAME_HEADER_BYTES, headLen);

  const from = withHeader ? 0 : FRAME_HEADER_BYTES;
  const out = Buffer.allocUnsafeSlow(p - from + body);
  out.set(new Uint8Array(b.buffer, from, p - from));
  p -= from;
  for (let i = 0; i < n; i++) {
    const blob = blobs[i]!;
    const len = blob.byteLength;
    if (len <= 16) for (let k = 0; k < len; k++) out[p + k] = blob[k]!;
    else out.set(blob, p);
    p += len;
  }
  return out;
}

/** The codec encoding of the batch's distinct function hashes (fills `fns`). */
function encodeFnList(jobs: readonly RunFrameJob[], fns: string[]): Buffer {
  let last: string | undefined;
  for (let i = 0; i < jobs.length; i++) {
    const hash = jobs[i]!.hash;
    if (hash !== last && !fns.includes(hash)) fns.push(hash);
    last = hash;
  }
  return encodeStringList(fns) ?? encode(fns);
}

function fnIndex(fns: readonly string[], hash: string): number {
  if (fns[0] === hash) return 0;
  return fns.indexOf(hash);
}

/** An array header of `len` items, as the codec writes it. */
function writeLength(b: Uint8Array, p: number, len: number): number {
  if (len < 16) {
    b[p] = FIXARRAY | len;
    return p + 1;
  }
  b[p++] = T_ARRAY;
  while (len >= 0x80) {
    b[p++] = (len & 0x7f) | 0x80;
    len = Math.floor(len / 128);
  }
  b[p++] = len;
  return p;
}
