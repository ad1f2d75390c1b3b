// What the live dashboard costs the job server (issue 15): W1's tiny jobs (x => x + 1) back to
// back for a few seconds, without a dashboard and with one and a connected page, in the same run.
//
//   npm run bench -- --only dashboard [--rounds 3] [--ncpus N]
//   node --import tsx bench/dashboard.ts [--rounds 3]          (after `npm run build`)
//
// Per round: two Servers (all local CPUs each), ready and warmed up, one without a dashboard and
// one with a dashboard and a connected page; batches of 10,000 jobs (submit all, then await all,
// as W1) alternate between them (A B B A) for 2 x SECONDS seconds. Figures: jobs/s, the
// client process's CPU per 10,000 jobs (process.cpuUsage: the job server's own thread, not its
// worker processes), and for the dashboard the bytes and messages per second a page receives.
// The page is a WebSocket reader in a child process (with the page's Origin and token), so
// that what it costs to receive and render is not counted as the server's; a browser renders
// the same messages. Medians over the rounds.

import { type ChildProcess, spawn } from 'node:child_process';
import os from 'node:os';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Server } from 'pp-node';
import { Collector, type DashboardSource } from '../src/dashboard/collector.ts';
import { inc } from './tasks.ts';

const SECONDS = 5;
const BATCH = 10_000;

interface Figures {
  jobsPerSec: number;
  cpuMsPer10k: number;
  bytesPerSec?: number;
  msgsPerSec?: number;
}

/** The page: reads every message, reports bytes and count on each "report" line asked for on stdin. */
const PAGE_SCRIPT = `
const { WebSocket } = require('ws');
const url = new URL(process.argv[1]);
const ws = new WebSocket('ws://' + url.host + '/ws?token=' + url.searchParams.get('token'), { origin: 'http://' + url.host });
let bytes = 0, msgs = 0;
ws.on('open', () => console.log('open'));
ws.on('message', (m) => { bytes += m.length; msgs++; JSON.parse(m); });
require('readline').createInterface({ input: process.stdin }).on('line', () => console.log(bytes + ' ' + msgs));
`;

