/**
 * The client side of test/mixed-versions.test.ts, run as its own process on one Node.js major
 * (`<node> --import tsx test/helpers/mixed-client.ts`) against pp-node nodes running on others.
 * PP_MIXED_CONFIG (JSON) says where the nodes are: {@link MixedConfig}.
 *
 * Prints `ok <check> <node version>` for every check that passed, and throws (exit code 1,
 * the assertion on stderr) at the first that did not.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobCancelledError, JobSetupError, Server } from '../../src/index.ts';

/** Bound in the worker by the job's `modules: ['node:fs']`. */
declare const fs: typeof import('node:fs');

export interface MixedConfig {
  secret: string;
  nodes: Array<{ port: number; pid: number; version: string }>;
  /** Index in `nodes` of the node to kill (its whole process group) in the last check. */
  kill: number;
}

const cfg = JSON.parse(process.env.PP_MIXED_CONFIG ?? '') as MixedConfig;

function ok(check: string, nodeVersion: string): void {
  process.stdout.write(`ok ${check} ${nodeVersion}\n`);
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---- what travels ---------------------------------------------------------------------------

class Point {
  x: number;
  y: number;
  constructor(x: number, y: number) {
    this.x = x;
    this.y = y;
  }
  norm(): number {
    return Math.hypot(this.x, this.y);
  }
}

class Ledger {
  owner: string;
  entries = new Map<string, Point>();
  constructor(owner: string) {
    this.owner = owner;
  }
  add(key: string, p: Point): this {
    this.entries.set(key, p);
    return this;
  }
}

class ValidationError extends Error {
  field: string;
  constructor(message: string, field: string) {
    super(message);
    this.name = 'ValidationError';
    this.field = field;
  }
}

/** Every kind of value the codec carries, with cycles and shared references. Runs on both sides. */
function sample(): Record<string, unknown> {
  const cycle: Record<string, unknown> = { name: 'cycle' };
  cycle.self = cycle;
  const shared = { s: 1 };
  const bytes = new ArrayBuffer(16);
  new Uint8Array(bytes).set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255]);
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, -1.25);
  const nullProto = Object.create(null) as Record<string, unknown>;
  nullProto.a = 1;
  const sparse = [1, 2, 3];
  delete sparse[1];
  const big = 2n ** 100n + 7n;
  const error = new TypeError('outer', { cause: new RangeError('inner') });
  const ledger = new Ledger('ann').add('origin', new Point(0, 0)).add('far', new Point(3, 4));
  return {
    map: new Map<unknown, unknown>([
      ['leap', new Date(Date.UTC(2024, 1, 29, 12, 30))],
      [1, new Date(0)],
      [shared, 'an object as a key'],
    ]),
    set: new Set<unknown>([1, 'a', shared, 2n]),
    invalidDate: new Date(Number.NaN), // deepStrictEqual cannot compare it before Node 24
    big,
    negative: -big,
    boxed: [Object(5n), Object('s'), Object(1.5), Object(false)],
    typed: [
      Int8Array.of(-128, 127),
      Uint8Array.of(0, 255),
      Uint8ClampedArray.of(0, 255),
      Int16Array.of(-32768),
      Uint16Array.of(65535),
      Int32Array.of(-(2 ** 31)),
      Uint32Array.of(2 ** 32 - 1),
      Float32Array.of(1.5, Number.NaN),
      Float64Array.of(Math.PI, -0, Number.POSITIVE_INFINITY),
      BigInt64Array.of(-(2n ** 63n)),
      BigUint64Array.of(2n ** 64n - 1n),
      Buffer.from('héllo wörld'),
      new Uint16Array(bytes, 2, 3),
      view,
    ],
    bytes,
    cycle,
    pair: [shared, shared],
    sparse,
    special: [undefined, Number.NaN, -0, Number.NEGATIVE_INFINITY, null, true],
    text: ['ünïcödé 🎉', '\ud800 lone', 'x'.repeat(300)],
    re: /a+(b)/giu,
    nullProto,
    error,
    aggregate: new AggregateError([new Error('one'), new ValidationError('two', 'f')], 'both'),
    point: new Point(3, 4),
    ledger,
  };
}

/**
 * A description of a value's structure and contents, computed with the runtime it runs in:
 * the node describes what it received, and this process compares with its own description.
 */
