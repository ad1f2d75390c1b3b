// The runtime inside a worker (src/worker/runtime.ts), driven directly through a fake channel:
// what it answers to 'withdraw' and 'cancel' that arrive while a job runs, and to messages
// whose heads break the head limits.
import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { getBundle } from '../src/functions/bundle.ts';
import { decode, encode } from '../src/protocol/codec.ts';
import {
  decodeMessage,
  encodeMessage,
  HEAD_LIMITS,
  type Message,
  receivedBlob,
  runMessage,
} from '../src/protocol/messages.ts';
import { joinFrame } from '../src/transport/frames.ts';
import { WorkerRuntime } from '../src/worker/runtime.ts';
import { pollUntil } from './helpers/poll.ts';

function spin(ms: number): number {
  const end = Date.now() + ms;
  while (Date.now() < end);
  return ms;
}
const bundle = getBundle({ fn: spin });

/**
 * A runtime that knows spin(), and what it sent back, as readable lines. With `inbox`, its
 * channel reads synchronously (WorkerChannel.poll): frames put there "arrived" and are read
 * between jobs, as a child process reads its socket between jobs.
 */
function runtime(inbox?: Buffer[]): { rt: WorkerRuntime; sent: string[] } {
  const sent: string[] = [];
  const show = (m: Message) =>
    sent.push(
      m.type === 'done'
        ? m.results.map(([id, status]) => `done ${id} status ${status}`).join(', ')
        : `${m.type} ${JSON.stringify('ids' in m ? m.ids : '')}`,
    );
  const rt: WorkerRuntime = new WorkerRuntime({
    send: (parts) => show(decodeMessage(joinFrame(parts, false))),
    sendFrame: (buf, start, end) => show(decodeMessage(buf.subarray(start + 4, end))),
    ...(inbox && {
      poll() {
        for (let f = inbox.shift(); f; f = inbox.shift()) rt.receive(f);
      },
    }),
  });
  const { hash, name, code, bindings, modules, globals } = bundle;
  rt.receive(frame({ type: 'define', defs: [{ hash, name, code, bindings, modules, globals }] }));
  return { rt, sent };
}
const frame = (m: Message) => joinFrame(encodeMessage(m), false);
const job = (id: number, ms: number) => ({ id, hash: bundle.hash, blob: encode([undefined, [ms]]) });
/** Waits until the runtime has sent `n` messages in all. */
const sentCount = (sent: string[], n: number) =>
  pollUntil(() => sent.length >= n, { what: `${n} messages sent` });

// The drain loop runs detached: a throw in it surfaces only as an unhandled rejection.
const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);
before(() => process.on('unhandledRejection', onUnhandled));
after(() => process.off('unhandledRejection', onUnhandled));
beforeEach(() => {
  unhandled.length = 0;
});

test('withdraw sent while a job runs: the jobs behind it come back unstarted, and the runtime goes on', async () => {
  const { rt, sent } = runtime();
  rt.receive(frame(runMessage([job(1, 5), job(2, 5), job(3, 5)]))); // job 1 runs in here
  rt.receive(frame({ type: 'withdraw', ids: [2, 3] })); // read before job 2 would start
  await sentCount(sent, 2);
  assert.deepEqual(sent, ['done 1 status 0', 'requeue [2,3]']);
  rt.receive(frame(runMessage([job(4, 0)])));
  await sentCount(sent, 3);
  assert.deepEqual(sent.slice(2), ['done 4 status 0']);
  assert.deepEqual(unhandled, []);
});

test('withdraw of some: the others run, in order; ids that already ran are ignored', async () => {
  const { rt, sent } = runtime();
  rt.receive(frame(runMessage([job(1, 5), job(2, 0), job(3, 0)])));
  rt.receive(frame({ type: 'withdraw', ids: [1, 3] }));
  await sentCount(sent, 3);
  assert.deepEqual(sent, ['done 1 status 0', 'requeue [3]', 'done 2 status 0']);
  assert.deepEqual(unhandled, []);
});

