// A job that cannot start is a JobSetupError saying why (a module that fails to load, a
// function that does not compile, arguments that fail to decode), and the worker goes on;
// a callback that throws is the 'callback-error' event.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { getBundle } from '../src/functions/bundle.ts';
import { JobSetupError, Server } from '../src/index.ts';
import { decode, encode, makeClassRegistry } from '../src/protocol/codec.ts';
import {
  decodeMessage,
  encodeMessage,
  type Message,
  receivedBlob,
  runMessage,
} from '../src/protocol/messages.ts';
import { joinFrame } from '../src/transport/frames.ts';
import { WorkerRuntime } from '../src/worker/runtime.ts';
import { pollUntil } from './helpers/poll.ts';

const frame = (m: Message) => joinFrame(encodeMessage(m), false);

/** A worker runtime in this thread, and the outcomes it sent: [id, status, decoded value]. */
function runtime() {
  const outcomes: Array<[number, number, unknown]> = [];
  const show = (m: Message) => {
    if (m.type !== 'done') return;
    m.results.forEach(([id, status], i) => {
      outcomes.push([id, status, decode(receivedBlob(m.blobs[i]!))]);
    });
  };
  const rt = new WorkerRuntime({
    send: (parts) => show(decodeMessage(joinFrame(parts, false))),
    sendFrame: (buf, start, end) => show(decodeMessage(buf.subarray(start + 4, end))),
  });
  return { rt, outcomes };
}

const double = (x: number) => x * 2;

test('a function that does not compile: its jobs fail with why (status SetupFailed), the next job runs', async () => {
  const { rt, outcomes } = runtime();
  const ok = getBundle({ fn: double });
  const broken = {
    hash: 'broken',
    name: 'broken',
    code: 'return ) oops (',
    bindings: [],
    modules: [],
    globals: {},
  };
  rt.receive(frame({ type: 'define', defs: [broken, { ...ok, bindings: [...ok.bindings] }] }));
  rt.receive(
    frame(
      runMessage([
        { id: 1, hash: 'broken', blob: encode([undefined, [1]]) },
        { id: 2, hash: ok.hash, blob: encode([undefined, [21]]) },
      ]),
    ),
  );
  await pollUntil(() => outcomes.length >= 2, { what: 'both outcomes' });
  assert.equal(outcomes[0]![1], 2);
  assert.match((outcomes[0]![2] as Error).message, /cannot compile function broken/);
  assert.deepEqual(outcomes[1], [2, 0, 42]);
});

test('arguments that fail to decode: that job fails with why, the next job of the same function runs', async () => {
  const { rt, outcomes } = runtime();
  const ok = getBundle({ fn: double });
  rt.receive(frame({ type: 'define', defs: [{ ...ok, bindings: [...ok.bindings] }] }));
  class Point {}
  // An instance of a class the job's function never registered.
  const foreign = encode([undefined, [new Point()]], makeClassRegistry([['Point', Point]]));
  rt.receive(
    frame(
      runMessage([
        { id: 1, hash: ok.hash, blob: foreign },
        { id: 2, hash: ok.hash, blob: encode([undefined, [5]]) },
      ]),
    ),
  );
  await pollUntil(() => outcomes.length >= 2, { what: 'both outcomes' });
  assert.equal(outcomes[0]![1], 2);
  assert.match((outcomes[0]![2] as Error).message, /Point/);
  assert.deepEqual(outcomes[1], [2, 0, 10]);
});

test('a module that fails to load: the job rejects with a JobSetupError naming it; the server goes on', async () => {
  // A module that resolves here (one that does not is an error at submit: test/packages.test.ts)
  // but throws as the worker loads it.
  const dir = mkdtempSync(join(tmpdir(), 'pp-setup-'));
  const file = join(dir, 'broken.mjs');
  writeFileSync(file, "throw new Error('pp-node-broken-module-14');\nexport const x = 1;\n");
  try {
    await using server = new Server({ ncpus: 1, isolation: 'thread' });
    const job = server.submit((x: number) => x + 1, [1], { modules: [{ broken: file }] });
    await assert.rejects(
      job,
      (e: any) => e instanceof JobSetupError && /pp-node-broken-module-14/.test(e.message),
    );
    assert.equal(await server.submit((x: number) => x + 1, [1]), 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a callback that throws is the 'callback-error' event, with its job and error; the job still succeeds", async () => {
  await using server = new Server({ ncpus: 1, isolation: 'thread' });
  const seen: Array<[unknown, unknown]> = [];
  server.on('callback-error', (job, error) => seen.push([job, error]));
  const boom = new Error('callback broke');
  const job = server.submit((x: number) => x * 3, [2], {
    callback: () => {
      throw boom;
    },
  });
  assert.equal(await job, 6);
  await pollUntil(() => seen.length > 0, { what: 'the callback-error event' });
  assert.deepEqual(seen, [[job, boom]]);
});
