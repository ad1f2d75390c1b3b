import assert from 'node:assert/strict';

declare const SALT: string;
declare const crypto: typeof import('node:crypto');
declare const fs: typeof import('node:fs');
declare const worker_threads: typeof import('node:worker_threads');
declare const G: unknown;
declare const T: unknown[];
declare const P: { norm(): number };

import { after, describe, test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { getBundle } from '../src/functions/bundle.ts';
import {
  JobCancelledError,
  JobTimeoutError,
  type Progress,
  Server,
  ServerClosedError,
  Template,
  UndeclaredIdentifierError,
  WorkerCrashError,
} from '../src/index.ts';
import type { DispatchJob, NodeEvents } from '../src/nodes/compute-node.ts';
import { wholeArgs } from '../src/nodes/job-args.ts';
import { LocalPool } from '../src/nodes/local-pool.ts';
import { decodeRange, encode } from '../src/protocol/codec.ts';
import { type FunctionDefinition, GLOBALS_MAX_DEPTH, HEAD_LIMITS } from '../src/protocol/messages.ts';
import { pollUntil } from './helpers/poll.ts';

function isprime(n: number): boolean {
  if (n < 2) return false;
  for (let i = 2; i * i <= n; i++) if (n % i === 0) return false;
  return true;
}
function sumPrimes(n: number): number {
  let s = 0;
  for (let x = 2; x < n; x++) if (isprime(x)) s += x;
  return s;
}

class Point {
  constructor(
    public x: number,
    public y: number,
  ) {}
  norm(): number {
    return Math.hypot(this.x, this.y);
  }
}

/** A value nested `levels` objects deep: { v: { v: ... 0 } }. */
function nested(levels: number): unknown {
  let v: unknown = 0;
  for (let i = 0; i < levels; i++) v = { v };
  return v;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Job 4000 of 5000 exits its worker, by when the function is measured at microseconds and each worker holds up to 1024 jobs. */
async function crashBehindQueuedJobs(server: Server): Promise<void> {
  const n = 5000;
  const seen = new Uint8Array(n);
  const work = (i: number) => {
    if (i === 4000) process.exit(3);
    return i;
  };
  const jobs = Array.from({ length: n }, (_, i) =>
    server.submit(work, [i], { callback: (r: number) => seen[r]!++ }),
  );
  await assert.rejects(jobs[4000]!, (e: any) => e instanceof WorkerCrashError && e.exitCode === 3);
  await server.wait();
  for (let i = 0; i < n; i++) {
    if (i === 4000) continue;
    assert.equal(await jobs[i], i);
    assert.equal(seen[i], 1, `job ${i} delivered once`);
  }
}

/**
 * Jobs cancelled while they wait inside a worker, behind a job it is running, must never
 * start: the worker reads the cancel before it starts the next job.
 */
async function cancelQueuedInWorker(isolation: 'process' | 'thread'): Promise<void> {
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'pp-cancel-'));
  const file = join(dir, 'ran');
  await using server = new Server({ ncpus: 1, isolation });
  const mark = (path: string, tag: string, ms: number) => {
    const end = Date.now() + ms;
    while (Date.now() < end);
    fs.appendFileSync(path, `${tag}\n`);
    return tag;
  };
  const opts = { modules: ['node:fs'] };
  try {
    // Measured as tiny, so the worker gets the long one and the five behind it in one batch.
    await Promise.all(
      Array.from({ length: 30 }, () => server.submit(mark, [join(dir, 'warm'), 'w', 0], opts)),
    );
    const ac = new AbortController();
    const long = server.submit(mark, [file, 'long', 400], opts);
    const queued = Array.from({ length: 5 }, (_, i) =>
      server.submit(mark, [file, `queued ${i}`, 0], { ...opts, signal: ac.signal }),
    );
    // Cancelled once all six are in the worker: the path under test is the worker's queue.
    await pollUntil(() => server.getActiveNodes()[0]?.inFlight === 6, { what: 'six jobs in the worker' });
    ac.abort();
    for (const q of queued) await assert.rejects(q, (e: any) => e.name === 'AbortError');
    assert.equal(await long, 'long');
    assert.equal(await server.submit(mark, [file, 'after', 0], opts), 'after');
    assert.deepEqual(readFileSync(file, 'utf8').trim().split('\n'), ['long', 'after']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('Server on local processes', () => {
  const server = new Server({ ncpus: 2 });
  after(() => server.close());

  test('runs jobs with deps and returns their results in order of submission', async () => {
    const inputs = [100, 1000, 5000, 20000];
    const jobs = inputs.map((n) => server.submit(sumPrimes, [n], { deps: [isprime] }));
    const got = await Promise.all(jobs);
    assert.deepEqual(
      got,
      inputs.map((n) => sumPrimes(n)),
    );
    assert.equal(got[0], 1060);
    assert.ok(jobs.every((j) => j.finished));
  });

  test('binds modules and globals by name', async () => {
    const md5 = (s: string) =>
      crypto
        .createHash('md5')
        .update(s + SALT)
        .digest('hex');
    const job = server.submit(md5, ['abc'], { modules: ['node:crypto'], globals: { SALT: '!' } });
    const { createHash } = await import('node:crypto');
    assert.equal(await job, createHash('md5').update('abc!').digest('hex'));
  });

  test('globals a worker could not read are refused at submit, saying what to do; globals at the limit run', async () => {
    const depthOf = (x: unknown): number => {
      let d = 0;
      for (; x !== null && typeof x === 'object'; d++) x = (x as { v: unknown }).v;
      return d;
    };
    const readG = () => depthOf(G);
    const ok = server.submit(readG, [], { deps: [depthOf], globals: { G: nested(GLOBALS_MAX_DEPTH) } });
    assert.equal(await ok, GLOBALS_MAX_DEPTH);
    assert.throws(
      () => server.submit(readG, [], { deps: [depthOf], globals: { G: nested(GLOBALS_MAX_DEPTH + 8) } }),
      (e: any) =>
        e instanceof RangeError &&
        e.message.includes(
          `the globals of readG nest too deep to be sent: globals.G${'.v'.repeat(GLOBALS_MAX_DEPTH)} `,
        ) &&
        e.message.includes(`more than ${GLOBALS_MAX_DEPTH} levels down`) &&
        e.message.includes(`at most ${HEAD_LIMITS.maxDepth} levels deep`) &&
        e.message.endsWith('Pass deeply nested data as an argument instead.'),
    );
    assert.throws(
      () => server.submit(() => T.length, [], { globals: { T: new Array(HEAD_LIMITS.maxItems).fill(0) } }),
      new RegExp(
        `hold too many values to be sent: .*at most ${HEAD_LIMITS.maxItems} values.*server\\.put\\(\\)`,
      ),
    );
    // Instances of dep classes either: globals are read before the function's classes exist.
    assert.throws(
      () => server.submit(() => P.norm(), [], { deps: [Point], globals: { P: new Point(3, 4) } }),
      /the globals of .* must be plain values.*Point.*Pass class instances as arguments instead\./,
    );
    // As the message says: deep data goes as an argument.
    assert.equal(await server.submit(depthOf, [nested(100)]), 100);
  });

  test('a job that throws rejects with its own error; other jobs go on', async () => {
    class Boom extends Error {
      code = 'E_BOOM';
    }
    function explode(n: number): number {
      if (n === 3) throw new Boom(`no ${n}`);
      return n * 2;
    }
    const jobs = [1, 2, 3, 4].map((n) => server.submit(explode, [n], { deps: [Boom] }));
    await assert.rejects(jobs[2]!.result(), (e: any) => {
      assert.equal(e instanceof Boom, true, 'error arrives as an instance of its class');
      assert.equal(e.message, 'no 3');
      assert.equal(e.code, 'E_BOOM');
      assert.match(e.stack, /explode/);
      assert.equal(e.job.name, 'explode');
      return true;
    });
    assert.deepEqual(await Promise.all([jobs[0], jobs[1], jobs[3]]), [2, 4, 8]);
    await assert.rejects(
      server.submit(() => {
        throw new RangeError('r');
      }, []),
      RangeError,
    );
  });

  test('submit refuses a function that uses an undeclared name, before sending anything', () => {
    assert.throws(
      () => server.submit(sumPrimes, [10]),
      (e: any) =>
        e instanceof UndeclaredIdentifierError && /isprime/.test(e.message) && /deps/.test(e.message),
    );
  });

  test('the same function, with and without deps, in turns: each submit checked on its own', async () => {
    // submit remembers the last plain function (no deps, modules, globals): a refused one must
    // never be remembered, and one given deps must not make a plain submit of it pass.
    for (let round = 0; round < 2; round++) {
      assert.throws(() => server.submit(sumPrimes, [10]), UndeclaredIdentifierError);
      assert.equal(await server.submit(sumPrimes, [10], { deps: [isprime] }), sumPrimes(10));
      assert.throws(() => server.submit(sumPrimes, [10]), UndeclaredIdentifierError);
    }
    const twice = (x: number) => 2 * x;
    const thrice = (x: number) => 3 * x;
    const out = await Promise.all([
      server.submit(twice, [1]),
      server.submit(twice, [2]),
      server.submit(thrice, [2]),
      server.submit(twice, [3], { globals: { unused: 1 } }),
      server.submit(twice, [4]),
    ]);
    assert.deepEqual(out, [2, 4, 6, 6, 8]);
  });

  test('submit refuses arguments that cannot travel', () => {
    assert.throws(() => server.submit((f: unknown) => f, [() => 1]), /args\[0\]/);
    assert.throws(() => server.submit((p: Point) => p.x, [new Point(1, 2)]), /Point/);
  });

  test('class instances in deps travel both ways as instances', async () => {
    const flip = (p: Point) => new Point(p.y, p.x);
    const out = await server.submit(flip, [new Point(3, 4)], { deps: [Point] });
    assert.ok(out instanceof Point);
    assert.deepEqual([out.x, out.y, out.norm()], [4, 3, 5]);
  });

  test('method form: the object travels as this', async () => {
    class Scaler {
      constructor(public k: number) {}
      scale(v: number) {
        return v * this.k;
      }
    }
    assert.equal(await server.submit([new Scaler(3), 'scale'], [5]), 15);
  });

  test('structured values round-trip', async () => {
    const v = {
      m: new Map([[1, new Set(['a'])]]),
      d: new Date(5),
      b: 10n ** 30n,
      t: new Float64Array([1.5, -0]),
      u: undefined,
      n: NaN,
    };
    const out: any = await server.submit((x: unknown) => x, [v]);
    assert.deepEqual(out, v);
    assert.ok(Object.is(out.t[1], -0));
  });

  test('async functions are awaited in the worker', async () => {
    const later = async (x: number) => {
      await new Promise((r) => setTimeout(r, 5));
      return x + 1;
    };
    assert.deepEqual(await Promise.all([1, 2, 3].map((x) => server.submit(later, [x]))), [2, 3, 4]);
  });

  test('a function is compiled once per worker however many jobs use it', async () => {
    // biome-ignore lint/complexity/noStaticOnlyClass: its static block counts compilations
    class CompileCounter {
      static {
        (globalThis as any).ppCompiles = ((globalThis as any).ppCompiles ?? 0) + 1;
      }
    }
    const probe = () => [(globalThis as any).ppCompiles, CompileCounter.name];
    const results = await Promise.all(
      Array.from({ length: 2000 }, () => server.submit(probe, [], { deps: [CompileCounter] })),
    );
    assert.ok(
      results.every((r) => r[0] === 1),
      'every job saw a single compilation in its worker',
    );
  });

  test('callbacks run here with callbackArgs first, and wait(group) waits for the group', async () => {
    const seen: Array<[string, number]> = [];
    for (let i = 0; i < 20; i++) {
      server.submit((x: number) => x * x, [i], {
        callback: (tag: string, r: number) => seen.push([tag, r]),
        callbackArgs: ['sq'],
        group: 'g1',
      });
    }
    await server.wait('g1');
    assert.equal(seen.length, 20);
    assert.deepEqual(
      seen.map((s) => s[1]).sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => i * i).sort((a, b) => a - b),
    );
    assert.ok(seen.every((s) => s[0] === 'sq'));
  });

  test('wait reports progress while it waits, per group or over all jobs, and a new burst starts from zero', async () => {
    const slow = (i: number) => {
      const until = Date.now() + 15;
      while (Date.now() < until) {}
      if (i === 7) throw new Error('seven');
      return i;
    };
    const jobs = Array.from({ length: 40 }, (_, i) => server.submit(slow, [i], { group: 'p' }));
    jobs[7]!.catch(() => {});
    const other = server.submit((x: number) => x, [1], { group: 'q' });
    const reports: Progress[] = [];
    await server.wait('p', { onProgress: (p) => reports.push(p), progressEveryMs: 40 });
    assert.ok(reports.length >= 4, `${reports.length} reports`);
    assert.deepEqual(reports[0], { total: 40, finished: 0, failed: 0, pending: 40 });
    assert.deepEqual(reports.at(-1), { total: 40, finished: 40, failed: 1, pending: 0 });
    for (let i = 1; i < reports.length; i++) {
      assert.ok(reports[i]!.finished >= reports[i - 1]!.finished, 'never goes back');
      assert.equal(reports[i]!.finished + reports[i]!.pending, 40);
    }
    assert.ok(
      reports.some((r) => r.finished > 0 && r.finished < 40),
      'a report in the middle',
    );
    await other;
    assert.deepEqual(server.progress('q'), { total: 1, finished: 1, failed: 0, pending: 0 });
    assert.equal(server.progress().total, 41);
    // The next burst counts from zero; wait(options) waits for all groups.
    const next = [1, 2, 3].map((x) => server.submit((v: number) => v, [x], { group: 'p' }));
    assert.deepEqual(server.progress('p'), { total: 3, finished: 0, failed: 0, pending: 3 });
    const last: Progress[] = [];
    await server.wait({ onProgress: (p) => last.push(p) });
    assert.deepEqual(last.at(-1), { total: 3, finished: 3, failed: 0, pending: 0 });
    assert.deepEqual(await Promise.all(next), [1, 2, 3]);
    assert.deepEqual(server.progress('never used'), { total: 0, finished: 0, failed: 0, pending: 0 });
    assert.throws(() => server.wait({ onProgress: () => {}, progressEveryMs: 0 }), RangeError);
  });

  test('put stores a value once per worker; jobs take the Ref as an argument', async () => {
    const big = new Float64Array(1 << 16).map((_, i) => i);
    const ref = server.put(big);
    const sum = (a: Float64Array, k: number) => a.reduce((s, x) => s + x, 0) * k;
    const expected = big.reduce((s, x) => s + x, 0);
    const got = await Promise.all([1, 2, 3, 4, 5, 6].map((k) => server.submit(sum, [ref, k])));
    assert.deepEqual(
      got,
      [1, 2, 3, 4, 5, 6].map((k) => expected * k),
    );
    server.release(ref);
    assert.throws(() => server.submit(sum, [ref, 1]), /released/);
  });

  test('Template submits one function many times', async () => {
    const t = new Template(server, sumPrimes, { deps: [isprime] });
    assert.deepEqual(await Promise.all([t.submit(100), t.submit(10)]), [1060, 17]);
  });

  test('a job that exits its worker rejects; the worker is replaced and no other job is lost or repeated', async () => {
    const deliveries = new Map<number, number>();
    const work = (i: number) => {
      if (i === 37) process.exit(7);
      return i;
    };
    const jobs = Array.from({ length: 200 }, (_, i) =>
      server.submit(work, [i], { callback: (r: number) => deliveries.set(r, (deliveries.get(r) ?? 0) + 1) }),
    );
    await assert.rejects(
      jobs[37]!,
      (e: any) => e instanceof WorkerCrashError && e.exitCode === 7 && /work/.test(e.message),
    );
    await server.wait();
    for (let i = 0; i < 200; i++) {
      if (i === 37) continue;
      assert.equal(await jobs[i], i);
      assert.equal(deliveries.get(i), 1, `job ${i} delivered once`);
    }
    assert.equal(await server.submit((x: number) => x, [1]), 1);
  });

  test('a crash behind hundreds of queued tiny jobs loses none of them and repeats none', () =>
    crashBehindQueuedJobs(server));

  test('a job cancelled while it waits behind a running job inside a worker never starts', () =>
    cancelQueuedInWorker('process'));

  test('results written while the server is not reading (full socket) all arrive, once and in order', async () => {
    // Workers write each result straight to their socket; when it is full they queue behind
    // it. Keep this process busy so the sockets fill (a worker holds hundreds of these 4 KB
    // results, more than a socket buffer: strace shows EAGAIN), and check nothing is lost or mixed up.
    const n = 20_000;
    const seen = new Uint8Array(n);
    const jobs = Array.from({ length: n }, (_, i) =>
      server.submit((x: number) => ({ x, pad: 'y'.repeat(4000) }), [i], {
        callback: (r: { x: number }) => seen[r.x]!++,
      }),
    );
    await new Promise((r) => setTimeout(r, 20)); // let the first batches go out
    const until = Date.now() + 400;
    while (Date.now() < until) {} // not reading: the workers' sockets fill up
    const got = await Promise.all(jobs);
    for (let i = 0; i < n; i++) {
      assert.equal(got[i]!.x, i);
      assert.equal(seen[i], 1, `job ${i} delivered once`);
    }
  });

  test('a job whose worker crashes with a segmentation fault rejects; the server keeps going', async () => {
    const crash = () => process.kill(process.pid, 'SIGSEGV');
    const job = server.submit(crash, []);
    const after = server.submit((x: number) => x + 1, [41]);
    await assert.rejects(
      job.result(),
      (e: any) =>
        e instanceof WorkerCrashError && e.signal === 'SIGSEGV' && /segmentation fault/.test(e.message),
    );
    assert.equal(await after, 42);
  });

  test('an infinite loop past its timeout rejects; the server keeps going', async () => {
    const spin = () => {
      for (;;);
    };
    const stuck = server.submit(spin, [], { timeout: 300 });
    const fine = Array.from({ length: 10 }, (_, i) => server.submit((x: number) => x + 1, [i]));
    await assert.rejects(stuck, JobTimeoutError);
    assert.deepEqual(
      await Promise.all(fine),
      Array.from({ length: 10 }, (_, i) => i + 1),
    );
  });

  test('signal cancels a queued job and a running one: an AbortError whose cause is the reason', async () => {
    const spin = () => {
      for (;;);
    };
    const ncpus = server.getActiveNodes()[0]!.ncpus;
    const ac = new AbortController();
    const running = Array.from({ length: ncpus }, () => server.submit(spin, [], { signal: ac.signal }));
    // Every CPU spins: this one waits in a queue until its signal fires.
    const queuedAc = new AbortController();
    const queued = server.submit((x: number) => x, [1], { signal: queuedAc.signal });
    await pollUntil(() => server.getActiveNodes()[0]!.inFlight >= ncpus, {
      what: 'the spinning jobs to be placed',
    });
    assert.equal(queued.state, 'pending');
    const why = new Error('no longer needed');
    queuedAc.abort(why);
    await assert.rejects(
      queued,
      (e: any) => e instanceof JobCancelledError && e.name === 'AbortError' && e.cause === why,
    );
    ac.abort('stop');
    for (const r of running)
      await assert.rejects(
        r,
        (e: any) => e instanceof JobCancelledError && e.name === 'AbortError' && e.cause === 'stop',
      );
    // A signal aborted before submit: the same error, at once.
    const pre = new AbortController();
    pre.abort();
    await assert.rejects(
      server.submit((x: number) => x, [1], { signal: pre.signal }),
      (e: any) => e instanceof JobCancelledError && e.cause === pre.signal.reason,
    );
    assert.equal(await server.submit((x: number) => x, [2]), 2);
  });

  test('job.cancel(reason) rejects with an AbortError whose cause is the reason, an Error too', async () => {
    const gate = server.submit(() => {
      const end = Date.now() + 300;
      while (Date.now() < end);
    }, []);
    const job = server.submit((x: number) => x, [1]);
    const reason = new TypeError('user gave up');
    job.cancel(reason);
    await assert.rejects(
      job,
      (e: any) => e instanceof JobCancelledError && e.name === 'AbortError' && e.cause === reason,
    );
    await gate;
  });

  test("getStats counts every finished job on the local node and printStats prints pp's table", async () => {
    const before = server.getStats().totalJobs;
    await Promise.all(Array.from({ length: 10 }, (_, i) => server.submit((x: number) => x, [i])));
    const s = server.getStats();
    assert.equal(s.totalJobs, before + 10);
    assert.equal(s.nodes[0]!.node, 'local');
    assert.equal(s.ncpus, 2);
    let text = '';
    server.printStats((t) => (text = t));
    assert.match(
      text,
      /^Job execution statistics:\n job count \| % of all jobs \| job time sum \| time per job \| speed \| job server\n/,
    );
    assert.match(text, /\| local\n/);
    assert.match(text, /active tasks, 2 cores$/);
  });
});

test('a Job is a Promise: awaited, in Promise.all, and never an unhandled rejection when nobody awaits it', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  const server = new Server({ ncpus: 1 });
  try {
    const fail = (x: number) => {
      throw new RangeError(`bad ${x}`);
    };
    // Callback style: the failed job is never awaited (its failure is printed instead).
    const errors: unknown[] = [];
    server.on('job-error', (_job, e) => errors.push(e));
    const ignored = server.submit(fail, [1], { callback: () => {} });
    await server.wait();
    await new Promise((r) => setTimeout(r, 50)); // unhandled rejections are reported by then
    assert.equal(ignored.state, 'rejected');
    assert.equal(ignored.observed, false);
    assert.deepEqual(unhandled, []);
    assert.equal(errors.length, 1);

    const ok = server.submit((x: number) => x * 2, [21]);
    assert.ok(ok instanceof Promise);
    assert.equal(await ok, 42);
    const derived = ok.then((v) => v + 1);
    assert.equal(Object.getPrototypeOf(derived), Promise.prototype, 'then gives a plain Promise');
    assert.equal(await derived, 43);
    assert.deepEqual(
      await Promise.all([server.submit((x: number) => x, [1]), server.submit((x: number) => x, [2])]),
      [1, 2],
    );
    const failed = server.submit(fail, [2]);
    await assert.rejects(failed, (e: any) => e instanceof RangeError && e.message === 'bad 2');
    const caught = server.submit(fail, [4]);
    assert.match(String(await caught.catch((e: Error) => e.message)), /bad 4/);
    assert.equal(caught.observed, true);
    // Awaited after it failed: still its own error, and still no unhandled rejection.
    const late = server.submit(fail, [3]);
    await server.wait();
    await new Promise((r) => setTimeout(r, 50));
    await assert.rejects(late, /bad 3/);
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    await server.close();
  }
});

/** Keeps its worker busy for `ms`, then says which worker process it ran in. */
function slow(ms: number): number {
  const end = Date.now() + ms;
  while (Date.now() < end);
  return process.pid;
}

test('setNcpus grows at once and shrinks while jobs run', async () => {
  await using server = new Server({ ncpus: 1 });
  const first = Array.from({ length: 6 }, () => server.submit(slow, [100]));
  server.setNcpus(3);
  assert.equal(server.getNcpus(), 3);
  const pids1 = new Set(await Promise.all(first));
  assert.ok(pids1.size >= 2, `jobs ran on ${pids1.size} workers after growing`);
  const second = Array.from({ length: 6 }, () => server.submit(slow, [50]));
  server.setNcpus(1);
  assert.equal(server.getNcpus(), 1);
  assert.equal((await Promise.all(second)).length, 6);
  const third = new Set(await Promise.all(Array.from({ length: 6 }, () => server.submit(slow, [20]))));
  assert.equal(third.size, 1, 'one worker left');
});

for (const isolation of ['process', 'thread'] as const) {
  test(`shrinking (${isolation}): a retired worker finishes the job it runs and gives back those queued behind it`, async () => {
    const { mkdtempSync, readFileSync, rmSync, existsSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'pp-shrink-'));
    const started = join(dir, 'started');
    await using server = new Server({ ncpus: 2, isolation });
    const slow = (ms: number, log: string) => {
      if (log) fs.appendFileSync(log, 'x\n');
      const end = Date.now() + ms;
      while (Date.now() < end);
      return `${process.pid}/${worker_threads.threadId}`; // the worker, in either isolation
    };
    const opts = { modules: ['node:worker_threads', 'node:fs'] };
    // Measured as tiny, so that each worker takes four of the slow ones at once.
    await Promise.all(Array.from({ length: 30 }, () => server.submit(slow, [0, ''], opts)));
    const jobs = Array.from({ length: 8 }, () => server.submit(slow, [300, started], opts));
    // Both workers run their first slow job (the others wait behind it): now one retires.
    await pollUntil(() => existsSync(started) && readFileSync(started, 'utf8').length >= 4, {
      what: 'both workers running a slow job',
    });
    server.setNcpus(1);
    const perWorker = new Map<string, number>();
    try {
      for (const pid of await Promise.all(jobs)) perWorker.set(pid, (perWorker.get(pid) ?? 0) + 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.deepEqual(
      [...perWorker.values()].sort((a, b) => a - b),
      [1, 7],
      'the retired worker ran one job, the other worker the seven others',
    );
  });
}

test('a retiring worker that crashes in its last job fails that job, and does not run it again', async () => {
  const { mkdtempSync, readFileSync, rmSync, existsSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'pp-retire-'));
  const file = join(dir, 'ran');
  const ran = () => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').sort() : []);
  try {
    await using server = new Server({ ncpus: 2 });
    const boom = (path: string, tag: string) => {
      fs.appendFileSync(path, `${tag}\n`);
      const end = Date.now() + 200;
      while (Date.now() < end);
      process.exit(3);
    };
    const jobs = ['a', 'b'].map((tag) => server.submit(boom, [file, tag], { modules: ['node:fs'] }));
    while (ran().length < 2) await new Promise((r) => setTimeout(r, 5)); // both running
    server.setNcpus(1); // one of the two retires: it is stopped only once it holds no job
    for (const job of jobs) await assert.rejects(job, WorkerCrashError);
    assert.deepEqual(ran(), ['a', 'b'], 'each ran once');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('idle workers get one job each before any gets a second, even for jobs measured as tiny', async () => {
  await using server = new Server({ ncpus: 2 });
  await Promise.all(Array.from({ length: 30 }, () => server.submit(slow, [0])));
  const pids = await Promise.all([server.submit(slow, [100]), server.submit(slow, [100])]);
  assert.equal(new Set(pids).size, 2, 'the two jobs ran on the two workers');
});

test('a worker that runs out of memory loses only its job', async () => {
  await using server = new Server({ ncpus: 1, workerMemoryMb: 64 });
  const hog = () => {
    const keep: number[][] = [];
    for (;;) keep.push(new Array(1e6).fill(1));
  };
  const job = server.submit(hog, []);
  const after = server.submit((x: number) => x * 3, [3]);
  await assert.rejects(job, WorkerCrashError);
  assert.equal(await after, 9);
});

test('close ends every worker, rejects unfinished jobs, and submit after close throws', async () => {
  const server = new Server({ ncpus: 2 });
  const pids = await Promise.all([1, 2, 3, 4].map(() => server.submit(() => process.pid, [])));
  const pending = server.submit(() => {
    for (;;);
  }, []);
  await server.close();
  await assert.rejects(pending, ServerClosedError);
  assert.throws(() => server.submit((x: number) => x, [1]), ServerClosedError);
  for (const pid of new Set(pids)) assert.equal(alive(pid), false, `worker ${pid} ended`);
});

test("a finished Job the caller keeps does not keep its arguments' memory alive", async () => {
  // Arguments copied onto the heap (no shared memory) belong to the server's record of the job.
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const collect = async () => {
    gc();
    await new Promise((r) => setTimeout(r, 20));
    gc();
    return process.memoryUsage().arrayBuffers;
  };
  await using server = new Server({ ncpus: 2, sharedMemory: false });
  const length = (a: Float64Array) => a.length;
  const before = await collect();
  const jobs = Array.from({ length: 80 }, () => server.submit(length, [new Float64Array(1 << 17)])); // 1 MiB each
  assert.deepEqual(new Set(await Promise.all(jobs)), new Set([1 << 17]));
  const grown = (await collect()) - before;
  // Held, their arguments would be 80 MiB.
  assert.ok(grown < 30 * 2 ** 20, `${(grown / 2 ** 20).toFixed(0)} MiB still held by 80 finished jobs`);
  assert.equal(jobs.length, 80); // the jobs were kept all along
});

describe('Server on worker threads', () => {
  test('runs jobs, survives a job that exits its thread', async () => {
    await using server = new Server({ ncpus: 2, isolation: 'thread' });
    assert.equal(await server.submit(sumPrimes, [100], { deps: [isprime] }), 1060);
    const bad = server.submit(() => process.exit(3), []);
    const good = Array.from({ length: 20 }, (_, i) => server.submit((x: number) => x, [i]));
    await assert.rejects(bad, WorkerCrashError);
    assert.deepEqual(
      await Promise.all(good),
      Array.from({ length: 20 }, (_, i) => i),
    );
  });

  test('a crash behind hundreds of queued tiny jobs loses none of them and repeats none', async () => {
    await using server = new Server({ ncpus: 2, isolation: 'thread' });
    await crashBehindQueuedJobs(server);
  });

  test('a job cancelled while it waits behind a running job inside a worker never starts', () =>
    cancelQueuedInWorker('thread'));
});

/**
 * Defence behind submit's check: messages a worker cannot read, as a sender that skipped it
 * would send them, straight to a pool. Each job must be answered, never left waiting.
 */
for (const isolation of ['process', 'thread'] as const) {
  describe(`a worker (${isolation}) sent a message it cannot read`, () => {
    /** A pool of one worker, and what it reported of each job, as readable lines. */
    function pool(): { pool: LocalPool; outcomes: Map<number, string> } {
      const outcomes = new Map<number, string>();
      const events: NodeEvents = {
        onResult: (_n, job, status, _ms, bytes, start, end) => {
          const value = decodeRange(bytes, start, end);
          outcomes.set(job.id, `status ${status}: ${value instanceof Error ? value.message : value}`);
        },
        onJobFailed: (_n, job, error) => outcomes.set(job.id, `failed: ${error.name}: ${error.message}`),
        onRequeue: (_n, jobs) => {
          for (const j of jobs) outcomes.set(j.id, 'requeued');
        },
        onCapacity: () => {},
      };
      return { pool: new LocalPool({ ncpus: 1, isolation }, events), outcomes };
    }
    const dispatch = (id: number, def: FunctionDefinition, args: unknown[]): DispatchJob => ({
      id,
      hash: def.hash,
      name: def.name,
      definition: () => def,
      args: wholeArgs(encode([undefined, args])),
      estimatedMs: undefined,
      timeoutMs: undefined,
      refs: [],
    });
    const definition = (fn: Function, globals: Record<string, unknown> = {}): FunctionDefinition => {
      const { hash, name, code, bindings, modules } = getBundle({ fn });
      return { hash, name, code, bindings: [...bindings, ...Object.keys(globals)], modules, globals };
    };
    const until = async (cond: () => boolean, what: string) => {
      for (const end = Date.now() + 10_000; !cond(); await new Promise((r) => setTimeout(r, 10)))
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    };
    const double = (x: number) => x * 2;

    test('a definition past the head limits: its job fails with why, the next job runs', {
      timeout: 30_000,
    }, async () => {
      const { pool: p, outcomes } = pool();
      try {
        const deep = definition(() => 1, { G: nested(HEAD_LIMITS.maxDepth) });
        p.dispatch([dispatch(1, deep, []), dispatch(2, definition(double), [21])]);
        await until(() => outcomes.size === 2, 'both outcomes');
        assert.match(
          outcomes.get(1)!,
          /^status 2: the worker could not read the 'define' message .*nesting deeper than maxDepth \(16\)/,
        );
        assert.equal(outcomes.get(2), 'status 0: 42');
      } finally {
        await p.close();
      }
    });

    test('a message it cannot read at all: it is replaced, its job fails with why, the others come back', {
      timeout: 30_000,
    }, async () => {
      const { pool: p, outcomes } = pool();
      try {
        const malformed = { ...definition(() => 1), code: 42 as unknown as string };
        p.dispatch([dispatch(1, malformed, []), dispatch(2, definition(double), [21])]);
        await until(() => outcomes.size === 2, 'both outcomes');
        assert.match(
          outcomes.get(1)!,
          /^failed: JobSetupError: .*\(job 1\) did not finish: the worker could not read a message from the server: malformed 'define' message/,
        );
        assert.equal(outcomes.get(2), 'requeued');
        const again = dispatch(3, definition(double), [4]);
        await until(() => p.ncpus === 1 && p.room(undefined, 0) > 0, 'a new worker');
        p.dispatch([again]);
        await until(() => outcomes.has(3), 'a job on the new worker');
        assert.equal(outcomes.get(3), 'status 0: 8');
      } finally {
        await p.close();
      }
    });
  });
}

describe('Server.ready', () => {
  test('resolves once the local workers have started; jobs run as before (a worker warming up gives way)', async () => {
    const server = new Server({ ncpus: 2 });
    try {
      await server.ready();
      await server.ready(); // at once when already ready
      const jobs = Array.from({ length: 200 }, (_, i) => server.submit((x: number) => x * 2, [i]));
      assert.deepEqual(
        await Promise.all(jobs),
        Array.from({ length: 200 }, (_, i) => i * 2),
      );
    } finally {
      await server.close();
    }
    const none = new Server({ ncpus: 0 });
    await none.ready(); // no local workers: nothing to wait for
    await none.close();
  });
});

test('a job submitted while a CPU idles starts at once, while the caller is still submitting', async () => {
  const { existsSync, mkdtempSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'pp-start-'));
  await using server = new Server({ ncpus: 2 });
  await server.ready();
  const touch = (path: string) => fs.writeFileSync(path, '');
  const opts = { modules: ['node:fs'] };
  try {
    // Every path its own file: the first job of each worker. The caller does not return to the
    // event loop until both exist (or 20 s pass), so only a job sent from within submit() runs.
    const files = [join(dir, 'a'), join(dir, 'b')];
    const jobs = files.map((f) => server.submit(touch, [f], opts));
    const queued = server.submit(touch, [join(dir, 'c')], opts);
    const until = Date.now() + 20_000;
    while (!files.every((f) => existsSync(f)) && Date.now() < until);
    assert.ok(
      files.every((f) => existsSync(f)),
      'both started before the caller yielded',
    );
    // One per idle CPU: the third waited for the scheduled drain, as every job did before.
    assert.equal(existsSync(join(dir, 'c')), false);
    await Promise.all([...jobs, queued]);
    assert.ok(existsSync(join(dir, 'c')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
