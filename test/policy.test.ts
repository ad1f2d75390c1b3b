import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalPool } from '../src/nodes/local-pool.ts';
import { HOLD_NEXT_WAITING_PER_WORKER, targetDepth } from '../src/scheduler/depth.ts';
import {
  assignJobs,
  DurationEstimate,
  FINISH_WINDOW,
  levelFill,
  placeJobs,
  roomOfNodes,
} from '../src/scheduler/policy.ts';

test('assignJobs gives every node all its room when work exceeds room', () => {
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

test('levelFill gives each job to the least loaded worker with room, ties to the earlier one', () => {
  assert.deepEqual(levelFill([0, 0], [2, 2], 2), [1, 1], 'two idle workers: one job each, not two for one');
  assert.deepEqual(levelFill([1, 0], [1, 2], 1), [0, 1]);
  assert.deepEqual(levelFill([600, 0], [0, 1024], 1000), [0, 1000], 'a worker without room gets nothing');
  assert.deepEqual(levelFill([3, 0, 1], [5, 5, 5], 5), [0, 3, 2]);
  assert.deepEqual(levelFill([3, 0, 1], [5, 5, 5], 6), [1, 3, 2]);
  assert.deepEqual(levelFill([], [], 3), []);
  assert.deepEqual(levelFill([0, 0], [0, 0], 3), [0, 0]);
  assert.deepEqual(levelFill([0, 2], [Infinity, 5], 4), [3, 1], 'unbounded room');
  assert.deepEqual(levelFill([2 ** 31, 0], [4, 4], 2), [0, 2], 'loads past 32 bits');
  assert.deepEqual(levelFill([0, 0], [2, 2], Number.NaN), [0, 0]);
  // Against the definition: one job at a time to the least loaded worker with room.
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let t = 0; t < 500; t++) {
    const k = 1 + rnd(6);
    const loads = Array.from({ length: k }, () => rnd(10));
    const caps = Array.from({ length: k }, () => rnd(8));
    const count = rnd(40);
    const want = loads.map(() => 0);
    for (let j = 0; j < count; j++) {
      let pick = -1;
      for (let i = 0; i < k; i++) {
        if (want[i]! >= caps[i]!) continue;
        if (pick < 0 || loads[i]! + want[i]! < loads[pick]! + want[pick]!) pick = i;
      }
      if (pick < 0) break;
      want[pick]!++;
    }
    assert.deepEqual(levelFill(loads, caps, count), want, JSON.stringify({ loads, caps, count }));
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

test('targetDepth gives a deque to short jobs only', () => {
  assert.equal(targetDepth(undefined), 1);
  assert.equal(targetDepth(50), 1);
  assert.ok(targetDepth(0.01) > 50);
  assert.ok(targetDepth(0.5) >= 4);
});

test('a local worker holds the next long job only while many wait, and never one of unknown cost', async () => {
  const events = { onResult() {}, onJobFailed() {}, onRequeue() {}, onCapacity() {} };
  const pool = new LocalPool({ ncpus: 2, isolation: 'thread', sharedMemory: false }, events);
  try {
    const many = HOLD_NEXT_WAITING_PER_WORKER * 2;
    assert.equal(pool.room(50, many - 1), 2, 'near the end of a burst: one job per worker');
    assert.equal(pool.room(50, many), 4, 'many waiting: the running one and the next');
    assert.equal(pool.room(undefined, 1000), 2, 'unknown cost: one per worker');
    assert.equal(pool.room(0.01, 0), 2 * targetDepth(0.01), 'short jobs: the deque budget decides');
  } finally {
    await pool.close();
  }
});

test('roomOfNodes: a pool holds long jobs ahead only with what the other nodes leave waiting', async () => {
  const events = { onResult() {}, onJobFailed() {}, onRequeue() {}, onCapacity() {} };
  const pool = new LocalPool({ ncpus: 2, isolation: 'thread', sharedMemory: false }, events);
  try {
    const idleRemote = { room: () => 16 }; // e.g. 8 idle CPUs, two jobs each
    assert.deepEqual(roomOfNodes([pool], 50, 8), [4], 'alone, with many waiting: two per worker');
    assert.deepEqual(roomOfNodes([pool, idleRemote], 50, 16 + 4), [4, 16], 'enough for all');
    assert.deepEqual(
      roomOfNodes([pool, idleRemote], 50, 8),
      [2, 16],
      'the remote CPUs would idle: one per worker',
    );
  } finally {
    await pool.close();
  }
});

test('placeJobs: by room while many wait, by expected finish near the end of a burst', () => {
  const node = (room: number, msPerJob: number) => ({
    ncpus: 2,
    held: 2,
    room,
    msPerJob,
    rttMs: 0,
    stealable: 0,
  });
  const fast = node(2, 10);
  const slow = node(8, 30);
  // Many waiting: every node takes all its room, however slow.
  assert.deepEqual(placeJobs(FINISH_WINDOW + 1, [fast, slow]), [2, 8]);
  // The last two jobs: the busy fast node finishes both sooner than the slow one starts them.
  assert.deepEqual(placeJobs(2, [fast, slow]), [2, 0]);
});
