// The runtime inside a worker (src/worker/runtime.ts), driven directly through a fake channel:
// what it answers to 'withdraw' and 'cancel' that arrive while a job runs.
import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { getBundle } from '../src/functions/bundle.ts';
import { encode } from '../src/protocol/codec.ts';
import { decodeMessage, encodeMessage, type Message, runMessage } from '../src/protocol/messages.ts';
import { joinFrame } from '../src/transport/frames.ts';
import { WorkerRuntime } from '../src/worker/runtime.ts';

function spin(ms: number): number {
  const end = Date.now() + ms;
  while (Date.now() < end);
  return ms;
}
const bundle = getBundle({ fn: spin });

/** A runtime that knows spin(), and what it sent back, as readable lines. */
function runtime(): { rt: WorkerRuntime; sent: string[] } {
  const sent: string[] = [];
  const show = (m: Message) =>
    sent.push(
      m.type === 'done'
        ? m.results.map(([id, status]) => `done ${id} status ${status}`).join(', ')
        : `${m.type} ${JSON.stringify('ids' in m ? m.ids : '')}`,
    );
  const rt = new WorkerRuntime({
    send: (parts) => show(decodeMessage(joinFrame(parts, false))),
    sendFrame: (buf, start, end) => show(decodeMessage(buf.subarray(start + 4, end))),
  });
  const { hash, name, code, bindings, modules, globals } = bundle;
  rt.receive(frame({ type: 'define', defs: [{ hash, name, code, bindings, modules, globals }] }));
  return { rt, sent };
}
const frame = (m: Message) => joinFrame(encodeMessage(m), false);
const job = (id: number, ms: number) => ({ id, hash: bundle.hash, blob: encode([undefined, [ms]]) });
const settle = () => new Promise((r) => setTimeout(r, 50));

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
  await settle();
  assert.deepEqual(sent, ['done 1 status 0', 'requeue [2,3]']);
  rt.receive(frame(runMessage([job(4, 0)])));
  await settle();
  assert.deepEqual(sent.slice(2), ['done 4 status 0']);
  assert.deepEqual(unhandled, []);
});

test('withdraw of some: the others run, in order; ids that already ran are ignored', async () => {
  const { rt, sent } = runtime();
  rt.receive(frame(runMessage([job(1, 5), job(2, 0), job(3, 0)])));
  rt.receive(frame({ type: 'withdraw', ids: [1, 3] }));
  await settle();
  assert.deepEqual(sent, ['done 1 status 0', 'requeue [3]', 'done 2 status 0']);
  assert.deepEqual(unhandled, []);
});

test('cancel sent while a job runs: the cancelled job never starts', async () => {
  const { rt, sent } = runtime();
  rt.receive(frame(runMessage([job(1, 5), job(2, 0), job(3, 0)])));
  rt.receive(frame({ type: 'cancel', ids: [2] }));
  await settle();
  assert.deepEqual(sent, ['done 1 status 0', 'done 2 status 3', 'done 3 status 0']);
  assert.deepEqual(unhandled, []);
});
