import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type JobRecord, LiveJobs } from '../src/api/job-record.ts';
import { FairQueue } from '../src/scheduler/fair-queue.ts';
import { Fifo } from '../src/scheduler/fifo.ts';

test('Fifo keeps order across shifts, compaction and unshiftAll', () => {
  const q = new Fifo<number>();
  for (let i = 0; i < 5000; i++) q.push(i);
  const out: number[] = [];
  for (let i = 0; i < 3000; i++) out.push(q.shift()!);
  q.unshiftAll([-3, -2, -1]);
  assert.equal(q.size, 2003);
  assert.equal(q.peek(), -3);
  while (q.size > 0) out.push(q.shift()!);
  assert.deepEqual(
    out.slice(0, 3000),
    Array.from({ length: 3000 }, (_, i) => i),
  );
  assert.deepEqual(out.slice(3000, 3003), [-3, -2, -1]);
  assert.deepEqual(
    out.slice(3003),
    Array.from({ length: 2000 }, (_, i) => 3000 + i),
  );
  assert.equal(q.shift(), undefined);
  q.unshiftAll([7]);
  assert.equal(q.shift(), 7);
});

/** Items named by their owner: `b3` is owner `b`'s. */
const ownerOf = (item: string): string => item[0]!;
function drain<T>(q: { size: number; shift(): T | undefined }, n = Number.POSITIVE_INFINITY): T[] {
  const out: T[] = [];
  while (out.length < n && q.size > 0) out.push(q.shift()!);
  return out;
}

test('Fifo newest first: taken from the newest end, put-back items first, back in order when switched off', () => {
  const q = new Fifo<number>();
  for (let i = 1; i <= 5; i++) q.push(i);
  q.newestFirst = true;
  assert.equal(q.peek(), 5);
  assert.equal(q.oldest(), 1);
  assert.equal(q.newest(), 5);
  assert.deepEqual([q.shift(), q.shift()], [5, 4]);
  q.unshiftAll([5, 4]); // taken back from a node: first again, in their order
  assert.deepEqual([q.shift(), q.shift(), q.shift()], [5, 4, 3]);
  q.newestFirst = false;
  q.push(6);
  assert.deepEqual([q.shift(), q.shift(), q.shift(), q.shift()], [1, 2, 6, undefined]);
  assert.equal(q.size, 0);
  q.newestFirst = true;
  assert.equal(q.shift(), undefined);
  assert.equal(q.peek(), undefined);
  q.push(7);
  assert.deepEqual([q.size, q.shift(), q.size], [1, 7, 0]);
});

test('FairQueue serves owners in turn: a big backlog does not starve a small one', () => {
  const q = new FairQueue<string>(ownerOf);
  for (let i = 0; i < 1000; i++) q.push(`b${i}`);
  for (let i = 0; i < 3; i++) q.push(`s${i}`);
  assert.equal(q.peek(), 'b0');
  assert.deepEqual(drain(q, 6), ['b0', 's0', 'b1', 's1', 'b2', 's2']);
  assert.equal(q.size, 997);
  assert.deepEqual(drain(q, 3), ['b3', 'b4', 'b5']);
});

test('FairQueue: unshiftAll puts items back first, remove and removeOwner take items out', () => {
  const q = new FairQueue<string>(ownerOf);
  q.push('a1');
  q.push('a2');
  q.push('b1');
  assert.equal(q.shift(), 'a1');
  q.unshiftAll(['a1']);
  assert.equal(
    q.remove('a', (v) => v === 'a2'),
    'a2',
  );
  assert.equal(
    q.remove('a', (v) => v === 'a9'),
    undefined,
  );
  assert.deepEqual(q.removeOwner('b'), ['b1']);
  assert.equal(q.size, 1);
  assert.deepEqual(drain(q), ['a1']);
  assert.equal(q.size, 0);
  assert.equal(q.peek(), undefined);
  assert.equal(q.shift(), undefined);
});

test('FairQueue: items of several owners put back return to their own lines, in order, and are served first', () => {
  const q = new FairQueue<string>(ownerOf);
  for (const item of ['a1', 'a2', 'a3', 'b1', 'c1', 'c2']) q.push(item);
  const taken = drain(q, 4); // a1 b1 c1 a2: b has nothing left
  assert.deepEqual(taken, ['a1', 'b1', 'c1', 'a2']);
  q.unshiftAll(['b1', 'a1', 'a2']);
  assert.equal(q.size, 5);
  // b, back from empty, is next; a's line is a1 a2 a3 again; c keeps its turn after a.
  assert.deepEqual(drain(q), ['b1', 'c2', 'a1', 'a2', 'a3']);
});

test('LiveJobs: add and delete in any order, twice is harmless, toArray is oldest first', () => {
  const list = new LiveJobs();
  const recs = Array.from(
    { length: 6 },
    (_, i) => ({ id: i, prev: null, next: null, live: false }) as unknown as JobRecord,
  );
  for (const r of recs) list.add(r);
  list.add(recs[2]!); // again: no change
  assert.equal(list.size, 6);
  assert.deepEqual(
    list.toArray().map((r) => r.id),
    [0, 1, 2, 3, 4, 5],
  );
  list.delete(recs[0]!); // oldest (the tail)
  list.delete(recs[5]!); // newest (the head)
  list.delete(recs[3]!); // middle
  list.delete(recs[3]!); // again: no change
  assert.equal(list.size, 3);
  assert.deepEqual(
    list.toArray().map((r) => r.id),
    [1, 2, 4],
  );
  // Deleting while walking a snapshot is safe.
  for (const r of list.toArray()) list.delete(r);
  assert.equal(list.size, 0);
  assert.deepEqual(list.toArray(), []);
  list.add(recs[3]!);
  assert.deepEqual(
    list.toArray().map((r) => r.id),
    [3],
  );
  assert.equal(recs[0]!.live, false);
  assert.equal(recs[3]!.live, true);
});
