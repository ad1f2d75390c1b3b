/**
 * The commonest message between a server and its workers, a 'done' with one result, written
 * and read without building a message object. A worker sends one such frame per job, before
 * the next job starts, so that a crash cannot swallow finished results (worker/runtime.ts):
 * for tiny jobs its cost is the cost of a job.
 *
 * The bytes are exactly those of `encodeMessage({ type: 'done', results: [[id, status, ms]],
 * blobs: [blob] })` behind a frame header (transport/frames.ts), so either side may use the
 * general path instead; the tests check both ways.
 */
import { FRAME_HEADER_BYTES, readU32BE, writeU32BE } from '../transport/frames.ts';
import { FIXARRAY, FIXSTR } from './codec/format.ts';
import { CODEC_VERSION, numberEnd, readNumberAt, writeNumberAt } from './codec.ts';
import { HEAD_LENGTH_BYTES, isJobStatus, type JobStatus } from './messages.ts';

/** Bytes to leave before a result's encoded value for {@link writeResultHead}. */
export const RESULT_HEAD_ROOM = 48;

// The head is the codec encoding (protocol/codec/format.ts) of ['done', [[id, status, ms]], [blobLength]].
const FIXARRAY_1 = FIXARRAY | 1;
const FIXARRAY_3 = FIXARRAY | 3;
const DONE = [FIXSTR | 4, ...Buffer.from('done', 'latin1')]; // 'done' as a short Latin-1 string
const HEAD_START = [CODEC_VERSION, FIXARRAY_3, ...DONE, FIXARRAY_1, FIXARRAY_3];
/** Frame length and head length, in front of the head. */
const PREFIX = FRAME_HEADER_BYTES + HEAD_LENGTH_BYTES;

const scratch = new Uint8Array(RESULT_HEAD_ROOM);

/**
 * Writes the frame header and message head of a one-result 'done' frame just before its
 * encoded value, which lies in `buf` from `blobStart` (at least RESULT_HEAD_ROOM) to
 * `blobEnd`. Returns where the frame starts; the frame is `buf[start, blobEnd)`.
 */
export function writeResultHead(
  buf: Uint8Array,
  blobStart: number,
  blobEnd: number,
  id: number,
  status: JobStatus,
  durationMs: number,
): number {
  let n = 0;
  for (const b of HEAD_START) scratch[n++] = b;
  n = writeNumberAt(scratch, n, id);
  n = writeNumberAt(scratch, n, status);
  n = writeNumberAt(scratch, n, durationMs);
  scratch[n++] = FIXARRAY_1;
  n = writeNumberAt(scratch, n, blobEnd - blobStart);
  const start = blobStart - PREFIX - n;
  writeU32BE(buf, start, blobEnd - start - FRAME_HEADER_BYTES); // frame payload
  writeU32BE(buf, start + FRAME_HEADER_BYTES, n); // message head
  const at = start + PREFIX;
  for (let i = 0; i < n; i++) buf[at + i] = scratch[i]!; // a few bytes: no view needed
  return start;
}

/** A result read by {@link readResult}; its value's bytes are `bytes[blobStart, end)`. */
export interface ResultView {
  id: number;
  status: JobStatus;
  durationMs: number;
  blobStart: number;
}

/**
 * Reads a frame payload (without the frame header), `frame[start, end)`, that is a 'done'
 * message with one result. Returns false for any other message, and for anything malformed:
 * the caller then hands the frame to decodeMessage, which says what is wrong.
 */
export function readResult(frame: Uint8Array, out: ResultView, start = 0, end = frame.byteLength): boolean {
  if (end - start < HEAD_LENGTH_BYTES + HEAD_START.length) return false;
  const headLen = readU32BE(frame, start);
  const headEnd = start + HEAD_LENGTH_BYTES + headLen;
  if (headEnd > end) return false;
  for (let i = 0; i < HEAD_START.length; i++)
    if (frame[start + HEAD_LENGTH_BYTES + i] !== HEAD_START[i]) return false;
  let pos = start + HEAD_LENGTH_BYTES + HEAD_START.length;
  const id = readNumberAt(frame, pos, headEnd);
  if (id === undefined) return false;
  const status = readNumberAt(frame, numberEnd.pos, headEnd);
  if (status === undefined) return false;
  const durationMs = readNumberAt(frame, numberEnd.pos, headEnd);
  if (durationMs === undefined) return false;
  pos = numberEnd.pos;
  if (frame[pos] !== FIXARRAY_1) return false;
  const length = readNumberAt(frame, pos + 1, headEnd);
  if (length === undefined || numberEnd.pos !== headEnd || headEnd + length !== end) return false;
  if (!Number.isSafeInteger(id) || id < 0 || !isJobStatus(status)) return false;
  if (!Number.isFinite(durationMs)) return false;
  out.id = id;
  out.status = status;
  out.durationMs = durationMs;
  out.blobStart = headEnd;
  return true;
}
