// "W1 cold": the first burst of tiny jobs of a fresh process, for pp-node and its peers alike.
//
// Each measurement is a new child process (`node --import tsx bench/cold.ts --child <system>`):
// it creates the pool, waits until every worker has started (pp-node: `server.ready()`;
// piscina: every thread's ready message, posted once it has loaded the task module; workerpool
// has no such signal and is left out), lets the host settle for COLD_SETTLE_MS (a pp-node
// server runs its warm-up then, api/warm-up.ts), then times from just before the first
// submit to the last result of W1_JOBS jobs `x => x + 1` (submit all, await all), checks the
// results and exits. So the figure includes everything a fresh process does for its first
// jobs (the first submit of a function, shipping and compiling it in the workers, code that
// is not optimised yet, tables that grow), and not the start of the workers themselves, which
// is printed apart ("ready after"). "pp-node (at ready)" submits the burst the moment the
// workers are ready instead, as a program that submits at once does: neither the server's
// warm-up nor the workers' has run then, so the burst pays for all of the JIT's work.
//
//   node --import tsx bench/cold.ts [--jobs 10000] [--rounds 5] [--systems pp-node,piscina]
//   node --import tsx bench/cold.ts --child pp-node [--jobs 10000]   (one measurement, JSON out)

import { spawn } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type Call, piscina, ppNode, type System } from './systems.ts';

export const COLD_SETTLE_MS = 300;

/** A system measured cold: `atReady` submits without the settling pause; `warmLabel` names its W1 warm row. */
export type ColdSystem = System & { atReady?: boolean; warmLabel?: string };

/** Systems that can be measured cold: every local one (a remote node is another process anyway). */
export function coldSystems(): ColdSystem[] {
  return [
    ppNode('pp-node'),
    { ...ppNode('pp-node (at ready)'), atReady: true, warmLabel: 'pp-node' },
    ppNode('pp-node (thread)', { isolation: 'thread' }),
    piscina('piscina (default)'),
    piscina('piscina (cTPW=16)', { concurrentTasksPerWorker: 16 }),
  ];
}

export interface ColdResult {
  /** First submit to last result, ms. */
  burstMs: number;
  /** Pool created to every worker ready, ms (not in burstMs). */
  readyMs: number;
}

/** The first `jobs` tiny jobs of this (fresh) process on `sys`. */
async function measureHere(sys: ColdSystem, jobs: number, ncpus: number): Promise<ColdResult> {
  const t0 = performance.now();
  await sys.start(ncpus);
  await sys.ready?.();
  const readyMs = performance.now() - t0;
  if (!sys.atReady) await new Promise((r) => setTimeout(r, COLD_SETTLE_MS));
  let burstMs = 0;
  await sys.run({
    id: 'W1 cold',
    title: '',
    unit: 'jobs/s',
    async execute(call: Call) {
      const start = performance.now();
      const pending = [];
      for (let i = 0; i < jobs; i++) pending.push(call('inc', [i]));
      const results = await Promise.all(pending);
      burstMs = performance.now() - start;
      for (const [i, r] of results.entries()) {
        if (r !== i + 1) throw new Error(`W1 cold: inc(${i}) returned ${String(r)}`);
      }
      return burstMs;
    },
  });
  await sys.stop();
  return { burstMs, readyMs };
}

const self = fileURLToPath(import.meta.url);

/** One cold measurement in a new child process. */
export function measureCold(
  label: string,
  jobs: number,
  ncpus: number,
  nodeArgs: readonly string[] = [],
): Promise<ColdResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        ...nodeArgs,
        '--import',
        'tsx',
        self,
        '--child',
        label,
        '--jobs',
        String(jobs),
        '--ncpus',
        String(ncpus),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('{"burstMs"'));
      if (code === 0 && line) resolve(JSON.parse(line) as ColdResult);
      else reject(new Error(`cold ${label}: child exited ${signal ?? code}: ${out.trim().slice(-300)}`));
    });
  });
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

if (process.argv[1] === self) {
  const { values: cli } = parseArgs({
    options: {
      child: { type: 'string' },
      jobs: { type: 'string', default: '10000' },
      rounds: { type: 'string', default: '5' },
      systems: { type: 'string', default: 'pp-node,pp-node (at ready),piscina (default)' },
      ncpus: { type: 'string' },
    },
  });
  const jobs = Number.parseInt(cli.jobs!, 10);
  const ncpus = cli.ncpus ? Number.parseInt(cli.ncpus, 10) : os.availableParallelism();
  if (cli.child) {
    const sys = coldSystems().find((s) => s.label === cli.child);
    if (!sys) throw new Error(`no system ${cli.child}`);
    const r = await measureHere(sys, jobs, ncpus);
    console.log(JSON.stringify(r));
    process.exit(0);
  }
  // Stand-alone: interleaved fresh processes, medians.
  const labels = cli.systems!.split(',').map((s) => s.trim());
  const per = new Map<string, number[]>(labels.map((l) => [l, []]));
  const rounds = Number.parseInt(cli.rounds!, 10);
  for (let round = 0; round < rounds; round++) {
    for (const label of labels) {
      const r = await measureCold(label, jobs, ncpus);
      per.get(label)!.push(r.burstMs);
      console.log(
        `[${round + 1}] ${label.padEnd(20)} ${Math.round(jobs / (r.burstMs / 1000)).toLocaleString('en-US')} jobs/s` +
          `  (${r.burstMs.toFixed(0)} ms; ready after ${r.readyMs.toFixed(0)} ms)`,
      );
    }
  }
  for (const [label, ms] of per) {
    console.log(
      `${label.padEnd(20)} median ${Math.round(jobs / (median(ms) / 1000)).toLocaleString('en-US')} jobs/s`,
    );
  }
}