function startPage(url: string): Promise<{ child: ChildProcess; report(): Promise<[number, number]> }> {
  const child = spawn(process.execPath, ['-e', PAGE_SCRIPT, url], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const waiting: Array<(line: string) => void> = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  const next = () => new Promise<string>((resolve) => waiting.push(resolve));
  return next().then(() => ({
    child,
    report: async () => {
      const line = next();
      child.stdin!.write('report\n');
      const [b, m] = (await line).split(' ').map(Number);
      return [b!, m!];
    },
  }));
}

/**
 * Both servers at once, one without a dashboard and one with a dashboard and a connected page;
 * batches alternate between them (ABBA), so that the host's drift, which here swings W1 by
 * half within a minute, hits both alike. Each batch is timed, and the client's CPU counted,
 * on its own. (The dashboard's 4 updates a second run whichever batch is running: the
 * figures of its work alone, below, give their cost apart.)
 */
async function measure(ncpus: number): Promise<[Figures, Figures]> {
  const plain = new Server({ ncpus });
  const dash = new Server({ ncpus, dashboard: 0 });
  let page: Awaited<ReturnType<typeof startPage>> | null = null;
  try {
    await Promise.all([plain.ready(), dash.ready()]);
    const batch = async (server: Server) => {
      const jobs = [];
      for (let i = 0; i < BATCH; i++) jobs.push(server.submit(inc, [i]));
      const results = await Promise.all(jobs);
      if (results[BATCH - 1] !== BATCH) throw new Error(`inc(${BATCH - 1}) returned ${results[BATCH - 1]}`);
    };
    await batch(plain); // warm-up
    await batch(dash);
    page = await startPage((await dash.dashboardUrl())!);
    const [b0, m0] = await page.report();
    const spent = [
      { ms: 0, cpuUs: 0, jobs: 0 },
      { ms: 0, cpuUs: 0, jobs: 0 },
    ];
    const t0 = performance.now();
    for (let k = 0; performance.now() - t0 < 2 * SECONDS * 1000; k++) {
      const which = k % 4 === 0 || k % 4 === 3 ? 0 : 1; // A B B A
      const cpu0 = process.cpuUsage();
      const t = performance.now();
      await batch(which === 0 ? plain : dash);
      const cpu = process.cpuUsage(cpu0);
      spent[which]!.ms += performance.now() - t;
      spent[which]!.cpuUs += cpu.user + cpu.system;
      spent[which]!.jobs += BATCH;
    }
    const seconds = (performance.now() - t0) / 1000;
    const [b1, m1] = await page.report();
    const figures = spent.map(
      (x): Figures => ({
        jobsPerSec: x.jobs / (x.ms / 1000),
        cpuMsPer10k: (x.cpuUs / 1000 / x.jobs) * 10_000,
      }),
    ) as [Figures, Figures];
    figures[1].bytesPerSec = (b1 - b0) / seconds;
    figures[1].msgsPerSec = (m1 - m0) / seconds;
    return figures;
  } finally {
    page?.child.kill();
    await Promise.all([plain.close(), dash.close()]);
  }
}

/**
 * The dashboard's own work, alone and steady (the host's noise swamps a few percent of W1):
 * ns per call of the per-job hook, and ms per update (4 a second) with its ring full.
 */
async function microCosts(): Promise<{ hookNs: number; updateMs: number }> {
  const source: DashboardSource = {
    server: {
      getStats: () => ({
        nodes: [{ node: 'local', jobs: 1, percent: 100, jobTimeSum: 1, timePerJob: 1, ncpus: 2, speed: 1 }],
        uptime: 1,
        activeJobs: 0,
        ncpus: 2,
        totalJobs: 1,
      }),
      getActiveNodes: () => [{ id: 'local', name: 'local', ncpus: 2, inFlight: 2, speed: 1, rttMs: 0 }],
      on: () => undefined,
      off: () => undefined,
    },
    groups: () => new Map([['default', { total: 100, finished: 50, failed: 0, pending: 50 }]]),
  };
  const c = new Collector(source, performance.now());
  // Results come in batches (a message from a worker carries several); the hook reads the
  // clock once per batch. Batches of BATCH_OF jobs, a microtask apart as in the server; the
  // same loop without the hook is subtracted.
  const N = 1_000_000;
  const BATCH_OF = 8;
  const loop = async (hook: boolean) => {
    const t = performance.now();
    for (let i = 0; i < N; i += BATCH_OF) {
      if (hook) for (let k = 0; k < BATCH_OF; k++) c.ran('local', 'inc', 0.01, true);
      await null;
    }
    return performance.now() - t;
  };
  await loop(true); // warm
  await loop(false);
  const hookNs = (((await loop(true)) - (await loop(false))) * 1e6) / N;
  const U = 200;
  const t1 = performance.now();
  for (let u = 0; u < U; u++) {
    for (let i = 0; i < 2500; i++) c.ran('local', 'inc', 0.01, true); // 10,000 jobs/s at 4 updates/s
    JSON.stringify(c.update());
  }
  const updateMs = (performance.now() - t1 - (hookNs * 2500 * U) / 1e6) / U;
  return { hookNs, updateMs };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export async function runDashboardBench(opts: { rounds: number; ncpus?: number }): Promise<void> {
  const ncpus = opts.ncpus ?? os.availableParallelism();
  console.log(
    `\n== dashboard: W1 jobs (x => x + 1) back to back, batches alternating between a server without and one with a dashboard + page for ${2 * SECONDS} s; ${ncpus} local workers each, ${opts.rounds} rounds`,
  );
  const plain: Figures[] = [];
  const dash: Figures[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    const [p, q] = await measure(ncpus);
    plain.push(p);
    dash.push(q);
    console.log(
      `round ${r + 1}: ${Math.round(p.jobsPerSec)} jobs/s without, ${Math.round(q.jobsPerSec)} with dashboard + page`,
    );
  }
  const pj = median(plain.map((f) => f.jobsPerSec));
  const dj = median(dash.map((f) => f.jobsPerSec));
  const pc = median(plain.map((f) => f.cpuMsPer10k));
  const dc = median(dash.map((f) => f.cpuMsPer10k));
  console.log(`                                 without   with dashboard + 1 page`);
  console.log(`jobs/s (median)               ${fmt(pj, 10)} ${fmt(dj, 12)}   (${pct(dj / pj - 1)})`);
  console.log(`client CPU ms per 10,000 jobs ${fmt(pc, 10, 1)} ${fmt(dc, 12, 1)}   (${pct(dc / pc - 1)})`);
  console.log(
    `to the page: ${Math.round(median(dash.map((f) => f.bytesPerSec!)))} bytes/s in ${median(dash.map((f) => f.msgsPerSec!)).toFixed(1)} messages/s`,
  );
  const micro = await microCosts();
  console.log(
    `the dashboard's work alone: ${micro.hookNs.toFixed(1)} ns per job (hook, results in batches of 8), ${micro.updateMs.toFixed(3)} ms per update (4/s, 2,500 jobs each, JSON included)`,
  );
  const perSecondMs = (micro.hookNs * 10_000) / 1e6 + 4 * micro.updateMs;
  console.log(
    `at 10,000 jobs/s: ${perSecondMs.toFixed(2)} ms of CPU per second, ${(perSecondMs / 10).toFixed(2)}% of one core; W1 client CPU without dashboard: ${((pc / 10_000) * 1000).toFixed(2)} µs per job`,
  );
  console.log(`target: throughput cost under 5%`);
}

function fmt(x: number, width: number, digits = 0): string {
  return x.toFixed(digits).padStart(width);
}
function pct(x: number): string {
  return `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { rounds: { type: 'string', default: '3' }, ncpus: { type: 'string' } },
  });
  await runDashboardBench({
    rounds: Number(values.rounds),
    ncpus: values.ncpus ? Number(values.ncpus) : undefined,
  });
}
