// The one dispatcher (src/scheduler/dispatcher.ts) over both queue kinds, with simulated
// targets: what it hands to whom, in which order, and what it leaves queued.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Dispatcher, type JobQueue, type JobSink, type Placement } from '../src/scheduler/dispatcher.ts';
import { FairQueue } from '../src/scheduler/fair-queue.ts';
import { Fifo } from '../src/scheduler/fifo.ts';
import { assignJobs } from '../src/scheduler/policy.ts';

/** A job named by its owner and number: `a3` is owner `a`'s third. */
type Job = string;

/** A simulated node: room for `depth` jobs, runs only what `runs` accepts. */
class Target {
  readonly batches: Job[][] = [];
  constructor(
    readonly name: string,
    public depth: number,
    readonly runs: (job: Job) => boolean = () => true,
  ) {}
  get held(): number {
    return this.batches.reduce((n, b) => n + b.length, 0);
  }
  room(): number {
    return Math.max(0, this.depth - this.held);
  }
  get jobs(): Job[] {
    return this.batches.flat();
  }
}

/** Every target gets what it has room for (assignJobs), as the client does while many wait. */
class ByRoom implements Placement<Job, Target> {
  readonly calls: string[] = [];
  place(_next: Job, queued: number, targets: readonly Target[]): number[] {
    return assignJobs(
      queued,
      targets.map((t) => t.room()),
    );
  }
  drained(): void {
    this.calls.push('drained');
  }
  heldBack(): void {
    this.calls.push('heldBack');
  }
}

class Sink implements JobSink<Job, Target> {
  readonly gone_ = new Set<Job>();
  gone(job: Job): boolean {
    return this.gone_.has(job);
  }
  runsOn(job: Job, target: Target): boolean {
    return target.runs(job);
  }
  send(target: Target, batch: Job[]): void {
    target.batches.push(batch);
  }
}

function dispatcher(queue: JobQueue<Job>) {
  const placement = new ByRoom();
  const sink = new Sink();
  return { placement, sink, d: new Dispatcher<Job, Target>(queue, placement, sink) };
}

function fifoOf(...jobs: Job[]): Fifo<Job> {
  const q = new Fifo<Job>();
  for (const j of jobs) q.push(j);
  return q;
}

function rest(q: JobQueue<Job>): Job[] {
  const out: Job[] = [];
  for (let j = q.shift(); j !== undefined; j = q.shift()) out.push(j);
  return out;
}

const ownerOf = (job: Job): string => job[0]!;

test('a fair queue is dispatched round robin across owners: a backlog does not starve a small client', () => {
  const q = new FairQueue<Job>(ownerOf);
  for (let i = 1; i <= 50; i++) q.push(`a${i}`);
  for (let i = 1; i <= 3; i++) q.push(`b${i}`);
  for (let i = 1; i <= 2; i++) q.push(`c${i}`);
  const pool = new Target('pool', 8);
  const { d, placement } = dispatcher(q);
  assert.equal(d.run([pool]), 8);
  assert.deepEqual(pool.jobs, ['a1', 'b1', 'c1', 'a2', 'b2', 'c2', 'a3', 'b3']);
  assert.deepEqual(placement.calls, ['heldBack'], 'jobs wait, the pool is full');
  pool.depth = 10;
  d.run([pool]);
  assert.deepEqual(pool.jobs.slice(8), ['a4', 'a5'], 'only a is left');
  assert.equal(q.size, 45);
});

test('a FIFO queue is dispatched in order, split over targets by their room, until it is empty', () => {
  const q = fifoOf('j1', 'j2', 'j3', 'j4', 'j5', 'j6');
  const a = new Target('a', 4);
  const b = new Target('b', 4);
  const { d, placement } = dispatcher(q);
  assert.equal(d.run([a, b]), 6);
  assert.deepEqual(a.jobs, ['j1', 'j2', 'j3']);
  assert.deepEqual(b.jobs, ['j4', 'j5', 'j6']);
  assert.equal(a.batches.length, 1, 'one batch per target and round');
  assert.equal(q.size, 0);
  assert.deepEqual(placement.calls, ['drained'], 'the queue ran empty: the moment to steal');
});

