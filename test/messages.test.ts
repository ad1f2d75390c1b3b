import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decode, encode } from '../src/protocol/codec.ts';
import {
  decodeMessage,
  encodeMessage,
  HEAD_LENGTH_BYTES,
  isJobStatus,
  JOB_STATUS_MAX,
  JobStatus,
  MESSAGE_FIELDS,
  type Message,
  MessageError,
} from '../src/protocol/messages.ts';
import { joinFrame } from '../src/transport/frames.ts';

const blob = (...b: number[]) => Uint8Array.from(b);
const def = { hash: 'h', name: 'f', code: 'x => x', bindings: [], modules: [], globals: {} };

/** One message of every type (the compiler checks that none is missing). */
const SAMPLES: { [K in Message['type']]: Extract<Message, { type: K }> } = {
  define: { type: 'define', defs: [def] },
  run: { type: 'run', jobs: [[7, 0, 0, ['r']]], fns: ['h'], blobs: [blob(1, 2)] },
  cancel: { type: 'cancel', ids: [1, 2] },
  withdraw: { type: 'withdraw', ids: [3] },
  put: { type: 'put', refs: ['r'], blobs: [blob(9)] },
  release: { type: 'release', refs: ['r'] },
  shutdown: { type: 'shutdown' },
  ready: { type: 'ready', pid: 42 },
  done: { type: 'done', results: [[7, JobStatus.Threw, 1.5]], blobs: [blob(5)] },
  welcome: { type: 'welcome', info: { id: 'i', name: 'n', ncpus: 2, version: '1', protocol: 2 } },
  requeue: { type: 'requeue', ids: [4] },
  withdrawn: { type: 'withdrawn', ids: [] },
  failed: { type: 'failed', ids: [5], blobs: [blob(6)] },
  ping: { type: 'ping', t: 1.25 },
  pong: { type: 'pong', t: 2 },
  ncpus: { type: 'ncpus', ncpus: 3 },
  bye: { type: 'bye', reason: 'r' },
};

const roundTrip = (msg: Message) => decodeMessage(joinFrame(encodeMessage(msg), false));
/** The message with its blobs as plain arrays (a received blob is a Buffer view, a sent one need not be). */
const plain = (msg: Message): Record<string, unknown> => {
  const m = msg as { blobs?: Uint8Array[] };
  return m.blobs ? { ...msg, blobs: m.blobs.map((b) => [...b]) } : { ...msg };
};

test('every message type round-trips through the one table, fields in table order', () => {
  assert.deepEqual(Object.keys(SAMPLES).sort(), Object.keys(MESSAGE_FIELDS).sort());
  for (const msg of Object.values(SAMPLES)) {
    assert.deepEqual(plain(roundTrip(msg)), plain(msg), msg.type);
    const head = decode(encodeMessage(msg)[1]!) as unknown[];
    const names = MESSAGE_FIELDS[msg.type].fields.map(([name]) => name);
    assert.deepEqual(head.slice(0, 1 + names.length), [msg.type, ...names.map((n) => plain(msg)[n])]);
  }
  const withSlots: Message = { ...SAMPLES.run, slots: [[0, 8]] };
  assert.deepEqual(plain(roundTrip(withSlots)), plain(withSlots));
});

test('a head of a known type with a field of the wrong shape is a MessageError naming the type', () => {
  const bad = (head: unknown[]) => {
    const h = encode(head);
    const prefix = Buffer.alloc(HEAD_LENGTH_BYTES);
    prefix.writeUInt32BE(h.byteLength);
    return Buffer.concat([prefix, h]);
  };
  assert.throws(() => decodeMessage(bad(['cancel', ['x'], []])), {
    name: 'MessageError',
    message: /'cancel'/,
  });
  assert.throws(() => decodeMessage(bad(['done', [[1, JOB_STATUS_MAX + 1, 0]], [0]])), MessageError);
  // A job naming a function the message does not list.
  assert.throws(() => decodeMessage(bad(['run', [[1, 1, 0, []]], ['h'], [0]])), /malformed 'run'/);
  assert.throws(() => decodeMessage(bad(['__proto__', 1, []])), /unknown message type/);
});

test('the job statuses are the integers 0..JOB_STATUS_MAX', () => {
  assert.deepEqual(
    Object.values(JobStatus).sort(),
    Array.from({ length: JOB_STATUS_MAX + 1 }, (_, i) => i),
  );
  for (const s of Object.values(JobStatus)) assert.ok(isJobStatus(s));
  for (const v of [-1, JOB_STATUS_MAX + 1, 0.5, '0', null]) assert.equal(isJobStatus(v), false, String(v));
});
