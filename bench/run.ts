// pp-node benchmark: pp-node against piscina and workerpool, in one run.
//
//   npm run bench [-- --only W1,W4] [-- --rounds N] [-- --systems pp-node,piscina]
//   (--systems: labels starting so; `=pp-node` for that label alone)
//   npm run bench -- --only sched [--rounds N] [--scenario uniform,join]   (bench/sched.ts)
//   npm run bench -- --only dashboard [--rounds N]   (bench/dashboard.ts)
//   npm run bench -- --only modules                                          (bench/modules.ts)
//
// Every system gets a pool of os.availableParallelism() workers. Each round runs each system
// in turn (the order rotates from round to round): start the pool, warm it up (not timed), run
// the selected workloads, stop it. Each figure is the median over the rounds. Workloads that
// take well under a second (W1, W4, W4u) run three times in a row within a round, and the
// round counts their median time: one hiccup of the host would otherwise decide a whole round.
// A speedup (W2x, W3) divides the time of a serial run in this process by the parallel time.
// The serial time is the mean of two serial runs, one just before and one just after the
// parallel run (the pool idle during both): a host whose speed drifts by 20% within minutes
// (measured here) would otherwise show "speedups" above the number of cores.

import crypto from 'node:crypto';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { COLD_SETTLE_MS, coldSystems, measureCold } from './cold.ts';
import { hostCapacity } from './host-capacity.ts';
import {
  type Call,
  piscina,
  ppNode,
  ppNodeRemote,
  type System,
  type Workload,
  workerpool,
} from './systems.ts';
import { md5test, sum_primes } from './tasks.ts';

// ---- CLI ----------------------------------------------------------------------------------------

const { values: cli } = parseArgs({
  options: {
    only: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    systems: { type: 'string' },
    ncpus: { type: 'string' },
    scenario: { type: 'string' },
  },
  allowPositionals: false,
});
const rounds = Number.parseInt(cli.rounds!, 10);
if (!(rounds >= 1)) throw new Error(`--rounds must be a positive integer, got ${cli.rounds}`);

// `--only sched`: the scheduling benchmark (bench/sched.ts), before any other workload named.
const onlyIds = cli.only?.split(',').map((s) => s.trim().toLowerCase());
if (onlyIds?.includes('sched')) {
  const { runSched } = await import('./sched.ts');
  await runSched({ rounds, scenarios: cli.scenario?.split(',').map((s) => s.trim()) });
  if (onlyIds.every((id) => id === 'sched')) process.exit();
}
// `--only dashboard`: what the live dashboard costs (bench/dashboard.ts).
if (onlyIds?.includes('dashboard')) {
  const { runDashboardBench } = await import('./dashboard.ts');
  await runDashboardBench({ rounds, ncpus: cli.ncpus ? Number.parseInt(cli.ncpus, 10) : undefined });
  if (onlyIds.every((id) => id === 'sched' || id === 'dashboard' || id === 'modules')) process.exit();
}
// `--only modules`: what sending modules to a node costs (bench/modules.ts).
if (onlyIds?.includes('modules')) {
  const { runModules } = await import('./modules.ts');
  await runModules();
  if (onlyIds.every((id) => id === 'sched' || id === 'dashboard' || id === 'modules')) process.exit();
}
const ncpus = cli.ncpus ? Number.parseInt(cli.ncpus, 10) : os.availableParallelism();

const now = (): number => performance.now();

/** Workloads short enough to run {@link SHORT_REPEATS} times per round (see the top). */
const SHORT_WORKLOADS = new Set(['W1', 'W4', 'W4u']);
const SHORT_REPEATS = 3;

// ---- workloads ----------------------------------------------------------------------------------

/** A workload measured against a serial run of the same jobs in this process. */
interface SpeedupWorkload extends Workload {
  serial(): number;
}

