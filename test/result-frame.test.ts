import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encode, encodeInto } from '../src/protocol/codec.ts';
import { decodeMessage, encodeMessage, JobStatus } from '../src/protocol/messages.ts';
import {
  RESULT_HEAD_ROOM,
  type ResultView,
  readResult,
  writeResultHead,
} from '../src/protocol/result-frame.ts';
import { joinFrame } from '../src/transport/frames.ts';

const IDS = [0, 1, 127, 128, 255, 256, 32767, 32768, 2 ** 31 - 1, 2 ** 31, 2 ** 40, Number.MAX_SAFE_INTEGER];
const DURATIONS = [0, -0, 0.5, 3, 1e-9, 200, 123456.789];
const VALUES: unknown[] = [1, 'x', { a: [1, 2] }, undefined, new Uint8Array(300)];

function fastFrame(id: number, status: JobStatus, ms: number, value: unknown): Buffer {
  const buf = Buffer.alloc(4096);
  const end = encodeInto(value, undefined, 'result', buf, RESULT_HEAD_ROOM);
  assert.ok(end > RESULT_HEAD_ROOM);
  const start = writeResultHead(buf, RESULT_HEAD_ROOM, end, id, status, ms);
  return buf.subarray(start, end);
}

function generalFrame(id: number, status: JobStatus, ms: number, value: unknown): Buffer {
  return joinFrame(
    encodeMessage({ type: 'done', results: [[id, status, ms]], blobs: [encode(value)] }),
    true,
  );
}

test('a result frame has exactly the bytes of the general done message, for every number form', () => {
  for (const id of IDS)
    for (const status of Object.values(JobStatus))
      for (const ms of DURATIONS)
        for (const value of VALUES) {
          const fast = fastFrame(id, status, ms, value);
          const general = generalFrame(id, status, ms, value);
          assert.deepEqual(fast, general, `id ${id} status ${status} ms ${ms}`);
        }
});

test('readResult reads what the general encoder writes, and agrees with decodeMessage', () => {
  const view: ResultView = { id: -1, status: 0, durationMs: -1, blobStart: -1 };
  for (const id of IDS)
    for (const ms of DURATIONS) {
      const payload = generalFrame(id, JobStatus.Threw, ms, 'boom').subarray(4);
      assert.equal(readResult(payload, view), true);
      assert.equal(view.id, id);
      assert.equal(view.status, JobStatus.Threw);
      assert.ok(Object.is(view.durationMs, ms));
      const msg = decodeMessage(payload);
      assert.equal(msg.type, 'done');
      if (msg.type === 'done') assert.deepEqual(payload.subarray(view.blobStart), msg.blobs[0]);
    }
});

test('readResult declines every other message, so the general decoder reports it', () => {
  const view: ResultView = { id: 0, status: 0, durationMs: 0, blobStart: 0 };
  const others = [
    encodeMessage({ type: 'ready', pid: 12 }),
    encodeMessage({ type: 'done', results: [], blobs: [] }),
    encodeMessage({
      type: 'done',
      results: [
        [1, 0, 1],
        [2, 0, 1],
      ],
      blobs: [encode(1), encode(2)],
    }),
    encodeMessage({ type: 'requeue', ids: [1] }),
  ];
  for (const parts of others) assert.equal(readResult(joinFrame(parts, false), view), false);
});

test('readResult declines malformed result frames (truncated, bad status, bad lengths)', () => {
  const view: ResultView = { id: 0, status: 0, durationMs: 0, blobStart: 0 };
  const good = generalFrame(70000, JobStatus.Ok, 1.5, { ok: true }).subarray(4);
  assert.equal(readResult(good, view), true);
  // Every truncation.
  for (let n = 0; n < good.length; n++)
    assert.equal(readResult(good.subarray(0, n), view), false, `cut at ${n}`);
  // Trailing bytes after the blob.
  assert.equal(readResult(Buffer.concat([good, Buffer.from([0])]), view), false);
  // A status out of range.
  const badStatus = generalFrame(1, JobStatus.Ok, 1, 1).subarray(4);
  const statusAt = 4 + 9 + 1; // head length, fixed head start, id 1 (one byte)
  assert.equal(badStatus[statusAt], 0);
  badStatus[statusAt] = 9;
  assert.equal(readResult(badStatus, view), false);
  // A negative id.
  const negative = generalFrame(1, JobStatus.Ok, 1, 1).subarray(4);
  negative[4 + 9] = 0xff; // -1 as a negative fixint
  assert.equal(readResult(negative, view), false);
  // A head length past the frame.
  const long = Buffer.from(good);
  long.writeUInt32BE(good.length, 0);
  assert.equal(readResult(long, view), false);
});

test('encodeInto writes nothing and returns -1 when the value does not fit', () => {
  const out = Buffer.alloc(16, 0xee);
  assert.equal(encodeInto('a string longer than sixteen bytes', undefined, 'value', out, 0), -1);
  assert.deepEqual(out, Buffer.alloc(16, 0xee));
  const end = encodeInto(42, undefined, 'value', out, 3);
  assert.deepEqual(out.subarray(3, end), encode(42));
});

test('readResult reads a frame inside a larger buffer by its range, and never past the range', () => {
  const view: ResultView = { id: 0, status: 0, durationMs: 0, blobStart: 0 };
  const a = generalFrame(7, JobStatus.Ok, 2, 'first').subarray(4);
  const b = generalFrame(8, JobStatus.Threw, 3, { second: [1, 2] }).subarray(4);
  const chunk = Buffer.concat([Buffer.from([9, 9, 9]), a, b]);
  const bStart = 3 + a.length;
  assert.equal(readResult(chunk, view, bStart, chunk.length), true);
  assert.equal(view.id, 8);
  assert.equal(view.status, JobStatus.Threw);
  assert.deepEqual(chunk.subarray(view.blobStart), encode({ second: [1, 2] }));
  assert.equal(readResult(chunk, view, 3, bStart), true);
  assert.equal(view.id, 7);
  assert.deepEqual(chunk.subarray(view.blobStart, bStart), encode('first'));
  // A range that ends inside the frame, or holds two frames, is not one result.
  assert.equal(readResult(chunk, view, 3, bStart - 1), false);
  assert.equal(readResult(chunk, view, 3, chunk.length), false);
});
