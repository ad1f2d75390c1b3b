/**
 * Messages between the job server and its workers (local processes or threads; the remote
 * node protocol reuses the job and result records). A message is a codec-encoded head
 * followed by opaque blobs (each job's encoded arguments, each result's encoded value), so
 * that large payloads are copied into the frame once and never re-encoded:
 *
 *   [u32 head length][head][blob 0][blob 1]...
 *
 * The blobs are encoded with the job's own class registry, which the worker only knows after
 * compiling the job's function; keeping them outside the head lets it decode them later.
 */
import { decode, encode } from './codec.ts';

/** What a worker needs to compile a function once; sent the first time a worker sees its hash. */
export interface FunctionDefinition {
  hash: string;
  name: string;
  code: string;
  bindings: string[];
  modules: Array<[binding: string, specifier: string]>;
  /** Encoded with the codec (plain values only). */
  globals: Record<string, unknown>;
}

export const JobStatus = {
  Ok: 0,
  /** The job's function threw or rejected: blob = the error. */
  Threw: 1,
  /** The job could not start (compile error, module failed to load, arguments failed to decode). */
  SetupFailed: 2,
  /** Cancelled before it started. */
  Cancelled: 3,
} as const;
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];

export type ToWorker =
  | { type: 'define'; defs: FunctionDefinition[] }
  /** jobs: [jobId, hash]; blob i = encoded [thisArg, args] of job i. */
  | { type: 'run'; jobs: Array<[id: number, hash: string]>; blobs: Uint8Array[] }
  | { type: 'cancel'; ids: number[] }
  | { type: 'shutdown' };

export type FromWorker =
  | { type: 'ready'; pid: number }
  /** results: [jobId, status, durationMs]; blob i = encoded value or error of result i. */
  | { type: 'done'; results: Array<[id: number, status: JobStatus, durationMs: number]>; blobs: Uint8Array[] };

type Message = ToWorker | FromWorker;

/** Encodes a message into parts (head length + head + blobs), ready for a frame. */
export function encodeMessage(msg: Message): Uint8Array[] {
  let head: unknown;
  let blobs: Uint8Array[] = [];
  switch (msg.type) {
    case 'run':
      blobs = msg.blobs;
      head = ['run', msg.jobs, blobs.map((b) => b.byteLength)];
      break;
    case 'done':
      blobs = msg.blobs;
      head = ['done', msg.results, blobs.map((b) => b.byteLength)];
      break;
    case 'define':
      head = ['define', msg.defs];
      break;
    case 'cancel':
      head = ['cancel', msg.ids];
      break;
    case 'ready':
      head = ['ready', msg.pid];
      break;
    case 'shutdown':
      head = ['shutdown'];
      break;
  }
  const headBytes = encode(head);
  const prefix = Buffer.allocUnsafe(4);
  prefix.writeUInt32BE(headBytes.byteLength, 0);
  return [prefix, headBytes, ...blobs];
}

export class MessageError extends Error {
  override name = 'MessageError';
}

/** Decodes one frame's payload; blobs are views into `frame` (no copy). */
export function decodeMessage(frame: Buffer): Message {
  if (frame.length < 4) throw new MessageError('message shorter than its head length');
  const headLen = frame.readUInt32BE(0);
  if (headLen > frame.length - 4) throw new MessageError('message head runs past the frame');
  const head = decode(frame.subarray(4, 4 + headLen)) as unknown[];
  if (!Array.isArray(head) || typeof head[0] !== 'string') throw new MessageError('message head is not [type, ...]');
  const blobsFrom = (lengths: unknown): Uint8Array[] => {
    if (!Array.isArray(lengths)) throw new MessageError('blob lengths missing');
    const out: Uint8Array[] = [];
    let pos = 4 + headLen;
    for (const len of lengths) {
      if (typeof len !== 'number' || len < 0 || pos + len > frame.length) throw new MessageError('blob runs past the frame');
      out.push(frame.subarray(pos, pos + len));
      pos += len;
    }
    if (pos !== frame.length) throw new MessageError('trailing bytes after the last blob');
    return out;
  };
  switch (head[0]) {
    case 'run':
      return { type: 'run', jobs: head[1] as Array<[number, string]>, blobs: blobsFrom(head[2]) };
    case 'done':
      return { type: 'done', results: head[1] as Array<[number, JobStatus, number]>, blobs: blobsFrom(head[2]) };
    case 'define':
      return { type: 'define', defs: head[1] as FunctionDefinition[] };
    case 'cancel':
      return { type: 'cancel', ids: head[1] as number[] };
    case 'ready':
      return { type: 'ready', pid: head[1] as number };
    case 'shutdown':
      return { type: 'shutdown' };
    default:
      throw new MessageError(`unknown message type ${JSON.stringify(head[0])}`);
  }
}