test('a target without room gets nothing; with no room anywhere every job stays queued, in order', () => {
  const q = fifoOf('j1', 'j2', 'j3');
  const full = new Target('full', 0);
  const open = new Target('open', 2);
  const { d, placement } = dispatcher(q);
  assert.equal(d.run([full, open]), 2);
  assert.deepEqual(full.batches, []);
  assert.deepEqual(open.jobs, ['j1', 'j2']);
  assert.equal(d.run([full, open]), 0);
  assert.deepEqual(placement.calls, ['heldBack', 'heldBack']);
  assert.deepEqual(rest(q), ['j3']);
});

test('jobs skipped for a target they cannot run on go to a later target, the rest back to the front in order', () => {
  const odd = (j: Job) => Number(j.slice(1)) % 2 === 1;
  // Alone: the odd target takes the odd jobs; the even ones wait at the front, in their order.
  {
    const q = fifoOf('j1', 'j2', 'j3', 'j4', 'j5', 'j6', 'j7');
    const t = new Target('odd', 3, odd);
    const { d } = dispatcher(q);
    assert.equal(d.run([t]), 3);
    assert.deepEqual(t.jobs, ['j1', 'j3', 'j5']);
    assert.deepEqual(rest(q), ['j2', 'j4', 'j6', 'j7']);
  }
  // Before a target that runs anything: that one gets the skipped jobs first, as they came.
  {
    const q = fifoOf('j1', 'j2', 'j3', 'j4', 'j5', 'j6', 'j7');
    const t = new Target('odd', 3, odd);
    const any = new Target('any', 3);
    const { d } = dispatcher(q);
    d.run([t, any]);
    assert.deepEqual(t.jobs, ['j1', 'j3', 'j5']);
    assert.deepEqual(any.jobs, ['j2', 'j4', 'j6'], 'the skipped ones, in order, first');
    assert.deepEqual(rest(q), ['j7']);
  }
  // In a fair queue, skipped jobs go back to their own owner's line, in order.
  {
    const q = new FairQueue<Job>(ownerOf);
    for (const j of ['a1', 'a2', 'a3', 'b1', 'b2']) q.push(j);
    const t = new Target('no-b', 5, (j) => j[0] !== 'b');
    const { d } = dispatcher(q);
    d.run([t]);
    assert.deepEqual(t.jobs, ['a1', 'a2', 'a3']);
    assert.deepEqual(rest(q), ['b1', 'b2']);
  }
});

test('jobs gone while queued are dropped, never sent, and do not count as placed', () => {
  const q = fifoOf('j1', 'j2', 'j3', 'j4', 'j5');
  const t = new Target('t', 3);
  const { d, sink, placement } = dispatcher(q);
  sink.gone_.add('j1').add('j3');
  assert.equal(d.run([t]), 3);
  assert.deepEqual(t.jobs, ['j2', 'j4', 'j5']);
  assert.deepEqual(placement.calls, ['drained']);
  // Only gone jobs queued: dropped, and the queue counts as empty.
  const q2 = fifoOf('x1', 'x2');
  const { d: d2, sink: s2, placement: p2 } = dispatcher(q2);
  s2.gone_.add('x1').add('x2');
  assert.equal(d2.run([new Target('t', 3)]), 0);
  assert.equal(q2.size, 0);
  assert.deepEqual(p2.calls, ['drained']);
});

test('the placement decides: a job held back for a busy target is not given to an idle one', () => {
  const q = fifoOf('j1', 'j2');
  const fast = new Target('fast', 0);
  const slow = new Target('slow', 2);
  const calls: string[] = [];
  const holdForFast: Placement<Job, Target> = {
    place: (next, queued) => {
      calls.push(`place ${next} of ${queued}`);
      return [0, 0]; // e.g. placeByFinish: the busy fast node would finish them first
    },
    drained: () => calls.push('drained'),
    heldBack: () => calls.push('heldBack'),
  };
  const d = new Dispatcher<Job, Target>(q, holdForFast, new Sink());
  assert.equal(d.run([fast, slow]), 0);
  assert.deepEqual(slow.batches, []);
  assert.deepEqual(calls, ['place j1 of 2', 'heldBack']);
  assert.equal(q.size, 2);
});