function describe(v: unknown, seen: Map<object, number> = new Map()): string {
  if (v === null) return 'null';
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v !== 'object') return `${typeof v}:${String(v)}`;
  const o = v as Record<string, unknown>;
  const id = seen.get(o);
  if (id !== undefined) return `@${id}`;
  seen.set(o, seen.size);
  const proto = Object.getPrototypeOf(o);
  const ctor = proto === null ? 'null-proto' : (proto.constructor?.name as string);
  const d = (x: unknown) => describe(x, seen);
  const props = () =>
    Object.keys(o)
      .map((k) => `${k}:${d(o[k])}`)
      .join(',');
  if (o instanceof Date) return `Date(${o.getTime()})`;
  if (o instanceof Map) return `Map{${[...o].map(([k, x]) => `${d(k)}=>${d(x)}`).join(',')}}`;
  if (o instanceof Set) return `Set{${[...o].map(d).join(',')}}`;
  if (o instanceof RegExp) return `RegExp(${String(o)})`;
  if (o instanceof ArrayBuffer) return `ArrayBuffer(${new Uint8Array(o).join(' ')})`;
  if (o instanceof DataView)
    return `DataView(${new Uint8Array(o.buffer, o.byteOffset, o.byteLength).join(' ')})`;
  if (ArrayBuffer.isView(o)) {
    const items = Array.from(o as unknown as ArrayLike<unknown>, (x) => d(x));
    return `${ctor}(${items.join(' ')})`;
  }
  if (o instanceof Error) {
    const extra = o instanceof AggregateError ? `errors:${d(o.errors)}` : '';
    return `${ctor}(${o.name}|${o.message}|cause:${d(o.cause)}|${extra}|${props()})`;
  }
  if (o instanceof Number || o instanceof String || o instanceof Boolean || o instanceof BigInt) {
    return `${ctor}(${d(o.valueOf())})`;
  }
  if (Array.isArray(o)) {
    const items: string[] = [];
    for (let i = 0; i < o.length; i++) items.push(i in o ? d(o[i]) : '<hole>');
    return `[${items.join(',')}]`;
  }
  return `${ctor}{${props()}}`;
}

// ---- jobs (they run on the node) ------------------------------------------------------------

function whereAmI(): string {
  return process.version;
}

/** Describes the value as the node sees it, checks the classes there, and sends it back. */
function inspect(v: Record<string, unknown>): { seen: string; classes: boolean[]; back: unknown } {
  const ledger = v.ledger as Ledger;
  const classes = [
    v.point instanceof Point,
    (v.point as Point).norm() === 5,
    ledger instanceof Ledger,
    ledger.entries.get('far') instanceof Point,
    (v.error as Error) instanceof TypeError && (v.error as Error).cause instanceof RangeError,
    (v.aggregate as AggregateError).errors[1] instanceof ValidationError,
    (v.cycle as Record<string, unknown>).self === v.cycle,
    (v.pair as unknown[])[0] === (v.pair as unknown[])[1],
    [...(v.set as Set<unknown>)][2] === (v.pair as unknown[])[0],
  ];
  return { seen: describe(v), classes, back: v };
}

/** Values made on the node, by the node's runtime. */
function make(): Record<string, unknown> {
  return sample();
}

function validateAge(age: number): number {
  if (age < 0) throw new ValidationError(`age ${age} is negative`, 'age');
  return age;
}

function failWithCause(): never {
  throw new TypeError('outer failure', { cause: new RangeError('the inner reason') });
}

function sumRef(data: Float64Array, scale: number): number {
  let s = 0;
  for (const x of data) s += x;
  return s * scale;
}

/** Marks its start in `dir`, runs for `ms`, then marks its end (which a cancelled job never reaches). */
function marked(dir: string, name: string, ms: number): string {
  fs.writeFileSync(`${dir}/${name}.started`, '');
  const end = Date.now() + ms;
  while (Date.now() < end);
  fs.writeFileSync(`${dir}/${name}.finished`, '');
  return name;
}

function slowSquare(i: number, ms: number): [number, string] {
  const end = Date.now() + ms;
  while (Date.now() < end);
  return [i * i, process.version];
}

const DEPS = [Point, Ledger, ValidationError, sample, describe];

// ---- checks ---------------------------------------------------------------------------------