const W1_JOBS = 10_000;
const W1: Workload = {
  id: 'W1',
  title: `${W1_JOBS} jobs x => x + 1, submit all then await all`,
  unit: 'jobs/s',
  async execute(call) {
    const t0 = now();
    const jobs = [];
    for (let i = 0; i < W1_JOBS; i++) jobs.push(call('inc', [i]));
    const results = await Promise.all(jobs);
    const ms = now() - t0;
    for (const [i, r] of results.entries()) check(r === i + 1, `W1: inc(${i}) returned ${String(r)}`);
    return ms;
  },
};

const W2X_INPUTS = Array.from({ length: 32 }, (_, i) => 1_000_000 + 1000 * i);
let w2xExpected: number[] | undefined;
const W2x: SpeedupWorkload = {
  id: 'W2x',
  title: '32 jobs sum_primes(1_000_000 + 1000*i)',
  unit: 'speedup',
  serial() {
    const t0 = now();
    const results = W2X_INPUTS.map((n) => sum_primes(n));
    const ms = now() - t0;
    w2xExpected = results;
    return ms;
  },
  async execute(call) {
    const t0 = now();
    const results = await Promise.all(W2X_INPUTS.map((n) => call('sum_primes', [n])));
    const ms = now() - t0;
    w2xExpected ??= W2X_INPUTS.map((n) => sum_primes(n));
    for (const [i, r] of results.entries()) {
      const want = w2xExpected[i];
      check(r === want, `W2x: sum_primes(${W2X_INPUTS[i]}) = ${String(r)}, serial says ${want}`);
    }
    return ms;
  },
};

const W3_ANSWER = 1829182;
const W3_HASH = crypto.createHash('md5').update(String(W3_ANSWER)).digest('hex');
const W3_PARTS = (() => {
  const start = 1;
  const end = 2_000_000;
  const parts = 128;
  const step = Math.trunc((end - start) / parts + 1);
  return Array.from({ length: parts }, (_, index) => [
    W3_HASH,
    start + index * step,
    Math.min(start + (index + 1) * step, end),
  ]) as [string, number, number][];
})();
function checkW3(results: unknown[]): void {
  const found = results.filter((r) => r !== null && r !== undefined);
  check(
    found.length === 1 && found[0] === W3_ANSWER,
    `W3: found ${JSON.stringify(found)}, expected [${W3_ANSWER}]`,
  );
}
const W3: SpeedupWorkload = {
  id: 'W3',
  title: 'reverse_md5: 128 parts over [1, 2_000_000), all parts run',
  unit: 'speedup',
  serial() {
    const t0 = now();
    const results = W3_PARTS.map(([hash, start, end]) => md5test(hash, start, end));
    const ms = now() - t0;
    checkW3(results);
    return ms;
  },
  async execute(call) {
    const t0 = now();
    const results = await Promise.all(W3_PARTS.map((args) => call('md5test', args)));
    const ms = now() - t0;
    checkW3(results);
    return ms;
  },
};

const W4_JOBS = 200;
const W4_ARRAY = Float64Array.from({ length: (1024 * 1024) / 8 }, (_, i) => (i % 1000) * 0.5);
const W4_SUM = W4_ARRAY.reduce((a, b) => a + b, 0);
const W4: Workload = {
  id: 'W4',
  title: `${W4_JOBS} jobs, each taking a 1 MiB Float64Array (copied) and returning its sum`,
  unit: 'MiB/s',
  async execute(call) {
    const t0 = now();
    const jobs = [];
    for (let i = 0; i < W4_JOBS; i++) jobs.push(call('sumArray', [W4_ARRAY]));
    const results = await Promise.all(jobs);
    const ms = now() - t0;
    for (const r of results) check(r === W4_SUM, `W4: sum ${String(r)}, expected ${W4_SUM}`);
    return ms;
  },
};

