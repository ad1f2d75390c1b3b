import assert from 'node:assert/strict';
import { test } from 'node:test';
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

test('FairQueue serves owners in turn: a big backlog does not starve a small one', () => {
  const q = new FairQueue<string>();
  for (let i = 0; i < 1000; i++) q.push('big', `b${i}`);
  for (let i = 0; i < 3; i++) q.push('small', `s${i}`);
  const first = q.take(6).map(([owner]) => owner);
  assert.deepEqual(first, ['big', 'small', 'big', 'small', 'big', 'small']);
  assert.equal(q.size, 997);
  assert.deepEqual(
    q.take(3).map(([o]) => o),
    ['big', 'big', 'big'],
  );
});

test('FairQueue: unshiftAll puts items back first, remove and removeOwner take items out', () => {
  const q = new FairQueue<number>();
  q.push('a', 1);
  q.push('a', 2);
  q.push('b', 10);
  const [[, x]] = q.take(1) as [[string, number]];
  assert.equal(x, 1);
  q.unshiftAll('a', [1]);
  assert.equal(
    q.remove('a', (v) => v === 2),
    2,
  );
  assert.equal(
    q.remove('a', (v) => v === 99),
    undefined,
  );
  assert.deepEqual(q.removeOwner('b'), [10]);
  assert.equal(q.size, 1);
  assert.deepEqual(q.take(5), [['a', 1]]);
  assert.equal(q.size, 0);
  assert.equal(q.peek(), undefined);
});