/** All checks against one node, through a Server connected to it alone. */
async function checkOneNode(node: MixedConfig['nodes'][number], work: string): Promise<void> {
  const server = new Server({ ncpus: 0, ppservers: [`127.0.0.1:${node.port}`], secret: cfg.secret });
  try {
    await waitFor(() => server.getActiveNodes().some((n) => n.ncpus > 0), 20_000, `node ${node.version}`);
    const v = node.version;

    assert.equal(await server.submit(whereAmI, []), v, 'the job ran on the node of that version');
    ok('version', v);

    // Every kind of value, client -> node -> client.
    const sent = sample();
    const r = await server.submit(inspect, [sent], { deps: DEPS });
    assert.equal(r.seen, describe(sample()), 'the node sees what was sent');
    assert.deepEqual(
      r.classes,
      r.classes.map(() => true),
      'classes, cycles and shared references on the node',
    );
    const back = r.back as Record<string, unknown>;
    assert.deepEqual(Object.keys(back), Object.keys(sent));
    assert.ok(back.invalidDate instanceof Date && Number.isNaN(back.invalidDate.getTime()));
    for (const k of Object.keys(sent).filter((k) => k !== 'invalidDate')) {
      assert.deepStrictEqual(back[k], sent[k], `${k} comes back equal (errors with their stacks)`);
    }
    assert.ok(back.point instanceof Point && back.ledger instanceof Ledger);
    assert.equal((back.cycle as Record<string, unknown>).self, back.cycle, 'the cycle comes back a cycle');
    assert.equal((back.pair as unknown[])[0], (back.pair as unknown[])[1], 'a shared reference stays shared');
    ok('values-both-ways', v);

    // Values made by the node's runtime.
    const made = await server.submit(make, [], { deps: DEPS });
    assert.equal(describe(made), describe(sample()));
    // Errors made there have stacks of their own (deepStrictEqual compares them on Node 22+).
    const { error, aggregate, invalidDate, ...rest } = made;
    const { error: _e, aggregate: _a, invalidDate: _d, ...restHere } = sample();
    assert.ok(invalidDate instanceof Date && Number.isNaN(invalidDate.getTime()));
    assert.deepStrictEqual(rest, restHere);
    assert.ok(error instanceof TypeError && error.cause instanceof RangeError);
    assert.match(String(error.stack), /^TypeError: outer\n\s+at sample/);
    assert.ok(aggregate instanceof AggregateError && aggregate.errors[1] instanceof ValidationError);
    assert.ok((made.ledger as Ledger).entries.get('far') instanceof Point, 'instances made on the node');
    ok('values-made-on-node', v);

    // Errors thrown on the node: their class, message, own properties, cause and stack.
    assert.equal(await server.submit(validateAge, [7], { deps: [ValidationError] }), 7);
    const thrown = await server.submit(validateAge, [-1], { deps: [ValidationError] }).then(
      () => assert.fail('validateAge(-1) should throw'),
      (e: unknown) => e,
    );
    assert.ok(thrown instanceof ValidationError, `a ValidationError, got ${String(thrown)}`);
    assert.equal(thrown.message, 'age -1 is negative');
    assert.equal(thrown.field, 'age');
    assert.match(String(thrown.stack), /^ValidationError: age -1 is negative\n/);
    assert.match(String(thrown.stack), /at validateAge/, 'the stack is the one from the node');
    const caused = await server.submit(failWithCause, []).then(
      () => assert.fail('failWithCause should throw'),
      (e: unknown) => e,
    );
    assert.ok(caused instanceof TypeError && caused.cause instanceof RangeError, String(caused));
    assert.equal((caused.cause as Error).message, 'the inner reason');
    assert.match(String(caused.stack), /at failWithCause/);
    ok('errors', v);

    // put(): a Ref crosses once and many jobs use it.
    const data = Float64Array.from({ length: 100_000 }, (_, i) => i % 7);
    const ref = server.put(data);
    const want = data.reduce((a, b) => a + b, 0);
    const sums = await Promise.all([1, 2, 3, 4].map((k) => server.submit(sumRef, [ref, k])));
    assert.deepEqual(sums, [want, 2 * want, 3 * want, 4 * want]);
    server.release(ref);
    ok('put-ref', v);

    // Cancellation: a queued job and a running one; the running one never reaches its end.
    // 1.5 s: ample for the cancel to arrive; checked after 2 s, past the end it would reach.
    const running = server.submit(marked, [work, `run-${v}`, 1500], { modules: ['node:fs'] });
    await waitFor(() => existsSync(join(work, `run-${v}.started`)), 20_000, 'the job to start');
    const started = Date.now();
    const ac = new AbortController();
    const queued = Array.from({ length: 8 }, (_, i) =>
      server.submit(marked, [work, `queued-${v}-${i}`, 1500], { modules: ['node:fs'], signal: ac.signal }),
    );
    running.cancel();
    ac.abort();
    await assert.rejects(running, JobCancelledError);
    for (const q of queued) await assert.rejects(q, { name: 'AbortError' }); // the signal's reason
    assert.equal(await server.submit(whereAmI, []), v, 'the node still runs jobs after cancellations');
    await waitFor(() => Date.now() - started > 2000, 5000, 'the end the cancelled job would have reached');
    assert.ok(!existsSync(join(work, `run-${v}.finished`)), 'the cancelled running job was stopped');
    ok('cancel', v);

    await versionSpecific(server, v);
  } finally {
    await server.close();
  }
}