/**
 * W4 with 200 different arrays (same values): nothing can be shared between jobs, so every
 * byte is copied for every job. Not a target of the issue; printed so that W4's figure (one
 * array sent 200 times, which pp-node stores once) is never read as the cost of new data.
 */
const W4U_ARRAYS = Array.from({ length: W4_JOBS }, () => W4_ARRAY.slice());
const W4u: Workload = {
  id: 'W4u',
  title: `${W4_JOBS} jobs, each taking a different 1 MiB Float64Array (copied) and returning its sum`,
  unit: 'MiB/s',
  async execute(call) {
    const t0 = now();
    const jobs = [];
    for (const array of W4U_ARRAYS) jobs.push(call('sumArray', [array]));
    const results = await Promise.all(jobs);
    const ms = now() - t0;
    for (const r of results) check(r === W4_SUM, `W4u: sum ${String(r)}, expected ${W4_SUM}`);
    return ms;
  },
};

/**
 * Not timed: spawns every worker, loads every task, lets the JIT see the hot paths. The tiny
 * jobs and the 1 MiB arguments go through once at full W1 and W4 size, for every system alike:
 * W1 and W4 then measure steady state, not warm-up (with a 2,000-job and 4-job warm-up,
 * pp-node's W1 measured about half and its W4 about 0.6 times as much).
 */
const WARMUP: Workload = {
  id: 'warm-up',
  title: 'warm-up',
  unit: '',
  async execute(call: Call) {
    const t0 = now();
    // The 1 MiB arguments first, alone, so their garbage is collected before W1 runs: W4u's
    // 200 different ones (so that memory a system keeps for arguments has been used once:
    // W4's one array, sent 200 times, touches a single slot of pp-node's arena), then W4's.
    for (const arrays of [W4U_ARRAYS, W4U_ARRAYS.map(() => W4_ARRAY)]) {
      await Promise.all(arrays.map((array) => call('sumArray', [array])));
    }
    const jobs: PromiseLike<unknown>[] = [];
    for (let i = 0; i < 2 * ncpus; i++) {
      jobs.push(call('sum_primes', [20_000]));
      jobs.push(call('md5test', [W3_HASH, 1, 2000]));
    }
    for (let i = 0; i < W1_JOBS; i++) jobs.push(call('inc', [i]));
    await Promise.all(jobs);
    return now() - t0;
  },
};

const ALL_WORKLOADS: Workload[] = [W1, W2x, W3, W4, W4u];
const only = cli.only?.split(',').map((s) => s.trim().toLowerCase());
const workloads = ALL_WORKLOADS.filter((w) => !only || only.includes(w.id.toLowerCase()));
if (workloads.length === 0) {
  throw new Error(`--only ${cli.only}: no such workload (W1, W2x, W3, W4, W4u, sched, modules)`);
}

/** The reported figure (higher is better) from a measured time. */
function figure(w: Workload, ms: number, serialMs: number | undefined): number {
  switch (w.id) {
    case 'W1':
      return W1_JOBS / (ms / 1000);
    case 'W4':
    case 'W4u':
      return W4_JOBS / (ms / 1000); // 1 MiB per job
    default:
      return serialMs! / ms;
  }
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

// ---- systems ------------------------------------------------------------------------------------

const ALL_SYSTEMS: System[] = [
  ppNode('pp-node'),
  ppNode('pp-node (thread)', { isolation: 'thread' }),
  ppNodeRemote('pp-node remote'),
  piscina('piscina (default)'),
  piscina('piscina (cTPW=16)', { concurrentTasksPerWorker: 16 }),
  workerpool('workerpool'),
];
const systemFilter = cli.systems?.split(',').map((s) => s.trim());
// A name selects every system whose label starts with it; `=name`, that label alone.
const systems = ALL_SYSTEMS.filter(
  (s) =>
    !systemFilter ||
    systemFilter.some((f) => (f.startsWith('=') ? s.label === f.slice(1) : s.label.startsWith(f))),
);

// ---- measuring ----------------------------------------------------------------------------------

type Cell = number | string; // a figure, or why there is none ('n/a', 'error', 'timeout')
const figures = new Map<string, Map<string, number[]>>(); // system → workload → per-round figures
const failures = new Map<string, Map<string, string>>(); // system → workload → 'n/a' | 'error' | 'timeout'
const serialMs = new Map<string, number[]>();

const MEASURE_TIMEOUT_MS = 120_000;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what}: no answer after ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
class TimeoutError extends Error {}

