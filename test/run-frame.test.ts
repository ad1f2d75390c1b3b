import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encode } from '../src/protocol/codec.ts';
import { decodeMessage, encodeMessage, receivedBlob, runMessage } from '../src/protocol/messages.ts';
import { writeRunFrame } from '../src/protocol/run-frame.ts';
import { joinFrame } from '../src/transport/frames.ts';

const HASH_A = 'a'.repeat(64);
const HASH_B = 'b0'.repeat(32);
const IDS = [0, 1, 127, 128, 255, 256, 32767, 32768, 2 ** 31 - 1, 2 ** 31, 2 ** 40, Number.MAX_SAFE_INTEGER];

interface Case {
  jobs: Array<{ id: number; hash: string }>;
  blobs: Uint8Array[];
  slots?: number[][];
}

function general({ jobs, blobs, slots }: Case, withHeader: boolean): Buffer {
  const msg = runMessage(
    jobs.map((j, i) => ({ ...j, blob: blobs[i]! })),
    slots,
  );
  return joinFrame(encodeMessage(msg), withHeader);
}

function makeCase(n: number, opts: { hashes?: string[]; slots?: boolean; blobBytes?: number } = {}): Case {
  const hashes = opts.hashes ?? [HASH_A];
  const jobs = Array.from({ length: n }, (_, i) => ({
    id: i < IDS.length ? IDS[i]! : 1000 + i,
    hash: hashes[i % hashes.length]!,
  }));
  const blobs = jobs.map((_, i) =>
    opts.blobBytes === undefined ? encode([undefined, [i, `x${i}`]]) : new Uint8Array(opts.blobBytes).fill(i),
  );
  const slots = opts.slots
    ? jobs.map((_, i) => (i % 3 === 0 ? [] : [i * 65536, 70000 + i, 2 ** 33, 5]))
    : undefined;
  return { jobs, blobs, slots };
}

test('a run frame has exactly the bytes of the general run message (with and without header)', () => {
  const cases: Case[] = [];
  for (const n of [1, 2, 15, 16, 17, 127, 128, 129, 300])
    for (const hashes of [[HASH_A], [HASH_A, HASH_B]])
      for (const slots of [false, true])
        for (const blobBytes of [undefined, 0, 16, 17, 5000])
          cases.push(makeCase(n, { hashes, slots, blobBytes }));
  for (const c of cases)
    for (const withHeader of [true, false]) {
      const fast = writeRunFrame(c.jobs, c.blobs, c.slots, withHeader);
      assert.deepEqual(fast, general(c, withHeader), `${c.jobs.length} jobs, slots ${Boolean(c.slots)}`);
    }
});

test('a run frame owns its memory, and decodes to the jobs, blobs and slots it was given', () => {
  const c = makeCase(40, { hashes: [HASH_B, HASH_A], slots: true });
  const frame = writeRunFrame(c.jobs, c.blobs, c.slots, false);
  assert.equal(frame.byteOffset, 0);
  assert.equal(frame.buffer.byteLength, frame.byteLength);
  const msg = decodeMessage(frame);
  assert.equal(msg.type, 'run');
  if (msg.type !== 'run') return;
  assert.deepEqual(msg.fns, [HASH_B, HASH_A]);
  assert.deepEqual(
    msg.jobs.map(([id, fn]) => [id, msg.fns[fn]]),
    c.jobs.map((j) => [j.id, j.hash]),
  );
  assert.deepEqual(
    msg.blobs.map((b) => Buffer.from(receivedBlob(b))),
    c.blobs.map((b) => Buffer.from(b)),
  );
  assert.deepEqual(msg.slots, c.slots);
});

test('a large batch grows the scratch memory and stays exact', () => {
  const c = makeCase(5000, { hashes: [HASH_A, HASH_B, 'c'.repeat(64)], slots: true, blobBytes: 40 });
  assert.deepEqual(writeRunFrame(c.jobs, c.blobs, c.slots, true), general(c, true));
  // And a small one afterwards reuses it without leftovers.
  const small = makeCase(3);
  assert.deepEqual(writeRunFrame(small.jobs, small.blobs, undefined, true), general(small, true));
});