const hasFloat16 = (v: string) => Number.parseInt(v.slice(1), 10) >= 24;

/** The error says what is missing, where, and what to send instead. */
function unavailable(e: Error, where: string): boolean {
  const want = `Float16Array is not available in this runtime (Node.js ${where}): it needs Node.js 24`;
  if (e.message.includes(want) && e.message.includes('send a Float32Array instead')) return true;
  throw new Error(`expected an error saying "${want}...", got: ${e.message}`);
}

/** What differs between the two versions: Float16Array exists on Node 24 only. */
async function versionSpecific(server: Server, nodeVersion: string): Promise<void> {
  const here = hasFloat16(process.version);
  const there = hasFloat16(nodeVersion);
  const F16 = (globalThis as { Float16Array?: new (a: number[]) => ArrayLike<number> }).Float16Array;
  if (here) {
    const job = server.submit((a: ArrayLike<number>) => a[0], [new F16!([1.5])]);
    if (there) assert.equal(await job, 1.5);
    else await assert.rejects(job, (e: Error) => e instanceof JobSetupError && unavailable(e, nodeVersion));
    ok('float16-to-node', nodeVersion);
  }
  if (there) {
    const job = server.submit(() => new (globalThis as any).Float16Array([2.5]), []);
    if (here) assert.equal((await job)[0], 2.5);
    else
      await assert.rejects(job, (e: Error) => e instanceof JobSetupError && unavailable(e, process.version));
    ok('float16-from-node', nodeVersion);
  }
}

/** Both nodes at once; one is killed mid-run: every job settles once, with its result. */
async function checkKill(): Promise<void> {
  const victim = cfg.nodes[cfg.kill]!;
  const survivor = cfg.nodes.find((n) => n !== victim)!;
  const server = new Server({
    ncpus: 0,
    ppservers: cfg.nodes.map((n) => `127.0.0.1:${n.port}`),
    secret: cfg.secret,
  });
  try {
    await waitFor(
      () => server.getActiveNodes().filter((n) => n.ncpus > 0).length === 2,
      20_000,
      'both nodes',
    );
    const down = new Promise<string>((resolve) => server.once('node-down', (n) => resolve(n.id)));
    const delivered = new Map<number, number>();
    const n = 120;
    const jobs = Array.from({ length: n }, (_, i) =>
      server.submit(slowSquare, [i, 20], {
        callback: ([sq]: [number, string]) => delivered.set(sq, (delivered.get(sq) ?? 0) + 1),
      }),
    );
    const versions = new Set<string>();
    let killed = false;
    const afterKill: string[] = [];
    for (const j of jobs) {
      void j.then(([, ver]) => {
        versions.add(ver);
        if (killed) afterKill.push(ver);
      });
    }
    await waitFor(() => versions.size === 2, 30_000, 'results from both nodes');
    assert.ok(jobs.filter((j) => !j.finished).length > 20, 'jobs still to run when the node is killed');
    process.kill(-victim.pid, 'SIGKILL');
    killed = true;
    const results = await Promise.all(jobs);
    assert.deepEqual(
      results.map(([sq]) => sq),
      Array.from({ length: n }, (_, i) => i * i),
    );
    for (let i = 0; i < n; i++) assert.equal(delivered.get(i * i), 1, `job ${i} delivered once`);
    assert.equal(await down, `127.0.0.1:${victim.port}`);
    const bySurvivor = afterKill.filter((ver) => ver === survivor.version).length;
    assert.ok(bySurvivor > 10, `the survivor ran the rest: ${JSON.stringify(afterKill)}`);
    ok('kill', `${victim.version}->${survivor.version}`);
  } finally {
    await server.close();
  }
}

const work = mkdtempSync(join(tmpdir(), 'pp-mixed-'));
try {
  await Promise.all(cfg.nodes.map((node) => checkOneNode(node, work)));
  await checkKill();
} finally {
  rmSync(work, { recursive: true, force: true });
}