function row<T>(map: Map<string, Map<string, T>>, system: string): Map<string, T> {
  let inner = map.get(system);
  if (!inner) map.set(system, (inner = new Map()));
  return inner;
}

function fmt(value: number, unit: string): string {
  if (unit === 'speedup') return `${value.toFixed(2)}x`;
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1);
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function describeError(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

async function measureSystem(sys: System, round: number): Promise<void> {
  const fail = (w: Workload[], why: string) => {
    for (const wl of w) row(failures, sys.label).set(wl.id, why);
  };
  try {
    await withTimeout(sys.start(ncpus), 60_000, `${sys.label} start`);
  } catch (e) {
    console.log(`[round ${round}] ${sys.label}: n/a (start failed: ${describeError(e)})`);
    fail(workloads, 'n/a');
    await sys.stop().catch(() => {});
    return;
  }
  try {
    try {
      await withTimeout(sys.run(WARMUP), MEASURE_TIMEOUT_MS, `${sys.label} warm-up`);
    } catch (e) {
      console.log(`[round ${round}] ${sys.label}: warm-up failed: ${describeError(e)}`);
      fail(workloads, e instanceof TimeoutError ? 'timeout' : 'error');
      return;
    }
    for (const w of workloads) {
      try {
        const speedup = 'serial' in w ? (w as SpeedupWorkload) : undefined;
        const before = speedup?.serial();
        const times: number[] = [];
        for (let k = 0; k < (SHORT_WORKLOADS.has(w.id) ? SHORT_REPEATS : 1); k++) {
          times.push(await withTimeout(sys.run(w), MEASURE_TIMEOUT_MS, `${sys.label} ${w.id}`));
        }
        // The serial time at the moment of the parallel run: the mean of the runs just before
        // and just after it, which cancels the host's drift during the three runs.
        const after = speedup?.serial();
        const serial = speedup && (before! + after!) / 2;
        if (serial !== undefined) serialMs.set(w.id, [...(serialMs.get(w.id) ?? []), serial]);
        const ms = median(times);
        const value = figure(w, ms, serial);
        const perRound = row(figures, sys.label);
        perRound.set(w.id, [...(perRound.get(w.id) ?? []), value]);
        console.log(
          `[round ${round}] ${w.id.padEnd(4)} ${sys.label.padEnd(20)} ${fmt(value, w.unit).padStart(10)} ${w.unit}` +
            `  (${times.map((t) => t.toFixed(0)).join(' / ')} ms${serial === undefined ? '' : `; serial ${before!.toFixed(0)} before, ${after!.toFixed(0)} after`})`,
        );
      } catch (e) {
        console.log(`[round ${round}] ${w.id.padEnd(4)} ${sys.label.padEnd(20)} failed: ${describeError(e)}`);
        row(failures, sys.label).set(w.id, e instanceof TimeoutError ? 'timeout' : 'error');
        if (e instanceof TimeoutError) break; // the pool is in an unknown state: skip to stop()
      }
    }
  } finally {
    await withTimeout(sys.stop(), 30_000, `${sys.label} stop`).catch((e) =>
      console.log(`[round ${round}] ${sys.label}: stop failed: ${describeError(e)}`),
    );
  }
}

console.log(
  `pp-node benchmark: ${os.cpus()[0]?.model ?? 'cpu'} | availableParallelism ${os.availableParallelism()} | ` +
    `pool size ${ncpus} | node ${process.version} | ${rounds} round(s)`,
);
for (const w of workloads) console.log(`  ${w.id.padEnd(4)} ${w.title} — ${w.unit}`);
console.log('');

// The serial code runs once untimed first, so that the first system's baseline is not a cold one.
for (const w of workloads) if ('serial' in w) (w as SpeedupWorkload).serial();

// W1 cold (bench/cold.ts): with W1, the first W1_JOBS jobs of fresh processes, for each local
// system selected, COLD_PER_ROUND child processes per system and round, systems interleaved.
const COLD_PER_ROUND = 2;
const allCold = coldSystems();
const coldLabels = workloads.some((w) => w.id === 'W1')
  ? allCold.filter((c) => systems.some((s) => s.label === (c.warmLabel ?? c.label))).map((c) => c.label)
  : [];
/** The W1 warm row of each cold system. */
const warmRowOf = new Map(allCold.map((c) => [c.label, c.warmLabel ?? c.label]));
const coldMs = new Map<string, number[]>();
const coldReadyMs = new Map<string, number[]>();
const coldFailed = new Set<string>();

async function measureColdRound(round: number): Promise<void> {
  for (let k = 0; k < COLD_PER_ROUND; k++) {
    const shift = (round - 1 + k) % coldLabels.length;
    for (const label of [...coldLabels.slice(shift), ...coldLabels.slice(0, shift)]) {
      try {
        const r = await measureCold(label, W1_JOBS, ncpus);
        coldMs.set(label, [...(coldMs.get(label) ?? []), r.burstMs]);
        coldReadyMs.set(label, [...(coldReadyMs.get(label) ?? []), r.readyMs]);
        console.log(
          `[round ${round}] W1 cold ${label.padEnd(20)} ${fmt(W1_JOBS / (r.burstMs / 1000), 'jobs/s').padStart(10)} jobs/s` +
            `  (${r.burstMs.toFixed(0)} ms, fresh process; its workers were ready after ${r.readyMs.toFixed(0)} ms)`,
        );
      } catch (e) {
        coldFailed.add(label);
        console.log(`[round ${round}] W1 cold ${label.padEnd(20)} failed: ${describeError(e)}`);
      }
    }
  }
}

// For scale beside the speedups: how fast n busy threads run against one, with no pool at all.
const capacities: number[] = [];
const hasSpeedups = workloads.some((w) => 'serial' in w);

for (let round = 1; round <= rounds; round++) {
  if (hasSpeedups) {
    const c = await hostCapacity(ncpus);
    capacities.push(c);
    console.log(`[round ${round}] host capacity: ${ncpus} busy threads ran at ${c.toFixed(2)}x one thread`);
  }
  // rotate the order of the systems from round to round
  const shift = (round - 1) % systems.length;
  for (const sys of [...systems.slice(shift), ...systems.slice(0, shift)]) {
    await measureSystem(sys, round);
  }
  if (coldLabels.length > 0) await measureColdRound(round);
  console.log('');
}

// ---- report -------------------------------------------------------------------------------------

/** W1 cold of a system: median jobs/s over its fresh processes, or why there is none. */
function coldCell(label: string): Cell {
  const ms = coldMs.get(label);
  if (!ms || ms.length === 0) return coldFailed.has(label) ? 'error' : 'n/a';
  return W1_JOBS / (median(ms) / 1000);
}

function cell(system: string, workload: string): Cell {
  const values = figures.get(system)?.get(workload);
  if (values && values.length > 0) return median(values);
  return failures.get(system)?.get(workload) ?? 'n/a';
}

/** (max - min) / median of the rounds, as ' ±N%': how noisy the figure was. */
function spread(values: number[] | undefined): string {
  if (!values || values.length < 2) return '';
  const m = median(values);
  return ` ±${Math.round((50 * (Math.max(...values) - Math.min(...values))) / m)}%`;
}

const show = (c: Cell, unit: string): string => (typeof c === 'number' ? fmt(c, unit) : c);
const labelWidth = Math.max(...systems.map((s) => s.label.length), 'serial (ms)'.length) + 2;
const colWidth = 18;

console.log(
  `Results (median of ${rounds} round(s); ±: half the min-max range over the rounds; higher is better)`,
);
console.log(
  'system'.padEnd(labelWidth) + workloads.map((w) => `${w.id} ${w.unit}`.padStart(colWidth)).join(''),
);
for (const s of systems) {
  console.log(
    s.label.padEnd(labelWidth) +
      workloads
        .map((w) =>
          (show(cell(s.label, w.id), w.unit) + spread(figures.get(s.label)?.get(w.id))).padStart(colWidth),
        )
        .join(''),
  );
}
console.log(
  'serial (ms)'.padEnd(labelWidth) +
    workloads
      .map((w) => {
        const ms = serialMs.get(w.id);
        return (ms ? median(ms).toFixed(0) + spread(ms) : '-').padStart(colWidth);
      })
      .join(''),
);

if (capacities.length > 0) {
  console.log(
    `host capacity: ${fmt(median(capacities), 'speedup')}${spread(capacities)} ` +
      `(${ncpus} busy threads against one, no pool; for scale: it drifts as the speedups do)`,
  );
}

if (coldLabels.length > 0) {
  console.log('');
  console.log(
    `W1 cold: the first ${W1_JOBS.toLocaleString('en-US')} jobs x => x + 1 of a fresh process, median over ` +
      `${COLD_PER_ROUND * rounds} new child processes per system (interleaved). Timed from just before the ` +
      'first submit to the last result: it includes the first submit of the function, shipping and compiling ' +
      'it in the workers, and code the JIT has not optimised yet. Not included: process and pool start, the ' +
      `workers' start (each pool was created and every worker ready, then idle ${COLD_SETTLE_MS} ms, before ` +
      'the timer; pp-node\'s server warms its job path up then, api/warm-up.ts). "(at ready)": the burst ' +
      'submitted the moment the workers were ready, as by a program that submits at once (no warm-up). ' +
      'W1 warm is the table above (after a warm-up).',
  );
  const coldBase = coldCell('piscina (default)');
  console.log(
    'system'.padEnd(labelWidth) +
      ['W1 warm jobs/s', 'W1 cold jobs/s', 'cold / piscina', 'ready after ms']
        .map((h) => h.padStart(colWidth))
        .join(''),
  );
  for (const label of coldLabels) {
    const warm = cell(warmRowOf.get(label) ?? label, 'W1');
    const cold = coldCell(label);
    const ratio =
      typeof cold === 'number' && typeof coldBase === 'number' ? `${(cold / coldBase).toFixed(2)}x` : 'n/a';
    const ready = coldReadyMs.get(label);
    console.log(
      label.padEnd(labelWidth) +
        [
          show(warm, 'jobs/s') + spread(figures.get(warmRowOf.get(label) ?? label)?.get('W1')),
          show(cold, 'jobs/s') + spread(coldMs.get(label)?.map((ms) => W1_JOBS / (ms / 1000))),
          ratio,
          ready ? median(ready).toFixed(0) : '-',
        ]
          .map((c) => c.padStart(colWidth))
          .join(''),
    );
  }
}

const ppRows = systems.filter((s) => s.label.startsWith('pp-node'));
const peerRows = systems.filter((s) => !s.label.startsWith('pp-node'));
if (ppRows.length > 0 && peerRows.length > 0) {
  console.log('');
  console.log('Ratios pp-node / peer (same figure; > 1 means pp-node is better)');
  for (const p of ppRows) {
    for (const q of peerRows) {
      const ratios = workloads.map((w) => {
        const a = cell(p.label, w.id);
        const b = cell(q.label, w.id);
        return typeof a === 'number' && typeof b === 'number' ? `${(a / b).toFixed(2)}x` : 'n/a';
      });
      console.log(
        `${`${p.label} / ${q.label}`.padEnd(labelWidth * 2)}` +
          workloads.map((w, i) => `${w.id} ${ratios[i]}`.padStart(colWidth)).join(''),
      );
    }
  }
}

if (ppRows.length > 0) {
  console.log('');
  console.log('Targets');
  const base = 'piscina (default)';
  const ceiling = capacities.length > 0 ? ` (host capacity ${fmt(median(capacities), 'speedup')})` : '';
  for (const p of ppRows) {
    const lines: string[] = [];
    const verdict = (value: Cell, target: number): string =>
      typeof value === 'number' ? (value >= target ? 'PASS' : 'FAIL') : 'n/a';
    const ratio = (w: string): Cell => {
      const a = cell(p.label, w);
      const b = cell(base, w);
      return typeof a === 'number' && typeof b === 'number' ? a / b : 'n/a';
    };
    const remote = p.label.includes('remote');
    const local = cell('pp-node', 'W2x');
    for (const w of workloads) {
      if (w.id === 'W1' && remote) {
        const v = cell(p.label, 'W1');
        lines.push(`W1 remote >= 20,000 jobs/s: ${show(v, 'jobs/s')} ${verdict(v, 20_000)}`);
      } else if (w.id === 'W1') {
        const r = ratio('W1');
        lines.push(`W1 >= 3x ${base}: ${show(r, 'speedup')} ${verdict(r, 3)}`);
        if (coldLabels.includes(p.label)) {
          const a = coldCell(p.label);
          const b = coldCell(base);
          const rc: Cell = typeof a === 'number' && typeof b === 'number' ? a / b : 'n/a';
          lines.push(`W1 cold >= 3x ${base} (cold): ${show(rc, 'speedup')} ${verdict(rc, 3)}`);
        }
        for (const label of coldLabels) {
          if (label === p.label || warmRowOf.get(label) !== p.label) continue;
          const a = coldCell(label);
          const b = coldCell(base);
          const rc: Cell = typeof a === 'number' && typeof b === 'number' ? a / b : 'n/a';
          lines.push(`W1 cold, ${label}: ${show(rc, 'speedup')} of ${base} (cold)`);
        }
      } else if (w.id === 'W2x' && remote) {
        const v = cell(p.label, 'W2x');
        const r: Cell = typeof v === 'number' && typeof local === 'number' ? v / local : 'n/a';
        lines.push(`W2x remote within 5% of local: ${show(r, 'speedup')} of local ${verdict(r, 0.95)}`);
      } else if (w.id === 'W2x') {
        const v = cell(p.label, 'W2x');
        lines.push(`W2x speedup >= 1.95: ${show(v, 'speedup')} ${verdict(v, 1.95)}${ceiling}`);
      } else if (w.id === 'W3' && !remote) {
        const v = cell(p.label, 'W3');
        lines.push(`W3 speedup >= 1.9: ${show(v, 'speedup')} ${verdict(v, 1.9)}${ceiling}`);
      } else if (w.id === 'W4' && remote) {
        const v = cell(p.label, 'W4');
        lines.push(`W4 remote (encrypted) >= 300 MiB/s: ${show(v, 'MiB/s')} ${verdict(v, 300)}`);
      } else if (w.id === 'W4') {
        const r = ratio('W4');
        lines.push(`W4 >= 1.0x ${base}: ${show(r, 'speedup')} ${verdict(r, 1.0)}`);
      } else if (w.id === 'W4u' && !remote) {
        lines.push(`W4u (no target; different arrays): ${show(ratio('W4u'), 'speedup')} of ${base}`);
      }
    }
    console.log(`  ${p.label}`);
    for (const l of lines) console.log(`    ${l}`);
  }
}
