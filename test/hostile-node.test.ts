// A node that has the secret but attacks its client (issue 13, item 11): what a result may cost
// to decode is tied to its size on the wire, and a result over budget settles its job with an error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JobSetupError, Server } from '../src/index.ts';
import { CodecError, decode, encode, heapBudgetFor } from '../src/protocol/codec.ts';
import { encodeMessage, JobStatus } from '../src/protocol/messages.ts';
import { startFakeNode } from './helpers/fake-node.ts';

const SECRET = 'test-secret-0123456789abcdef0123456789';

/** Codec bytes of an array of `n` empty objects: one byte each on the wire. */
function emptyObjects(n: number): Uint8Array {
  const head = [1, 0xc7]; // codec version, array with a varint length
  for (let v = n; ; ) {
    const b = v & 0x7f;
    v = Math.floor(v / 128);
    head.push(v > 0 ? b | 0x80 : b);
    if (v === 0) break;
  }
  const out = new Uint8Array(head.length + n);
  out.set(head);
  out.fill(0xb0, head.length); // fixobject of 0 entries
  return out;
}

test('decode: a heap budget stops a value that multiplies its input, and lets dense data through', () => {
  const bytes = emptyObjects(1 << 20);
  assert.equal((decode(bytes) as unknown[]).length, 1 << 20, 'no budget: decoded');
  assert.throws(
    () => decode(bytes, undefined, { maxHeapBytes: 16 << 20 }),
    (e: unknown) => e instanceof CodecError && /heap budget of 16\.0 MiB/.test(e.message),
  );
  // Data as dense in objects as { a: 1 } within the default budget for its size.
  const dense = encode(Array.from({ length: 200_000 }, (_, i) => ({ a: i & 63 })));
  const back = decode(dense, undefined, {
    maxHeapBytes: heapBudgetFor(dense.byteLength, 24, 0),
  }) as unknown[];
  assert.equal(back.length, 200_000);
});

test('a hostile node: a result of 4 M empty objects (4 MiB) settles its job with a clear error', {
  timeout: 60_000,
}, async () => {
  const hostile = emptyObjects(4 << 20);
  const fine = encode(Array.from({ length: 1000 }, (_, i) => ({ i })));
  let answered = 0;
  const fake = await startFakeNode({
    secret: SECRET,
    onRun: (msg, socket) => {
      for (const [id] of msg.jobs) {
        const blob = answered++ === 0 ? hostile : fine;
        socket.send(encodeMessage({ type: 'done', results: [[id, JobStatus.Ok, 1]], blobs: [blob] }));
      }
    },
  });
  const server = new Server({ ncpus: 0, ppservers: [`127.0.0.1:${fake.port}`], secret: SECRET });
  try {
    const deadline = Date.now() + 10_000;
    while (server.getActiveNodes().length === 0) {
      if (Date.now() > deadline) throw new Error('the fake node never came up');
      await new Promise((r) => setTimeout(r, 20));
    }
    const before = process.memoryUsage().heapUsed;
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().heapUsed);
    }, 5);
    const job = server.submit(() => 1, []);
    await assert.rejects(
      job,
      (e: unknown) =>
        e instanceof JobSetupError && /could not be decoded: .*heap budget.*typed arrays/.test(e.message),
    );
    clearInterval(sampler);
    // The budget for 4 MiB is 160 MiB of estimated heap; unchecked, it took about 370 MiB.
    assert.ok(peak - before < 300 << 20, `heap grew by ${((peak - before) / 2 ** 20).toFixed(0)} MiB`);
    // The node is still used: a sane result after that one is delivered.
    const next = (await server.submit(() => 2, [])) as unknown as unknown[];
    assert.equal(next.length, 1000);
  } finally {
    await server.close();
    await fake.close();
  }
});