test('cancel sent while a job runs: the cancelled job never starts', async () => {
  const { rt, sent } = runtime();
  rt.receive(frame(runMessage([job(1, 5), job(2, 0), job(3, 0)])));
  rt.receive(frame({ type: 'cancel', ids: [2] }));
  await sentCount(sent, 3);
  assert.deepEqual(sent, ['done 1 status 0', 'done 2 status 3', 'done 3 status 0']);
  assert.deepEqual(unhandled, []);
});

/** A value nested `levels` objects deep. */
const nested = (levels: number): unknown => {
  let v: unknown = 0;
  for (let i = 0; i < levels; i++) v = { v };
  return v;
};

test('a channel that reads synchronously: the next job starts without a turn of the event loop', () => {
  const inbox: Buffer[] = [];
  const { rt, sent } = runtime(inbox);
  inbox.push(frame(runMessage([job(2, 0), job(3, 0)]))); // arrives while job 1 runs
  rt.receive(frame(runMessage([job(1, 2)])));
  // All three ran inside this one call: job 2 was read the moment job 1 ended.
  assert.deepEqual(sent, ['done 1 status 0', 'done 2 status 0', 'done 3 status 0']);
  assert.equal(inbox.length, 0);
});

test('a channel that reads synchronously: a cancel that arrived while a job ran is read before the next starts', () => {
  const inbox: Buffer[] = [frame({ type: 'cancel', ids: [2] })];
  const { rt, sent } = runtime(inbox);
  rt.receive(frame(runMessage([job(1, 2), job(2, 0), job(3, 0)])));
  assert.deepEqual(sent, ['done 1 status 0', 'done 2 status 3', 'done 3 status 0']);
});

test('a channel that reads synchronously: the event loop still turns between long runs of jobs', async () => {
  const { rt, sent } = runtime([]);
  let turned = -1;
  setImmediate(() => {
    turned = sent.length;
  });
  rt.receive(frame(runMessage([job(1, 30), job(2, 30), job(3, 30), job(4, 0)])));
  await sentCount(sent, 4);
  // The immediate ran between two jobs, after 50 ms of them (TURN_LOOP_EVERY_MS), not after all.
  assert.ok(turned >= 1 && turned < 4, `the loop turned after ${turned} of 4 jobs`);
  assert.deepEqual(unhandled, []);
});

test('a definition whose head breaks the head limits: its jobs fail as they come, and the runtime goes on', async () => {
  const { rt, sent } = runtime();
  // What a sender that skipped submit's check would send: globals nested past what heads allow.
  const deep = getBundle({ fn: spin });
  const def = {
    hash: 'deep-hash',
    name: 'deep',
    code: deep.code,
    bindings: ['G'],
    modules: [],
    globals: { G: nested(HEAD_LIMITS.maxDepth) },
  };
  assert.doesNotThrow(() => rt.receive(frame({ type: 'define', defs: [def] })));
  rt.receive(frame(runMessage([{ id: 1, hash: 'deep-hash', blob: encode([undefined, [0]]) }, job(2, 0)])));
  await sentCount(sent, 2);
  assert.deepEqual(sent, ['done 1 status 2', 'done 2 status 0']);
  assert.deepEqual(unhandled, []);
});

test('a run message whose head breaks the head limits: its jobs fail at once, and the runtime goes on', () => {
  const replies: Message[] = [];
  const rt = new WorkerRuntime({
    send: (parts) => replies.push(decodeMessage(joinFrame(parts, false))),
    sendFrame: () => assert.fail('no result frames expected'),
  });
  // One job that names more Refs than a head may hold values.
  const refs = Array.from({ length: HEAD_LIMITS.maxItems }, (_, i) => ({ id: String(i) }));
  const run = runMessage([{ id: 7, hash: bundle.hash, refs, blob: encode([undefined, [0]]) }]);
  assert.doesNotThrow(() => rt.receive(frame(run)));
  assert.equal(replies.length, 1);
  const reply = replies[0]!;
  assert.ok(reply.type === 'done');
  assert.deepEqual(
    reply.results.map(([id, status]) => [id, status]),
    [[7, 2]],
  );
  const error = decode(receivedBlob(reply.blobs[0]!)) as Error;
  assert.match(error.message, /could not read the 'run' message.*more than 1000000 values/);
});
