/**
 * Messages of the job protocol: between the job server and its local workers, and (inside
 * the encrypted channel) between a client and a remote `pp-node`. A message is a
 * codec-encoded head followed by opaque blobs (each job's encoded arguments, each result's
 * encoded value), so large payloads are copied into a frame once and never re-encoded:
 *
 *   [u32 head length][head][blob 0][blob 1]...
 *
 * The head is `[type, ...fields, blobLengths]`, the fields of each type in the order of
 * {@link MESSAGE_FIELDS}, the one table that encodeMessage and decodeMessage both follow.
 *
 * Blobs are encoded with the job's own class registry, which the receiver only knows after
 * compiling the job's function; keeping them outside the head lets it decode them later.
 * Heads from the network are checked field by field: a peer that sends a wrong shape gets a
 * MessageError, never a crash deeper in.
 */
import { writeU32BE } from '../transport/frames.ts';
import { CodecError, type DecodeLimits, decode, encode } from './codec.ts';

/** Bytes of the head length in front of every message (big-endian, as frame lengths). */
export const HEAD_LENGTH_BYTES = 4;

/** What a worker needs to compile a function once; sent the first time it sees the hash. */
export interface FunctionDefinition {
  hash: string;
  name: string;
  code: string;
  bindings: string[];
  modules: Array<[binding: string, specifier: string]>;
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
/** The highest JobStatus: the statuses are the integers 0..JOB_STATUS_MAX. */
export const JOB_STATUS_MAX = Math.max(...Object.values(JobStatus)) as JobStatus;

/** Whether `v` is a JobStatus (an integer in 0..JOB_STATUS_MAX). */
export function isJobStatus(v: unknown): v is JobStatus {
  return typeof v === 'number' && v >= 0 && v <= JOB_STATUS_MAX && (v | 0) === v;
}

/**
 * A job in a run message: id, index of its function's hash in the message's `fns`, its
 * timeout in ms (0: none) and the Refs it uses. Hashes are listed once per message, not per
 * job: a batch of tiny jobs of one function would otherwise be mostly hashes.
 */
export type RunEntry = [id: number, fn: number, timeoutMs: number, refs: string[]];
/** A result: job id, status, run time in ms. */
export type ResultEntry = [id: number, status: JobStatus, durationMs: number];

/** Facts a node tells a client after authentication. */
export interface NodeInfo {
  id: string;
  name: string;
  ncpus: number;
  version: string;
  protocol: number;
}

export type Message =
  // server → worker / client → node
  | { type: 'define'; defs: FunctionDefinition[] }
  /**
   * blob i = encoded [thisArg, args] of job i (as one or several parts). Between a server and
   * its own workers only, `slots[i]` lists (offset, length) pairs of job i's split parts in
   * the shared arena (nodes/arena.ts); a message from the network never has them.
   */
  | { type: 'run'; fns: string[]; jobs: RunEntry[]; blobs: BlobParts[]; slots?: number[][] }
  | { type: 'cancel'; ids: number[] }
  /**
   * Give these jobs back if they have not started. A worker answers with 'requeue' (only if it
   * gave some back); a node (protocol 2+) always answers with 'withdrawn'.
   */
  | { type: 'withdraw'; ids: number[] }
  /** Values stored once per worker/node (server.put), by random id; blob i = encoded value i. */
  | { type: 'put'; refs: string[]; blobs: Uint8Array[] }
  | { type: 'release'; refs: string[] }
  | { type: 'shutdown' }
  // worker → server / node → client
  | { type: 'ready'; pid: number }
  /** blob i = encoded value or error of result i. */
  | { type: 'done'; results: ResultEntry[]; blobs: Uint8Array[] }
  // node ↔ client only
  | { type: 'welcome'; info: NodeInfo }
  /** Jobs given back unstarted: by a node shutting down, or by a worker asked to withdraw them. */
  | { type: 'requeue'; ids: number[] }
  /** A node's answer to 'withdraw': the jobs it gave up (maybe none); it runs the others. */
  | { type: 'withdrawn'; ids: number[] }
  /** Jobs that failed through no fault of their code (worker crash, timeout); blob i = the error. */
  | { type: 'failed'; ids: number[]; blobs: Uint8Array[] }
  | { type: 'ping'; t: number }
  | { type: 'pong'; t: number }
  | { type: 'ncpus'; ncpus: number }
  | { type: 'bye'; reason: string };

/** A blob as one buffer or as parts to be sent one after another (no copy to join them). */
export type BlobParts = Uint8Array | readonly Uint8Array[];

/** A blob of a decoded message: always one buffer, a view into the frame. */
export function receivedBlob(b: BlobParts): Uint8Array {
  if (!(b instanceof Uint8Array)) throw new TypeError('expected a received blob');
  return b;
}

/** A run message for these jobs (their function hashes listed once). */
export function runMessage(
  jobs: ReadonlyArray<{
    id: number;
    hash: string;
    timeoutMs?: number | undefined;
    refs?: ReadonlyArray<{ id: string }>;
    blob: BlobParts;
  }>,
  slots?: number[][],
): Message {
  const fns: string[] = [];
  const index = new Map<string, number>();
  const entries: RunEntry[] = [];
  const blobs: BlobParts[] = [];
  for (const j of jobs) {
    let fn = index.get(j.hash);
    if (fn === undefined) {
      fn = fns.push(j.hash) - 1;
      index.set(j.hash, fn);
    }
    entries.push([
      j.id,
      fn,
      j.timeoutMs ?? 0,
      // A fresh empty list, not a shared one: the codec would write a shared one as a
      // back-reference, and protocol/run-frame.ts writes these bytes without tracking objects.
      j.refs && j.refs.length > 0 ? j.refs.map((r) => r.id) : [],
    ]);
    blobs.push(j.blob);
  }
  return slots
    ? { type: 'run', fns, jobs: entries, blobs, slots }
    : { type: 'run', fns, jobs: entries, blobs };
}

/** Encodes a message into parts (head length + head + blobs), ready to be framed or sealed. */
export function encodeMessage(msg: Message): Uint8Array[] {
  const spec: FieldSpec = MESSAGE_FIELDS[msg.type];
  const fields = msg as unknown as Record<string, unknown>;
  const head: unknown[] = [msg.type];
  for (const [name] of spec.fields) head.push(fields[name]);
  if (spec.optional && fields[spec.optional[0]] !== undefined) head.push(fields[spec.optional[0]]);
  const blobs = spec.blobs ? (fields.blobs as readonly BlobParts[]) : [];
  const lengths: number[] = [];
  const parts: Uint8Array[] = [];
  for (const b of blobs) {
    if (b instanceof Uint8Array) {
      lengths.push(b.byteLength);
      parts.push(b);
    } else {
      let n = 0;
      for (const p of b) {
        n += p.byteLength;
        parts.push(p);
      }
      lengths.push(n);
    }
  }
  head.push(lengths);
  const headBytes = encode(head);
  const prefix = Buffer.allocUnsafe(HEAD_LENGTH_BYTES);
  writeU32BE(prefix, 0, headBytes.byteLength);
  return [prefix, headBytes, ...parts];
}

export class MessageError extends Error {
  override name = 'MessageError';
}

/**
 * Limits for heads that come from the network (they hold ids, hashes and definitions). Every
 * receiver decodes heads with them, workers included; a definition's globals travel in a head,
 * so they are what bounds globals (see {@link definitionProblem}).
 */
export const HEAD_LIMITS: Readonly<Required<Omit<DecodeLimits, 'maxBytes'>>> = Object.freeze({
  maxDepth: 16,
  maxItems: 1_000_000,
});

/**
 * Levels of a 'define' head above the values of a definition's globals: the head, its list of
 * definitions, the definition, the globals object. A global may nest this many levels fewer
 * than {@link HEAD_LIMITS} allows (only used to say so: the check itself decodes the head).
 */
const DEFINE_LEVELS_ABOVE_GLOBALS = 4;

/** How deep a value in a definition's globals may nest (a global that is a number: 0 levels). */
export const GLOBALS_MAX_DEPTH = HEAD_LIMITS.maxDepth - DEFINE_LEVELS_ABOVE_GLOBALS;

/** Why a definition cannot be sent: its 'define' head breaks {@link HEAD_LIMITS}. */
export interface DefinitionProblem {
  /** Nested too deep, or holds too many values. */
  limit: 'depth' | 'items';
  /** Where the decoder gave up, from the definition: `globals.table.rows[3]`. */
  path: string;
  /** The decoder's error. */
  error: CodecError;
}

/**
 * Why a receiver would refuse the head of the 'define' message that carries `def` alone, or
 * null. The head is encoded and decoded here exactly as it travels and as receivers read it,
 * so this check cannot disagree with them. (Senders put each definition in a message of its
 * own, so that definitions checked one by one never add up past the limits together.)
 */
export function definitionProblem(def: FunctionDefinition): DefinitionProblem | null {
  const head = encodeMessage({ type: 'define', defs: [def] })[1]!;
  try {
    decode(head, undefined, HEAD_LIMITS);
    return null;
  } catch (error) {
    if (!(error instanceof CodecError)) throw error;
    // Which limit: the same head again without the item limit.
    let limit: DefinitionProblem['limit'] = 'items';
    try {
      decode(head, undefined, { maxDepth: HEAD_LIMITS.maxDepth, maxItems: Number.MAX_SAFE_INTEGER });
    } catch {
      limit = 'depth';
    }
    // The codec names the path from the head: value[1][0] is the definition.
    const path = error.path.replace(/^value\[1\]\[0\]\.?/, '');
    return { limit, path, error };
  }
}

/**
 * Decodes one message; blobs are views into `frame` (no copy). `limits` bound the head; only a
 * receiver that got a head refused under {@link HEAD_LIMITS} reads it again with wider ones, to
 * learn which jobs to fail.
 */
export function decodeMessage(frame: Uint8Array, limits: DecodeLimits = HEAD_LIMITS): Message {
  if (frame.byteLength < HEAD_LENGTH_BYTES) throw new MessageError('message shorter than its head length');
  const view = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  const headLen = view.readUInt32BE(0);
  if (headLen > view.length - HEAD_LENGTH_BYTES) throw new MessageError('message head runs past the frame');
  let head: unknown;
  try {
    head = decode(view.subarray(HEAD_LENGTH_BYTES, HEAD_LENGTH_BYTES + headLen), undefined, limits);
  } catch (error) {
    throw new MessageError(`message head does not decode: ${(error as Error).message}`);
  }
  if (!Array.isArray(head) || head.length < 2 || typeof head[0] !== 'string') {
    throw new MessageError('message head is not [type, ..., blobLengths]');
  }
  const blobs = splitBlobs(view, HEAD_LENGTH_BYTES + headLen, head[head.length - 1]);
  const type = head[0];
  if (!Object.hasOwn(MESSAGE_FIELDS, type)) {
    throw new MessageError(`unknown message type ${JSON.stringify(type).slice(0, 40)}`);
  }
  const spec: FieldSpec = MESSAGE_FIELDS[type as Message['type']];
  const msg: Record<string, unknown> = { type };
  spec.fields.forEach(([name, ok], i) => {
    msg[name] = check(head[1 + i], ok, type);
  });
  const n = spec.fields.length;
  if (spec.optional && head.length === n + 3)
    msg[spec.optional[0]] = check(head[1 + n], spec.optional[1], type);
  // Blob i belongs to item i of the first field.
  if (spec.blobs) msg.blobs = sameLength(blobs, head[1] as unknown[], type);
  if (spec.valid && !spec.valid(msg)) throw new MessageError(`malformed '${type}' message`);
  return msg as unknown as Message;
}

function splitBlobs(frame: Buffer, start: number, lengths: unknown): Uint8Array[] {
  if (!Array.isArray(lengths)) throw new MessageError('blob lengths missing');
  const out: Uint8Array[] = [];
  let pos = start;
  for (const len of lengths) {
    if (!isCount(len) || pos + len > frame.length) throw new MessageError('blob runs past the frame');
    out.push(frame.subarray(pos, pos + len));
    pos += len;
  }
  if (pos !== frame.length) throw new MessageError('trailing bytes after the last blob');
  return out;
}

function check(value: unknown, ok: Check, type: string): unknown {
  if (!ok(value)) throw new MessageError(`malformed '${type}' message`);
  return value;
}

function sameLength(blobs: Uint8Array[], items: unknown[], type: string): Uint8Array[] {
  if (blobs.length !== items.length)
    throw new MessageError(`'${type}' message has ${items.length} entries but ${blobs.length} blobs`);
  return blobs;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);
const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.every(isCount);
const isSlotLists = (v: unknown): v is number[][] =>
  Array.isArray(v) && v.every((l) => isIds(l) && l.length % 2 === 0);
const isRunEntries = (v: unknown): v is RunEntry[] =>
  Array.isArray(v) &&
  v.every(
    (e) =>
      Array.isArray(e) &&
      e.length === 4 &&
      isCount(e[0]) &&
      isCount(e[1]) &&
      isFiniteNumber(e[2]) &&
      e[2] >= 0 &&
      isStrings(e[3]),
  );
const isResultEntries = (v: unknown): v is ResultEntry[] =>
  Array.isArray(v) &&
  v.every(
    (e) => Array.isArray(e) && e.length === 3 && isCount(e[0]) && isJobStatus(e[1]) && isFiniteNumber(e[2]),
  );
const isDefinitions = (v: unknown): v is FunctionDefinition[] =>
  Array.isArray(v) &&
  v.every(
    (d) =>
      d !== null &&
      typeof d === 'object' &&
      isString(d.hash) &&
      isString(d.name) &&
      isString(d.code) &&
      Array.isArray(d.bindings) &&
      d.bindings.every(isString) &&
      Array.isArray(d.modules) &&
      d.modules.every(
        (m: unknown) => Array.isArray(m) && m.length === 2 && isString(m[0]) && isString(m[1]),
      ) &&
      d.globals !== null &&
      typeof d.globals === 'object',
  );
const isNodeInfo = (v: unknown): v is NodeInfo =>
  v !== null &&
  typeof v === 'object' &&
  isString((v as NodeInfo).id) &&
  isString((v as NodeInfo).name) &&
  isCount((v as NodeInfo).ncpus) &&
  isString((v as NodeInfo).version) &&
  isCount((v as NodeInfo).protocol);

/** A field's check: a type guard of its value as decoded from the head. */
type Check = (v: unknown) => boolean;
/** A message type's head, after the type and before the blob lengths. */
interface FieldSpec {
  /** Its fields in wire order, each with its check. */
  readonly fields: ReadonlyArray<readonly [name: string, check: Check]>;
  /** A last field that may be missing (the head is one longer when it is there). */
  readonly optional?: readonly [name: string, check: Check];
  /** The message has `blobs`, blob i belonging to item i of its first field. */
  readonly blobs?: true;
  /** What the fields must agree on together. */
  readonly valid?: (msg: Record<string, unknown>) => boolean;
}
/** The field names of message type K, as the table may list them (the compiler checks). */
type FieldsOf<K extends Message['type']> = Exclude<keyof Extract<Message, { type: K }>, 'type' | 'blobs'>;
type SpecOf<K extends Message['type']> = FieldSpec & {
  readonly fields: ReadonlyArray<readonly [name: FieldsOf<K>, check: Check]>;
  readonly optional?: readonly [name: FieldsOf<K>, check: Check];
};

const ids = [['ids', isIds]] as const;
const t = [['t', isFiniteNumber]] as const;

/**
 * Every message type's head: the one statement of the wire shape of messages (the Message
 * union above gives their TypeScript types; the compiler checks that the two name the same
 * types and fields). Adding a message: a member of the union, a row here.
 */
export const MESSAGE_FIELDS: { readonly [K in Message['type']]: SpecOf<K> } = {
  define: { fields: [['defs', isDefinitions]] },
  run: {
    fields: [
      ['jobs', isRunEntries],
      ['fns', isStrings],
    ],
    optional: ['slots', isSlotLists],
    blobs: true,
    valid: (m) => {
      const jobs = m.jobs as RunEntry[];
      const fns = m.fns as string[];
      for (const j of jobs) if (j[1] >= fns.length) return false;
      return m.slots === undefined || (m.slots as number[][]).length === jobs.length;
    },
  },
  cancel: { fields: ids },
  withdraw: { fields: ids },
  put: { fields: [['refs', isStrings]], blobs: true },
  release: { fields: [['refs', isStrings]] },
  shutdown: { fields: [] },
  ready: { fields: [['pid', isCount]] },
  done: { fields: [['results', isResultEntries]], blobs: true },
  welcome: { fields: [['info', isNodeInfo]] },
  requeue: { fields: ids },
  withdrawn: { fields: ids },
  failed: { fields: ids, blobs: true },
  ping: { fields: t },
  pong: { fields: t },
  ncpus: { fields: [['ncpus', isCount]] },
  bye: { fields: [['reason', isString]] },
};
