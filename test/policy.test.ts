import assert from 'node:assert/strict';
import { test } from 'node:test';
import { targetDepth } from '../src/nodes/local-pool.ts';
import { assignJobs, DurationEstimate } from '../src/scheduler/policy.ts';

test('assignJobs gives every node its free slots when work exceeds room', () => {
  assert.deepEqual(assignJobs(100, [2, 3, 0]), [2, 3, 0]);
});

test('assignJobs spreads scarce work in proportion to room and hands out exactly the queue', () => {
  assert.deepEqual(assignJobs(3, [4, 2]), [2, 1]);
  assert.deepEqual(assignJobs(1, [1, 1]), [1, 0]);
  for (let q = 0; q < 20; q++) {
    const counts = assignJobs(q, [5, 3, 7, 0]);
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      Math.min(q, 15),
    );
    counts.forEach((c, i) => {
      assert.ok(c <= [5, 3, 7, 0][i]!);
    });
  }
});

test('assignJobs with no room or no work assigns nothing', () => {
  assert.deepEqual(assignJobs(10, [0, 0]), [0, 0]);
  assert.deepEqual(assignJobs(0, [4]), [0]);
  assert.deepEqual(assignJobs(5, [-1, 2]), [0, 2]);
});

test('DurationEstimate is the exact mean at first, then follows changes', () => {
  const e = new DurationEstimate();
  assert.equal(e.value, undefined);
  e.add(2);
  e.add(4);
  assert.equal(e.value, 3);
  for (let i = 0; i < 200; i++) e.add(100);
  assert.ok(e.value! > 99);
});

test('targetDepth prefetches short jobs only', () => {
  assert.equal(targetDepth(undefined), 1);
  assert.equal(targetDepth(50), 1);
  assert.ok(targetDepth(0.01) > 50);
  assert.ok(targetDepth(0.5) >= 4);
});
